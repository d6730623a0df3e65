"""Per-step cost of pyrovae's training step against Pyro's SVI and hand-written PyTorch.

Group ``vae-B`` (B = batch size, default 128, 512): the VAE 784-256-128 → d = 20 (Gaussian
posterior, softplus scale), mirrored decoder, ReLU, Bernoulli likelihood, Adam 1e-3, the
single-sample estimator log p(x|z) + log p(z) − log q(z|x) at one reparameterised z, with

* ``torch``: the same network and estimator written in plain PyTorch, log densities spelled
  out, stepped by the optimizer ``fit`` uses (:func:`pyrovae.infer.step.adam`: fused Adam on
  the CPU) — the reference;
* ``svi``: ``pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam, Trace_ELBO()).step`` with
  the same Adam settings (one fused ``torch.optim.Adam`` per parameter, as ``pyro.optim``
  does), Pyro's validation off as in ``fit``'s steps;
* ``fit-step``: the step ``fit`` runs (:func:`pyrovae.infer.step.make_step`, validation off);
* ``fit-step-jit``: the same step traced (``fit(jit=True)``).

Groups ``sphere`` and ``sphere-jit``: ``fit``'s step of the S-VAE (vMF posterior, uniform prior
on S^10 ⊂ R^11) against that of the N-VAE (z in R^10), batch 100, same network, eager and
traced; ratio = S-VAE / N-VAE (``sphere`` also has the hand-written N-VAE step).

Group ``parts`` (``--parts``): the components of the remaining gap, each timed alone on the
same inputs: the networks' forward; the ELBO's forward in Pyro (``FastTrace_ELBO`` on model and
guide) and the same log densities without Pyro; ``pyro.module`` of the five parts with the
step's ``RegisteredParams``; the numerical guard; and for the vMF (d = 11, batch 100) one
Bessel evaluation, Wood's sampler and the implicit κ-gradient.

Everything runs interleaved in one process on one thread: ``--rounds`` rounds, in each of which
every variant runs ``--steps`` steps (in a rotating order). Time is the thread's CPU time
(``time.thread_time``), which other processes on a loaded machine do not inflate. Reported for
each variant: its time per step and its time divided by its group's reference in the same
round, each as the median over rounds with the interquartile range and min–max. Writes
``benchmarks/results/overhead/overhead.json``.

    nice -n 10 env OMP_NUM_THREADS=1 python -m benchmarks overhead --full

(``--full``: 30 rounds of 20 steps, with ``--parts``.)
"""

import os
import statistics
import time

import pyro
import torch
import torch.nn.functional as F

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

from .plain_vae import HIDDEN, LATENT, LR, TorchVAE

QUICK = ["--rounds", "2", "--steps", "2", "--batches", "32"]
FULL = ["--parts"]
SEEDS = (0,)


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


def fit_step(name, x, jit=False, **vae_options):
    """The step of ``pyrovae.fit`` with its defaults (Trace_ELBO, no warm-up); ``jit``: the
    traced step (``fit(jit=True)``)."""
    vae = pyrovae.VAE(784, hidden=HIDDEN, name=name, **{"latent_dim": LATENT, **vae_options})
    elbo = pyro.infer.Trace_ELBO()
    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    named = named_parameters(vae, params)
    step = make_step(elbo, vae, vae.model, vae.guide, named, jit=jit)
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
            "fit-step-jit": fit_step(f"jit{b}", xs[0], jit=True),
        }
    xs = [torch.bernoulli(torch.full((100, 784), 0.13)) for _ in range(4)]
    sphere = {"prior": "hyperspherical_uniform", "posterior": "von_mises_fisher"}
    for mode, jit in (("", False), ("-jit", True)):
        data[f"sphere{mode}"] = xs
        groups[f"sphere{mode}"] = {
            f"nvae-fit-step{mode}": fit_step(f"nvae{mode}", xs[0], jit, latent_dim=10),
            f"svae-fit-step{mode}": fit_step(f"svae{mode}", xs[0], jit, latent_dim=11, **sphere),
        }
    groups["sphere"]["nvae-torch"] = torch_step(latent=10)
    if with_parts:
        data["parts"] = [data.get("vae-128", xs)[0]]
        components = parts(data["parts"][0])
        groups["parts"] = {name: _any_batch(f) for name, f in components.items()}
    return groups, data


def _any_batch(fn):
    """``fn`` of no arguments as a step of one (ignored) batch."""
    return lambda x: fn()


def main(args, session):
    """All rounds (one seed: the timings do not depend on it)."""
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
        "load_average_at_end": os.getloadavg(),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "groups": {},
    }
    for g, steps in groups.items():
        reference = next(iter(steps))
        report["groups"][g] = {"reference": reference, "variants": {}}
        for v in steps:
            ms = [1e3 * t for t in per_round[g, v]]
            ratios = [a / b for a, b in zip(per_round[g, v], per_round[g, reference], strict=True)]
            entry = {"step_ms": _spread(ms), "ratio": _spread(ratios)}
            report["groups"][g]["variants"][v] = entry
            r = entry["ratio"]
            print(
                f"{g:>10} {v:>24}: {entry['step_ms']['median']:8.3f} ms  ratio {r['median']:.3f}"
                f" (IQR {r['iqr'][0]:.3f}-{r['iqr'][1]:.3f}, min-max {r['min']:.3f}-{r['max']:.3f})"
            )
    session.write("overhead.json", report)


def arguments(parser):
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--parts", action="store_true", help="also time the components")
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")


def _spread(values):
    """Median, interquartile range and min–max of a list of per-round values."""
    q1, _, q3 = statistics.quantiles(values, n=4)
    return {
        "median": statistics.median(values),
        "iqr": [q1, q3],
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }
