"""Per-step cost of pyrovae's training step against Pyro's SVI and hand-written PyTorch.

Group ``vae-B`` (B = batch size, default 32, 128, 512): the VAE 784-256-128 → d = 20 (Gaussian
posterior, softplus scale), mirrored decoder, ReLU, Bernoulli likelihood, Adam 1e-3, the
single-sample estimator log p(x|z) + log p(z) − log q(z|x) at one reparameterised z, with

* ``torch``: the same network and estimator written in plain PyTorch, log densities spelled
  out, stepped by the optimizer ``fit`` uses (:func:`pyrovae.infer.step.adam`: fused Adam on
  the CPU) — the reference;
* ``svi``: ``pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam, Trace_ELBO()).step`` with
  the same Adam settings (one fused ``torch.optim.Adam`` per parameter, as ``pyro.optim``
  does), Pyro's validation off as in ``fit``'s steps;
* ``fit-step``: the step ``fit`` runs (:func:`pyrovae.infer.step.make_step`, validation off).

Group ``sphere``: ``fit``'s step of the S-VAE (vMF posterior, uniform prior on S^10 ⊂ R^11)
against that of the N-VAE (z in R^10), batch 100, same network; ratio = S-VAE / N-VAE.

Group ``parts`` (``--parts``): the components of the remaining gap, each timed alone on the
same inputs: the networks' forward; the ELBO's forward in Pyro (``FastTrace_ELBO`` on model and
guide) and the same log densities without Pyro; ``pyro.module`` of the five parts with the
step's ``RegisteredParams``; the numerical guard; and for the vMF (d = 11, batch 100) one
Bessel evaluation, Wood's sampler and the implicit κ-gradient.

Everything runs interleaved in one process on one thread: ``--rounds`` rounds, in each of which
every variant runs ``--steps`` steps (in a rotating order). Time is the thread's CPU time
(``time.thread_time``), which other processes on a loaded machine do not inflate. Reported:
each variant's median time per step over rounds and the median over rounds of its time divided
by its group's reference in the same round. Writes ``benchmarks/results/overhead.json``.

    nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/overhead.py --rounds 30 --steps 20 --parts
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
from pyrovae.distributions import VonMisesFisher
from pyrovae.distributions.von_mises_fisher_gradient import dt_dkappa
from pyrovae.distributions.von_mises_fisher_sampling import sample_t_wood
from pyrovae.infer import guard
from pyrovae.infer.elbo import FastTrace_ELBO
from pyrovae.infer.step import (
    RegisteredParams,
    adam,
    make_step,
    named_parameters,
    trainable_parameters,
)
from pyrovae.ops.special import log_bessel_iv_and_ratio

RESULTS = Path(__file__).parent / "results" / "overhead.json"
HIDDEN, LATENT, LR = (256, 128), 20, 1e-3
LOG_2PI = math.log(2 * math.pi)


class TorchVAE(nn.Module):
    """The same network and estimator in plain PyTorch."""

    def __init__(self, latent=LATENT):
        super().__init__()
        h1, h2 = HIDDEN
        self.trunk = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        self.loc, self.scale = nn.Linear(h2, latent), nn.Linear(h2, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU(), nn.Linear(h1, 784)
        )

    def forward(self, x):
        """Negative single-sample ELBO, summed over the batch (Trace_ELBO's loss)."""
        h = self.trunk(x)
        loc, scale = self.loc(h), F.softplus(self.scale(h)) + 1e-5
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        log_q = (-0.5 * eps**2 - scale.log() - 0.5 * LOG_2PI).sum()
        log_p_z = (-0.5 * z**2 - 0.5 * LOG_2PI).sum()
        log_p_x = -F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
        return -(log_p_x + log_p_z - log_q)


def torch_step(latent=LATENT):
    model = TorchVAE(latent)
    optimizer = adam(model.parameters(), LR)

    def step(x):
        optimizer.zero_grad()
        loss = model(x) / x.shape[0]
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def svi_step(name):
    vae = pyrovae.VAE(784, LATENT, hidden=HIDDEN, name=name)
    optim = pyro.optim.Adam({"lr": LR, "fused": True})
    svi = pyro.infer.SVI(vae.model, vae.guide, optim, pyro.infer.Trace_ELBO())

    def step(x):
        with pyro.validation_enabled(False):
            return svi.step(x)

    return step


def fit_step(name, x, **vae_options):
    """The step of ``pyrovae.fit`` with its defaults (Trace_ELBO, no warm-up)."""
    vae = pyrovae.VAE(784, hidden=HIDDEN, name=name, **{"latent_dim": LATENT, **vae_options})
    elbo = pyro.infer.Trace_ELBO()
    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    step = make_step(elbo, vae, vae.model, vae.guide, named_parameters(vae, params))
    optimizer = adam(params, LR)

    def run(x):
        with pyro.validation_enabled(False):
            return step(x, len(x), optimizer, (1, 1))

    return run


def parts(x):
    """Component timings (see the module docstring), each a function of no arguments."""
    vae = pyrovae.VAE(784, LATENT, hidden=HIDDEN, name="parts")
    elbo = FastTrace_ELBO()
    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    registered = RegisteredParams(params)
    model, guide = registered(vae.model), registered(vae.guide)
    named = named_parameters(vae, params)
    elbo.differentiable_loss(model, guide, x).backward()

    def without_pyro():
        q = vae.posterior(vae.encoder(x))
        z = q.rsample()
        log_p_z = pyro.distributions.Normal(0.0, 1.0).log_prob(z).sum()
        return -(vae.likelihood(vae.decoder(z)).log_prob(x).sum() + log_p_z - q.log_prob(z).sum())

    def modules():
        for part in ("prior", "decoder", "likelihood", "encoder", "posterior"):
            pyro.module(f"parts.{part}", getattr(vae, part))

    def networks():
        return vae.decoder(vae.posterior(vae.encoder(x)).rsample())

    d, batch = 11, 100
    kappa = torch.linspace(5.0, 80.0, batch, dtype=torch.float64)
    t = sample_t_wood(kappa, d)
    a = log_bessel_iv_and_ratio(0.5 * d - 1, kappa)[1]
    loc = F.normalize(torch.randn(batch, d), dim=-1)
    with pyro.validation_enabled(False):
        return {
            "networks-forward": networks,
            "pyro-elbo-forward": lambda: elbo.differentiable_loss(model, guide, x),
            "same-densities-without-pyro": without_pyro,
            "pyro.module-x5": registered(modules),
            "guard": lambda: guard.check_step(x.sum(), named, "", None),
            "vmf-bessel": lambda: log_bessel_iv_and_ratio(0.5 * d - 1, kappa),
            "vmf-wood-sampler": lambda: sample_t_wood(kappa.float(), d),
            "vmf-implicit-gradient": lambda: dt_dkappa(t, kappa, d, a),
            "vmf-rsample": lambda: VonMisesFisher(loc, kappa.float()).rsample(),
        }


def variants(batches, with_parts):
    """``{group: {variant: step(x)}}`` (the first variant is the group's reference) and
    ``{group: [batches]}``."""
    pyro.set_rng_seed(0)
    groups, data = {}, {}
    for b in batches:
        xs = [torch.bernoulli(torch.full((b, 784), 0.13)) for _ in range(4)]
        data[f"vae-{b}"] = xs
        groups[f"vae-{b}"] = {
            "torch": torch_step(),
            "svi": svi_step(f"svi{b}"),
            "fit-step": fit_step(f"fit{b}", xs[0]),
        }
    xs = [torch.bernoulli(torch.full((100, 784), 0.13)) for _ in range(4)]
    data["sphere"] = xs
    sphere = {"prior": "hyperspherical_uniform", "posterior": "von_mises_fisher"}
    groups["sphere"] = {
        "nvae-fit-step": fit_step("nvae", xs[0], latent_dim=10),
        "svae-fit-step": fit_step("svae", xs[0], latent_dim=11, **sphere),
        "nvae-torch": torch_step(latent=10),
    }
    if with_parts:
        data["parts"] = [data.get("vae-128", xs)[0]]
        components = parts(data["parts"][0])
        groups["parts"] = {name: _any_batch(f) for name, f in components.items()}
    return groups, data


def _any_batch(fn):
    """``fn`` of no arguments as a step of one (ignored) batch."""
    return lambda x: fn()


def main(args):
    torch.set_num_threads(1)
    groups, data = variants(args.batches, args.parts)
    runs = [(g, v) for g in groups for v in groups[g]]
    for g, v in runs:  # warm up: lazy allocations, Adam state
        for x in data[g]:
            groups[g][v](x)
    per_round = {run: [] for run in runs}
    for r in range(args.rounds):
        for g, v in runs[r % len(runs) :] + runs[: r % len(runs)]:
            step, xs = groups[g][v], data[g]
            tic = time.thread_time()
            for i in range(args.steps):
                step(xs[i % len(xs)])
            per_round[g, v].append((time.thread_time() - tic) / args.steps)
    report = {
        "command": "python " + " ".join(sys.argv),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, 1 thread, thread CPU time",
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "groups": {},
    }
    for g, steps in groups.items():
        reference = next(iter(steps))
        report["groups"][g] = {"reference": reference, "variants": {}}
        for v in steps:
            ratios = [a / b for a, b in zip(per_round[g, v], per_round[g, reference], strict=True)]
            entry = {
                "median_step_ms": 1e3 * statistics.median(per_round[g, v]),
                "ratio": statistics.median(ratios),
            }
            report["groups"][g]["variants"][v] = entry
            print(f"{g:>8} {v:>28}: {entry['median_step_ms']:8.3f} ms  ratio {entry['ratio']:.3f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--parts", action="store_true", help="also time the components")
    main(parser.parse_args())
