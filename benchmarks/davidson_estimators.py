"""Davidson et al. 2018, Table 1: the log-likelihood by importance sampling beside the
estimate that the authors' released TensorFlow example computes, on the same trained rows.

For test rows x and draws z_0, z_1, …, z_S ~ q(z | x) (independent):

.. math::
    \\log \\hat p_{IS}(x) = \\log \\frac1S \\sum_{s=1}^S
        \\frac{p(x \\mid z_s)\\, p(z_s)}{q(z_s \\mid x)}
    \\qquad
    \\log \\hat p_{tf}(x) = \\log p(x \\mid z_0) + \\log \\frac1S \\sum_{s=1}^S
        \\frac{p(z_s)}{q(z_s \\mid x)}

The first is Burda et al.'s, pyrovae's (``pyrovae.evaluate``) and the authors' PyTorch code's
(``s-vae-pytorch`` ``examples/mnist.py`` and ``trdavidson/increasing-expressivity-s-vae``
``models.py``, ``log_likelihood``: they decode all S draws). The second is what
``nicola-decao/s-vae-tf`` ``examples/mnist.py`` ``log_likelihood`` computes, the same from
f504e9b (2018-03-28) to b05e8e2 (2018-11-28): its ``log_p_x_z`` is ``-reduce_sum(optimizer.bce)``,
the cross-entropy of the training graph's single draw ``model.z`` (z_0), while ``log_p_z`` and
``log_q_z_x`` are taken at S fresh draws ``q_z.sample(n)``. Its expectation lies between the
ELBO (S = 1) and, as S → ∞ (where the mean of p/q → ∫ p = 1), E_q log p(x | z) = ELBO +
KL(q ‖ p), which is not a bound on log p(x). At finite S the ratio p/q is heavy-tailed, and
the more so the more latent dimensions q concentrates: the estimate's excess over the ELBO grows
with the number of dimensions the posterior uses — all of them for the vMF, which cannot switch
a dimension off.

Each row is the best epoch of a ``davidson_table.py`` run folder (``--runs/{family}-d{d}``);
the test images are binarized once with the same seed as there. Both estimates use the same S
draws; z_0 is one more. Results: ``results/davidson_estimators.json``.

    python benchmarks/davidson_estimators.py --data-root ../shared/data
    python benchmarks/davidson_estimators.py --table
"""

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path

import pyro
import torch
from davidson_table import PUBLISHED
from pyro import poutine
from results_file import merge_row

import pyrovae
from pyrovae.infer.checkpoint import load as load_checkpoint

RESULTS = Path(__file__).parent / "results" / "davidson_estimators.json"


def log_terms(model, x, num_samples):
    """log p(x | z_s), log p(z_s) and log q(z_s | x) for ``num_samples`` draws z_s ~ q(z | x)
    of the rows ``x`` ``(N, 784)``: each ``(S, N)``."""
    with pyro.plate("particles", num_samples, dim=-2):
        guide = poutine.trace(model.guide).get_trace(x)
        trace = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)
    trace.compute_log_prob()
    guide.compute_log_prob()
    return (
        trace.nodes["x"]["log_prob"].double(),
        trace.nodes["z"]["log_prob"].double(),
        guide.nodes["z"]["log_prob"].double(),
    )


@torch.no_grad()
def estimates(model, x, num_samples):
    """Per row of ``x``: the importance-sampled log p(x), s-vae-tf's estimate, the ELBO and
    the KL (both averaged over the S draws), each ``(N,)``."""
    log_px, log_pz, log_q = log_terms(model, x, num_samples + 1)
    ratio = log_pz[1:] - log_q[1:]  # log p(z_s) / q(z_s | x), s = 1..S: (S, N)
    log_w = log_px[1:] + ratio  # importance weights' logs: (S, N)
    log_s = math.log(num_samples)
    return {
        "log_likelihood": log_w.logsumexp(0) - log_s,
        "log_likelihood_svae_tf": log_px[0] + ratio.logsumexp(0) - log_s,
        "elbo": log_w.mean(0),
        "kl": -ratio.mean(0),
    }


