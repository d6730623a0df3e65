"""Why pyrovae and pyroVED end apart on the same N-VAE: swap the trainer and the model.

``peers.py`` trains the same N-VAE (784-256-128 ReLU, d = 10, Bernoulli, Monte Carlo KL
``Trace_ELBO``, Adam 1e-3, batch 100, identical batches) with both libraries. This program
crosses the two halves, so that each difference has its own arm:

* ``pyrovae``: ``pyrovae.VAE`` (built under ``torch.manual_seed(seed)``) trained by
  ``pyrovae.fit(seed=seed)``;
* ``pyroved``: pyroVED's ``iVAE(invariances=None, seed=seed)`` trained by its
  ``SVItrainer(seed=seed)``;
* ``pyroved_in_fit``: the same ``iVAE`` (same initial weights) trained by ``pyrovae.fit``:
  against ``pyroved``, only the trainer differs (per-example loss, fused Adam,
  ``FastTrace_ELBO``; both reseed the sampling noise with ``seed`` before the first step);
* ``pyrovae_in_svitrainer``: the same ``pyrovae.VAE`` trained by pyroVED's ``SVItrainer``:
  against ``pyrovae``, only the trainer differs;
* ``pyrovae_exp_scale``: ``pyrovae`` with pythae's scale link σ = exp(raw / 2) (raw is the
  log-variance) instead of softplus(raw) + 1e-5: against ``pyrovae``, only the link differs
  (same initial weights, batches and noise);
* ``pyrovae_unaliased``: ``pyrovae`` with the initial weights drawn under seed + 10,000.
  ``fit(seed=seed)`` reseeds torch's generator with the seed that drew the ``pyrovae`` arm's
  initial weights (as pyroVED's trainer does), so that arm's first sampling noise is made
  from the same random stream as its first layers; here the two streams are unrelated.

Each row: the training loss per epoch, a screening LL (importance sampling with
``--num-samples`` samples on the first ``--test-rows`` test images; ``peers.py`` has the full
estimator), the ELBO there, and the active latent dimensions (Burda et al. 2016: dimension k
is active when Var_x(E_q[z_k | x]) > 0.01, over all 10,000 test images).

Needs the ``bench`` extra (the peers). Rows merge into ``results/peers_swaps/peers_swaps.json``,
keyed by arm and seed; the full form runs seeds 0–4.
"""

import json
import time

import pyro.distributions as dist
import torch

import pyrovae
from pyrovae.parts import NormalPrior
from pyrovae.parts.posterior import NormalPosterior

from .peer_parts import HIDDEN, Batches, Wrapped, train_only

FULL = []
QUICK = ["--epochs", "1", "--num-samples", "10", "--test-rows", "50"]
SEEDS = (0, 1, 2, 3, 4)

PARTS = {  # arm: (model and its initial weights, trainer)
    "pyrovae": ("pyrovae.VAE", "pyrovae.fit"),
    "pyroved": ("pyroVED iVAE", "pyroVED SVItrainer"),
    "pyroved_in_fit": ("pyroVED iVAE", "pyrovae.fit"),
    "pyrovae_in_svitrainer": ("pyrovae.VAE", "pyroVED SVItrainer"),
    "pyrovae_exp_scale": ("pyrovae.VAE, σ = exp(raw / 2)", "pyrovae.fit"),
    "pyrovae_unaliased": ("pyrovae.VAE, drawn under seed + 10,000", "pyrovae.fit"),
}
ARMS = list(PARTS)
UNALIASED = 10_000  # the pyrovae_unaliased arm draws its initial weights under seed + this


def pyroved_vae(seed, input_dim):
    """pyroVED's plain VAE with peers.py's layers; it seeds torch with ``seed`` itself."""
    from pyroved.models import iVAE

    return iVAE(
        (input_dim,),
        latent_dim=10,
        invariances=None,
        hidden_dim_e=list(HIDDEN),
        hidden_dim_d=list(reversed(HIDDEN)),
        activation="relu",
        sampler_d="bernoulli",
        seed=seed,
        device="cpu",
    )


class ExpScaleNormal(NormalPosterior):
    """q(z | x) = N(μ, diag σ²) with σ = exp(raw / 2): the encoder's ``scale`` output is the
    log-variance, as in pythae."""

    def forward(self, params):
        return dist.Normal(params["loc"], (0.5 * params["scale"]).exp()).to_event(1)


