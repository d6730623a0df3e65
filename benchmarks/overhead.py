"""Per-step overhead of pyrovae's VAE under Pyro against the same VAE written in plain PyTorch.

Network 784-256-128 → d=20 (Gaussian posterior, softplus scale), mirrored decoder, ReLU,
Bernoulli likelihood, batch 128, Adam 1e-3, single-sample ELBO estimated as Trace_ELBO does
it: log p(x|z) + log p(z) − log q(z|x) at one reparameterised z (no analytic KL). Variants:

* ``torch``: the hand-written PyTorch VAE, log densities written out (the reference);
* ``torch-distributions``: the same with ``torch.distributions`` Normal/Bernoulli objects;
* ``svi``: ``pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam, Trace_ELBO()).step``;
* ``svi-novalidate``: the same under ``pyro.validation_enabled(False)``;
* ``fit-step``: the step inside ``pyrovae.fit`` (``Trace_ELBO()(model, guide)``, an
  ELBOModule, with ``torch.optim.Adam`` and ``loss.item()``, validation off as in ``fit``);
* ``fit``: whole ``pyrovae.fit`` calls, one epoch over ``--steps`` batches per round (adds
  shuffling, the parameter pass and the optimizer set-up; per-step time = call time / steps).

The variants run interleaved in one process, one thread: ``--rounds`` rounds of ``--steps``
steps each, in a rotating order. Time is the process's CPU time (``time.process_time``),
steadier than wall time on a shared machine (wall-time ratios are reported too). Reported:
the median step time of each variant and the median over rounds of its time per step divided
by the torch time of the same round. Writes ``benchmarks/results/overhead.json``.

    python benchmarks/overhead.py --rounds 20 --steps 50
"""

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch
import torch.nn.functional as F
from torch import nn

import pyrovae
from pyrovae.infer.distributed import Context
from pyrovae.infer.step import make_step, named_parameters

RESULTS = Path(__file__).parent / "results" / "overhead.json"
HIDDEN, LATENT, BATCH, LR = (256, 128), 20, 128, 1e-3
LOG_2PI = math.log(2 * math.pi)


class TorchVAE(nn.Module):
    """The same network and estimator in plain PyTorch."""

    def __init__(self, use_distributions=False):
        super().__init__()
        h1, h2 = HIDDEN
        self.trunk = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        self.loc, self.scale = nn.Linear(h2, LATENT), nn.Linear(h2, LATENT)
        self.decoder = nn.Sequential(
            nn.Linear(LATENT, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU(), nn.Linear(h1, 784)
        )
        self.use_distributions = use_distributions

    def forward(self, x):
        """Negative single-sample ELBO, summed over the batch (Trace_ELBO's loss)."""
        h = self.trunk(x)
        loc, scale = self.loc(h), F.softplus(self.scale(h)) + 1e-5
        if self.use_distributions:
            q = torch.distributions.Normal(loc, scale)
            z = q.rsample()
            p_z = torch.distributions.Normal(torch.zeros_like(z), 1.0)
            p_x = torch.distributions.Bernoulli(logits=self.decoder(z))
            return -(p_x.log_prob(x).sum() + p_z.log_prob(z).sum() - q.log_prob(z).sum())
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        log_q = (-0.5 * eps**2 - scale.log() - 0.5 * LOG_2PI).sum()
        log_p_z = (-0.5 * z**2 - 0.5 * LOG_2PI).sum()
        log_p_x = -F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
        return -(log_p_x + log_p_z - log_q)


def timed_steps(step):
    """A round runner: ``run(batches, n)`` → CPU seconds of each of n steps."""

    def run(batches, n):
        times = []
        for i in range(n):
            tic = time.process_time()
            step(batches[i % len(batches)])
            times.append(time.process_time() - tic)
        return times

    return run


def torch_variant(name, use_distributions=False):
    model = TorchVAE(use_distributions)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def step(x):
        optimizer.zero_grad()
        loss = model(x) / x.shape[0]
        loss.backward()
        optimizer.step()
        return loss.item()

    return timed_steps(step)


def svi_variant(name, validate=True):
    vae = pyrovae.VAE(784, LATENT, hidden=HIDDEN, name=name)
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": LR}), pyro.infer.Trace_ELBO())

    def step(x):
        with pyro.validation_enabled(validate):
            return svi.step(x)

    return timed_steps(step)


def fit_step_variant(name):
    """The loop body of ``pyrovae.fit`` with its defaults (no warm-up)."""
    vae = pyrovae.VAE(784, LATENT, hidden=HIDDEN, name=name)
    named = named_parameters(vae, list(vae.parameters()))
    step = make_step(pyro.infer.Trace_ELBO(), vae, vae.model, vae.guide, named, Context())
    optimizer = torch.optim.Adam(vae.parameters(), lr=LR)

    def fit_step(x):
        with pyro.validation_enabled(False):
            return step(x, len(x), optimizer, (1, 1))

    return timed_steps(fit_step)


def fit_variant(name):
    """Whole ``pyrovae.fit`` calls: one epoch over n batches, time divided by n."""
    vae = pyrovae.VAE(784, LATENT, hidden=HIDDEN, name=name)

    def run(batches, n):
        x = torch.cat([batches[i % len(batches)] for i in range(n)])
        tic = time.process_time()
        pyrovae.fit(vae, x, epochs=1, batch_size=BATCH, lr=LR, progress=False)
        return [(time.process_time() - tic) / n] * n

    return run


VARIANTS = {
    "torch": torch_variant,
    "torch-distributions": lambda name: torch_variant(name, use_distributions=True),
    "svi": svi_variant,
    "svi-novalidate": lambda name: svi_variant(name, validate=False),
    "fit-step": fit_step_variant,
    "fit": fit_variant,
}


def main(args):
    if "torch" not in args.variants:
        raise ValueError("--variants must include torch, the reference of the ratios")
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    batches = [torch.bernoulli(torch.full((BATCH, 784), 0.13)) for _ in range(8)]
    runners = {name: VARIANTS[name](name) for name in args.variants}
    for run in runners.values():  # warm up: lazy allocations, Adam state
        run(batches, len(batches))
    per_step = {name: [] for name in runners}
    per_round = {name: [] for name in runners}
    wall = {name: [] for name in runners}
    names = list(runners)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            tic, wall_tic = time.process_time(), time.perf_counter()
            per_step[name] += runners[name](batches, args.steps)
            per_round[name].append((time.process_time() - tic) / args.steps)
            wall[name].append((time.perf_counter() - wall_tic) / args.steps)
    report = {
        "command": "python " + " ".join(sys.argv),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "machine": f"{platform.machine()}, 1 thread",
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "batch_size": BATCH,
        "variants": {},
    }
    for name in names:
        ratios = [a / b for a, b in zip(per_round[name], per_round["torch"], strict=True)]
        wall_ratios = [a / b for a, b in zip(wall[name], wall["torch"], strict=True)]
        report["variants"][name] = {
            "median_step_ms": 1e3 * statistics.median(per_step[name]),
            "median_round_step_ms": 1e3 * statistics.median(per_round[name]),
            "ratio_to_torch": statistics.median(ratios),
            "wall_ratio_to_torch": statistics.median(wall_ratios),
        }
        print(f"{name:>20}: {json.dumps(report['variants'][name])}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME"
    )
    main(parser.parse_args())