def best_model(folder):
    """The run's model with the parameters of its best validation epoch (of its last epoch for
    a run without a validation split, ``davidson_table.py --train-on all``), that epoch and the
    number of epochs run."""
    model = pyrovae.load(folder)
    state = load_checkpoint(Path(folder) / "checkpoint.pt", model)
    last = state["history"]["epoch"][-1]
    if "best" not in state:  # no early stopping: the checkpoint's parameters are the last's
        return model.eval(), last, last
    model.load_state_dict(state["best"]["state"])
    return model.eval(), state["best"]["epoch"], last


def row(family, paper_d, test, args):
    """One results entry: both estimates (means and standard errors over the ``test`` rows)
    for the run folder ``--runs/{family}-d{paper_d}``, beside the paper's figures."""
    folder = Path(args.runs).expanduser() / f"{family}-d{paper_d}"
    model, best_epoch, epochs_run = best_model(folder)
    per_row = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        for x in test.chunks(100):
            for k, v in estimates(model, x, args.num_samples).items():
                per_row.setdefault(k, []).append(v)
    figures = {}
    for k, v in per_row.items():
        v = torch.cat(v)
        figures[k], figures[f"{k}_stderr"] = v.mean().item(), (v.std() / len(v) ** 0.5).item()
    pub = PUBLISHED[paper_d][0:2] if family == "normal" else PUBLISHED[paper_d][2:4]
    return {
        "family": family,
        "paper_d": paper_d,
        "latent_dim": model.latent_dim,
        "runs": str(folder),
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "num_samples": args.num_samples,
        **figures,
        "published_log_likelihood": pub[0],
        "published_elbo": pub[1],
        "command": "python " + " ".join(sys.argv),
    }


def order(entry):
    """Rows as in the paper's table, a row's longer runs after its 200-epoch one."""
    return entry["family"], entry["paper_d"], entry["epochs_run"]


def table(entries):
    """Markdown: both estimates beside the paper's LL, and each one's excess over the ELBO."""
    lines = [
        "| row | epochs (best) | ELBO | LL, importance sampling | LL, s-vae-tf's estimate | "
        "paper LL | paper ELBO | LL − ELBO: IS / s-vae-tf / paper |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in sorted(entries, key=order):
        name = f"N-VAE d = {e['paper_d']}" if e["family"] == "normal" else f"S-VAE S^{e['paper_d']}"
        lines.append(
            f"| {name} | {e['epochs_run']} ({e['best_epoch']}) | {e['elbo']:.2f} | "
            f"{e['log_likelihood']:.2f} ± {e['log_likelihood_stderr']:.2f} | "
            f"{e['log_likelihood_svae_tf']:.2f} ± {e['log_likelihood_svae_tf_stderr']:.2f} | "
            f"{e['published_log_likelihood']:.2f} | {e['published_elbo']:.2f} | "
            f"{e['log_likelihood'] - e['elbo']:.2f} / "
            f"{e['log_likelihood_svae_tf'] - e['elbo']:.2f} / "
            f"{e['published_log_likelihood'] - e['published_elbo']:.2f} |"
        )
    return "\n".join(lines)


def main(args):
    torch.set_num_threads(1)
    results = Path(args.results)
    if args.table:
        print(table(json.loads(results.read_text())["entries"]))
        return
    test = pyrovae.data.load("mnist", root=args.data_root, binarize="dynamic").test
    for family in args.families:
        for d in args.dims:
            entry = row(family, d, test, args)
            merge_row(
                results, entry, ("runs", "family", "paper_d"),
                torch=torch.__version__, pyro=pyro.__version__,
                machine=f"{platform.machine()}, {os.cpu_count()} cores, 1 thread",
            )  # fmt: skip
            print(json.dumps(entry), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", choices=("normal", "sphere"),
                        default=["sphere", "normal"])  # fmt: skip
    parser.add_argument("--dims", type=int, nargs="+", default=sorted(PUBLISHED))
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=os.environ.get("PYROVAE_DATA"))
    parser.add_argument("--runs", default="~/pyrovae-runs/davidson")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--table", action="store_true", help="print the table of the results")
    main(parser.parse_args())
