"""The researcher's toolbox on dynamically binarized MNIST, at an equal number of epochs.

Standard VAE (N(0, I) prior, diagonal Normal posterior, ELBO) against one change at a time:
the VampPrior, an IAF posterior, IWAE training with k = 5 and k = 50, and conv networks. MLPs
784-200-200-d tanh as in Burda et al. 2016 (d = 50 by default, their latent size, so that
their Table 1 anchors print beside ours: VAE k = 1 LL −86.76, IWAE k = 50 −84.78, after 3,280
passes); Adam 1e-3, batch 100, no warm-up, no early stopping, seed 0. Every figure is the
test log-likelihood by importance sampling (``pyrovae.evaluate``, 5,000 samples by default)
and the ELBO (the mean of the same importance log-weights).

Each model trains in the run folder the runner names (``<runs>/toolbox_mnist/<budget>/
<name>-s<seed>``) with a checkpoint every epoch, and each result row is merged as soon as it
exists (keyed by name and seed): a rerun resumes where a killed run stopped and skips the rows
it has. ``--train-rows``/``--test-rows``/``--num-samples`` shrink the run for a small budget.
Writes ``benchmarks/results/toolbox_mnist/toolbox_mnist.json``.
"""

import json
import time

import pyro

import pyrovae
from pyrovae.data import Data, Split

QUICK = [
    "--epochs", "1", "--latent-dim", "2", "--pseudo-inputs", "10", "--num-samples", "10",
    "--test-rows", "100",
]  # fmt: skip
FULL = [
    "--epochs", "5", "--train-rows", "10000", "--test-rows", "1000", "--num-samples", "1000",
]  # fmt: skip
SEEDS = (0,)
BURDA = {"vae": -86.76, "iwae_k50": -84.78}  # Burda et al. 2016, Table 1, 3,280 passes
CONV = {"name": "conv", "channels": [32, 64], "hidden": [200]}
NAMES = ("vae", "vamp", "iaf", "iwae_k5", "iwae_k50", "conv")


def variants(args):
    """name → (VAE options, fit options): one change from the standard VAE each."""
    vamp = {"name": "vamp", "num_pseudo_inputs": args.pseudo_inputs}
    return {
        "vae": ({}, {}),
        "vamp": ({"prior": vamp}, {}),
        "iaf": ({"posterior": {"name": "iaf", "num_flows": 2}}, {}),
        "iwae_k5": ({}, {"elbo": "iwae", "num_particles": 5}),
        "iwae_k50": ({}, {"elbo": "iwae", "num_particles": 50}),
        "conv": ({"input_dim": args.input_shape, "encoder": CONV, "decoder": CONV}, {}),
    }


def train(name, model_options, fit_options, data, args, session):
    """Train (or load) one variant; returns the model and its training CPU seconds."""
    budget = f"e{args.epochs}-rows{args.train_rows}-z{args.latent_dim}"
    folder = session.folder(budget, f"{name}-s{args.seed}")
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    options = {
        "input_dim": data.input_dim,
        "hidden": (200, 200),
        "activation": "tanh",
        **model_options,
    }
    model = pyrovae.VAE(latent_dim=args.latent_dim, **options)
    tic = time.process_time()
    pyrovae.fit(
        model,
        data,
        epochs=args.epochs,
        batch_size=100,
        lr=1e-3,
        seed=args.seed,
        out=folder,
        resume=True,
        score_test="never",
        progress=False,
        **fit_options,
    )
    return model, time.process_time() - tic


def main(args, session):
    mnist = session.load("mnist", binarize="dynamic")
    shape = mnist.input_shape
    data = Data(Split(mnist.train.x[: args.train_rows]), binarize="dynamic", image_shape=shape)
    test = mnist.test.x[: args.test_rows]  # binarized once with a fixed seed
    args.input_shape = shape
    path = session.results / "toolbox_mnist.json"
    report = json.loads(path.read_text()) if path.exists() and not args.fresh else {}
    done = {(r["name"], r.get("seed")) for r in report.get("entries", [])}
    for name, (model_options, fit_options) in variants(args).items():
        if name not in args.only or (name, args.seed) in done:
            continue
        model, seconds = train(name, model_options, fit_options, data, args, session)
        tic = time.process_time()
        metrics = pyrovae.evaluate(model, test, num_samples=args.num_samples, seed=args.seed)
        row = {
            "name": name,
            "seed": args.seed,
            "log_likelihood": metrics["log_likelihood"],
            "log_likelihood_stderr": metrics["log_likelihood_stderr"],
            "elbo": metrics["elbo"],
            "burda_ll": BURDA.get(name),
            "epochs": args.epochs,
            "train_cpu_seconds_last_invocation": seconds,
            "eval_cpu_seconds": time.process_time() - tic,
            **setup(args),
        }
        session.merge("toolbox_mnist.json", row, ("name", "seed"))
        print(json.dumps(row), flush=True)


def setup(args):
    """The budget of a row."""
    return {
        "binarization": "dynamic (training images redrawn every epoch, test images drawn once)",
        "latent_dim": args.latent_dim,
        "train_rows": args.train_rows,
        "test_rows": args.test_rows,
        "epochs": args.epochs,
        "passes_over_50000_images": args.epochs * args.train_rows / 50_000,
        "num_samples": args.num_samples,
        "burda_passes": 3280,
    }


def arguments(parser):
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--pseudo-inputs", type=int, default=500)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--test-rows", type=int, default=10_000)
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--fresh", action="store_true", help="ignore earlier result rows")
