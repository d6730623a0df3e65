"""The authors' released vMF sampler (``taylor_switch=True``, s-vae-tf since 2018-06-29) against
the exact vMF: E[w] = E[μᵀz] of their draws beside the exact A_m(κ) = I_{m/2}(κ) / I_{m/2−1}(κ),
and the concentration κ' whose exact mean their draws have (the sampler itself and why it
differs: ``benchmarks.davidson``). ``--concentrations`` adds the quantiles of κ(x) over the test
images of trained S-VAEs (run folders), to see where the rows' posteriors sit.
"""

import json
import math

import torch

import pyrovae
from pyrovae.distributions import VonMisesFisher

from .davidson import sample_t_davidson

QUICK = ["--dims", "6", "--kappas", "5", "20", "--num-samples", "2000"]
FULL = []
SEEDS = (0,)


def concentrations(folder, x, quantiles=(0.01, 0.1, 0.5, 0.9, 0.99)):
    """Quantiles of κ(x) over the rows ``x`` of the trained S-VAE in the run folder ``folder``."""
    model = pyrovae.load(folder)
    with torch.no_grad():
        kappa = model.posterior(model.encoder(x)).concentration
    values = torch.quantile(kappa, torch.tensor(quantiles)).tolist()
    return {str(q): v for q, v in zip(quantiles, values, strict=True)}


def main(args, session):
    """E[w] of the authors' released sampler (``taylor_switch=True``) against the exact
    A_m(κ) = I_{m/2}(κ) / I_{m/2−1}(κ), and the concentration κ' with A_m(κ') = their E[w] (the
    law their draws follow, in the mean)."""
    torch.manual_seed(args.seed)
    rows = []
    for m in args.dims:
        loc = torch.zeros(m, dtype=torch.float64)
        loc[0] = 1.0
        for kappa in args.kappas:
            k = torch.full((args.num_samples,), float(kappa), dtype=torch.float64)
            w = 1 - sample_t_davidson(k, m, taylor_switch=True)
            exact = VonMisesFisher(loc, torch.tensor(float(kappa), dtype=torch.float64))
            mean, stderr = w.mean().item(), (w.std() / math.sqrt(len(w))).item()
            lo, hi = 1e-3, 1e5  # A_m is increasing in κ: bisect in log κ for A_m(κ') = mean
            for _ in range(100):
                mid = math.sqrt(lo * hi)
                a = VonMisesFisher(loc, torch.tensor(mid, dtype=torch.float64)).mean[0].item()
                lo, hi = (mid, hi) if a < mean else (lo, mid)
            rows.append({
                "m": m, "kappa": kappa, "mean_w": mean, "mean_w_stderr": stderr,
                "exact_mean_w": exact.mean[0].item(), "effective_kappa": math.sqrt(lo * hi),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    kappa = {}
    if args.concentrations:  # on the 10,000 test images, binarized once (seed 0)
        test = session.load("mnist").test.x
        x = torch.bernoulli(test, generator=torch.Generator().manual_seed(0))
        kappa = {str(f): concentrations(f, x) for f in args.concentrations}
    for folder, q in kappa.items():
        print(folder, "kappa quantiles", json.dumps(q), flush=True)
    result = {"rows": rows, "concentration_quantiles": kappa, "num_samples": args.num_samples}
    session.write("davidson_sampler.json", result)


def arguments(parser):
    parser.add_argument("--dims", type=int, nargs="+", default=[6, 11, 21, 41], help="ambient m")
    parser.add_argument("--kappas", type=float, nargs="+", default=[5, 10, 12, 20, 50, 100, 300])
    parser.add_argument("--num-samples", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument(
        "--concentrations", nargs="*", default=[],
        help="run folders of trained S-VAEs: also report the quantiles of their κ(x) on the test "
        "images",
    )  # fmt: skip
