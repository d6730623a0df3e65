"""The vMF sampler of Davidson et al.'s code, for running their table on their terms.

The authors' implementations (``nicola-decao/s-vae-tf`` and ``s-vae-pytorch``,
``VonMisesFisher.__sample_w_rej``; the same in ``trdavidson/increasing-expressivity-s-vae``)
draw w = μᵀz in m ambient dimensions by Ulrich's form of Wood's rejection sampler:

    ε ~ Beta((m−1)/2, (m−1)/2),  w = (1 − (1+b) ε) / (1 − (1−b) ε),
    t = 2ab / (1 − (1−b) ε),     accept if (m−1) log t − t + d > log u,  u ~ U(0, 1),

with b = (c − 2κ)/(m−1), a = (m − 1 + 2κ + c) / 4, c = √(4κ² + (m−1)²),
d = 4ab/(1+b) − (m−1) log(m−1). Two things set it apart from pyrovae's sampler:

* The gradient in κ flows through w = f(ε; b(κ)) with the accepted ε held fixed, without the
  score-function correction of Naesseth et al. (2017): biased for m ≠ 3. pyrovae's gradient
  is the exact implicit one. This is the code the paper ran (s-vae-tf as of March 2018).
* ``taylor_switch=True``, the released code since s-vae-tf's commit 921e5fd of 2018-06-29
  ("Fixed numerical errors in sampling", after the paper): b = s·(m−1)/(4κ) + (1−s)·b(κ),
  s = clamp(κ − 10, 0, 1), i.e. above κ = 11 b is its large-κ approximation while a keeps the
  exact form. The acceptance test is exact only when a = κ / (1 − b), so for κ > 10 the
  accepted w follow another law, broader than vMF(κ) where (m−1) is not small against κ
  (``python benchmarks/davidson_sampler.py``: at m = 41, E[w] 0.090 against the exact 0.272 at
  κ = 12, 0.326 against 0.409 at κ = 20; within 0.1 % from κ = 100).

For m = 3 both codes use the exact closed-form inverse CDF, as pyrovae does. ``log_prob`` and
the KL to the uniform prior are the exact ones (s-vae-tf's use the Bessel ratio, as pyrovae's).

Importing this module registers the posterior ``"von_mises_fisher_davidson"``:
``posterior={"name": "von_mises_fisher_davidson", "link": "softplus", "taylor_switch":
False}`` builds the S-VAE with the authors' sampler.
"""

import argparse
import json
import math
import os
import platform
import sys

import torch

from pyrovae.distributions import VonMisesFisher
from pyrovae.distributions.von_mises_fisher_sampling import work_dtype
from pyrovae.parts.posterior import VonMisesFisherPosterior, posteriors


def sample_t_davidson(kappa, m, taylor_switch=False):
    """t = 1 − w, shape of ``kappa``, by the authors' sampler (see the module's docstring),
    differentiable in ``kappa`` through b and a with ε fixed. Computed in float64 (float32's
    rounding is not what differs)."""
    kappa = kappa.to(work_dtype(kappa))
    c = torch.sqrt(4 * kappa**2 + (m - 1) ** 2)
    b = (c - 2 * kappa) / (m - 1)
    if taylor_switch:
        s = (kappa - 10).clamp(0, 1)
        b = s * (m - 1) / (4 * kappa) + (1 - s) * b
    a = (m - 1 + 2 * kappa + c) / 4
    d = 4 * a * b / (1 + b) - (m - 1) * math.log(m - 1)
    half = torch.tensor((m - 1) / 2, dtype=kappa.dtype, device=kappa.device)
    proposal = torch.distributions.Beta(half, half)
    eps = torch.zeros_like(kappa.detach())
    todo = torch.ones_like(eps, dtype=torch.bool)
    with torch.no_grad():
        while todo.any():
            e = proposal.sample(kappa.shape)
            log_u = torch.rand_like(eps).log()
            t = 2 * a * b / (1 - (1 - b) * e)
            accept = todo & ((m - 1) * t.log() - t + d > log_u)
            eps = torch.where(accept, e, eps)
            todo = todo & ~accept
    return 2 * b * eps / (1 - (1 - b) * eps)  # 1 − w, w = (1 − (1+b)ε) / (1 − (1−b)ε)


class DavidsonVonMisesFisher(VonMisesFisher):
    """:class:`~pyrovae.distributions.VonMisesFisher` drawn by the authors' sampler (m ≠ 3)."""

    def __init__(self, loc, concentration, taylor_switch=False):
        super().__init__(loc, concentration)
        self.taylor_switch = taylor_switch

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DavidsonVonMisesFisher, _instance)
        new.taylor_switch = self.taylor_switch
        return super().expand(batch_shape, _instance=new)

    def _sample_t(self, sample_shape):
        if self.dim == 3:
            return super()._sample_t(sample_shape)
        kappa = self.concentration.expand(sample_shape + self.batch_shape)
        return sample_t_davidson(kappa, self.dim, self.taylor_switch).to(self.loc.dtype)


@posteriors.register("von_mises_fisher_davidson")
class DavidsonVonMisesFisherPosterior(VonMisesFisherPosterior):
    """The vMF posterior of :class:`~pyrovae.parts.posterior.VonMisesFisherPosterior`, drawn by
    the authors' sampler (``taylor_switch``: the released one, see the module's docstring)."""

    def __init__(self, latent_dim, concentration="learned", link="exp", taylor_switch=False):
        super().__init__(latent_dim, concentration=concentration, link=link)
        self.taylor_switch = taylor_switch

    def forward(self, params):
        q = super().forward(params)
        return DavidsonVonMisesFisher(q.loc, q.concentration, self.taylor_switch)


def concentrations(folder, x, quantiles=(0.01, 0.1, 0.5, 0.9, 0.99)):
    """Quantiles of κ(x) over the rows ``x`` of the trained S-VAE in the run folder ``folder``."""
    import pyrovae

    model = pyrovae.load(folder)
    with torch.no_grad():
        kappa = model.posterior(model.encoder(x)).concentration
    values = torch.quantile(kappa, torch.tensor(quantiles)).tolist()
    return {str(q): v for q, v in zip(quantiles, values, strict=True)}


def main(args):
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
        import pyrovae

        test = pyrovae.data.load("mnist", root=args.data_root).test.x
        x = torch.bernoulli(test, generator=torch.Generator().manual_seed(0))
        kappa = {str(f): concentrations(f, x) for f in args.concentrations}
    for folder, q in kappa.items():
        print(folder, "kappa quantiles", json.dumps(q), flush=True)
    result = {
        "rows": rows,
        "concentration_quantiles": kappa,
        "num_samples": args.num_samples,
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[6, 11, 21, 41], help="ambient m")
    parser.add_argument("--kappas", type=float, nargs="+", default=[5, 10, 12, 20, 50, 100, 300])
    parser.add_argument("--num-samples", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--concentrations", nargs="*", default=[],
        help="run folders of trained S-VAEs: also report the quantiles of their κ(x) on the test "
        "images",
    )  # fmt: skip
    parser.add_argument("--data-root", default=os.environ.get("PYROVAE_DATA"))
    parser.add_argument("--out", default="benchmarks/results/davidson_sampler.json")
    main(parser.parse_args())