def pyrovae_vae(seed, input_dim, posterior="normal"):
    torch.manual_seed(seed)
    return pyrovae.VAE(input_dim, 10, hidden=HIDDEN, activation="relu", posterior=posterior)


def scored(vae, input_dim):
    """The trained VAE as (model/guide pair for ``pyrovae.evaluate``, x ↦ E_q[z | x])."""
    if isinstance(vae, pyrovae.VAE):
        posterior = lambda x: vae.posterior(vae.encoder(x))  # noqa: E731
        logits = vae.decoder
    else:  # pyroVED: the decoder's logits, before its sigmoid
        posterior = lambda x: dist.Normal(*vae.encoder_z(x)).to_event(1)  # noqa: E731
        logits = lambda z: vae.decoder.out(vae.decoder.fc_layers(z))  # noqa: E731
    return Wrapped(
        NormalPrior(10), posterior, logits, [vae], input_dim
    ), lambda x: posterior(x).mean


def train(arm, data, args, seed):
    """The arm's VAE after ``args.epochs`` epochs, and its training loss per epoch."""
    if arm.startswith("pyroved"):
        vae = pyroved_vae(seed, data.input_dim)
    else:
        exp = arm == "pyrovae_exp_scale"
        init = seed + UNALIASED if arm == "pyrovae_unaliased" else seed
        vae = pyrovae_vae(init, data.input_dim, ExpScaleNormal(10) if exp else "normal")
    if PARTS[arm][1] == "pyrovae.fit":
        options = {"epochs": args.epochs, "batch_size": 100, "lr": 1e-3, "progress": False}
        history = pyrovae.fit(vae, train_only(data), seed=seed, **options)
        return vae, [-e for e in history["train_elbo"]]
    from pyroved.trainers import SVItrainer

    trainer = SVItrainer(vae, lr=1e-3, seed=seed, device="cpu")
    loader = Batches(data, seed, lambda x: (x,))
    for _ in range(args.epochs):
        trainer.step(loader)
    return vae, trainer.loss_history["training_loss"]


def run(arm, data, args, seed):
    tic = time.process_time()
    vae, curve = train(arm, data, args, seed)
    cpu = time.process_time() - tic
    wrapped, mean = scored(vae, data.input_dim)
    with torch.no_grad():
        active = int((mean(data.test.x).var(0) > 0.01).sum())
    rows = data.test.x[: args.test_rows]
    metrics = pyrovae.evaluate(wrapped, rows, num_samples=args.num_samples, seed=0)
    return {
        "arm": arm,
        "seed": seed,
        "epochs": args.epochs,
        "train_loss_curve": [float(v) for v in curve],
        "log_likelihood": metrics["log_likelihood"],
        "log_likelihood_stderr": metrics["log_likelihood_stderr"],
        "elbo": metrics["elbo"],
        "num_samples": args.num_samples,
        "test_rows": len(rows),
        "active_dims": active,
        "train_cpu_seconds": cpu,
    }


def table(entries):
    """Markdown: per arm, the LL of each seed (active dimensions), their mean, and the mean
    training loss of the last epoch."""
    lines = [
        "| arm | model (initial weights) | trainer | LL by seed (active dims) | mean LL | "
        "last epoch's training loss, mean |",
        "|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        rows = sorted((e for e in entries if e["arm"] == arm), key=lambda e: e["seed"])
        if not rows:
            continue
        by_seed = ", ".join(
            f"{e['seed']}: {e['log_likelihood']:.2f} ({e['active_dims']})" for e in rows
        )
        mean = sum(e["log_likelihood"] for e in rows) / len(rows)
        loss = sum(e["train_loss_curve"][-1] for e in rows) / len(rows)
        lines.append(
            f"| {arm} | {PARTS[arm][0]} | {PARTS[arm][1]} | {by_seed} | {mean:.2f} | {loss:.2f} |"
        )
    return "\n".join(lines)


def main(args, session):
    if args.table:
        print(table(json.loads((session.results / "peers_swaps.json").read_text())["entries"]))
        return
    data = session.load("mnist", binarize="dynamic")
    for arm in args.arms:
        row = run(arm, data, args, args.seed)
        session.merge("peers_swaps.json", row, ("arm", "seed"))
        print(json.dumps(row), flush=True)


def arguments(parser):
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--table", action="store_true", help="print the table of the results")
