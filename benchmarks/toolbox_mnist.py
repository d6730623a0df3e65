"""The researcher's toolbox on dynamically binarized MNIST, at an equal number of epochs.

Standard VAE (N(0, I) prior, diagonal Normal posterior, ELBO) against one change at a time:
the VampPrior, an IAF posterior, IWAE training with k = 5 and k = 50, and conv networks. MLPs
784-200-200-d tanh as in Burda et al. 2016 (d = 50 by default, their latent size, so that
their Table 1 anchors print beside ours: VAE k = 1 LL −86.76, IWAE k = 50 −84.78, after 3,280
passes); Adam 1e-3, batch 100, no warm-up, no early stopping, seed 0. Every figure is the
test log-likelihood by importance sampling (``pyrovae.evaluate``, 5,000 samples by default)
and the ELBO (the mean of the same importance log-weights).

Each model trains under ``--runs/NAME`` with a checkpoint every epoch and is saved as
``model.pt`` when done, and each result row is written as soon as it exists: a rerun resumes
where a killed run stopped. ``--train-rows``/``--test-rows``/``--num-samples`` shrink the run
for a small budget. Writes ``benchmarks/results/toolbox_mnist.json``.

    python benchmarks/toolbox_mnist.py --data-root /work/shared/data --epochs 5 \\
        --train-rows 10000 --test-rows 1000 --num-samples 1000
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import pyro
import torch

import pyrovae
from pyrovae.data import Data, Split

RESULTS = Path(__file__).parent / "results" / "toolbox_mnist.json"
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
        "conv": ({"input_dim": (1, 28, 28), "encoder": CONV, "decoder": CONV}, {}),
    }


def train(name, model_options, fit_options, data, args):
    """Train (or load) one variant; returns the model and its training CPU seconds."""
    folder = Path(args.runs).expanduser() / name
    final = folder / "model.pt"
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    options = {"input_dim": 784, "hidden": (200, 200), "activation": "tanh", **model_options}
    model = pyrovae.VAE(latent_dim=args.latent_dim, **options)
    if final.exists():
        saved = torch.load(final, weights_only=True)
        model.load_state_dict(saved["model"])
        return model, saved["train_cpu_seconds"]
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
    seconds = time.process_time() - tic
    torch.save({"model": model.state_dict(), "train_cpu_seconds": seconds}, final)
    return model, seconds


def main(args):
    torch.set_num_threads(1)
    mnist = pyrovae.data.load("mnist", root=args.data_root, binarize="dynamic")
    data = Data(Split(mnist.train.x[: args.train_rows]), binarize="dynamic", image_shape=(28, 28))
    test = mnist.test.x[: args.test_rows]  # binarized once with a fixed seed
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() and not args.fresh else {}
    rows = {r["name"]: r for r in report.get("results", [])}
    for name, (model_options, fit_options) in variants(args).items():
        if name not in args.only or name in rows:
            continue
        model, seconds = train(name, model_options, fit_options, data, args)
        tic = time.process_time()
        metrics = pyrovae.evaluate(model, test, num_samples=args.num_samples, seed=args.seed)
        rows[name] = {
            "name": name,
            "log_likelihood": metrics["log_likelihood"],
            "log_likelihood_stderr": metrics["log_likelihood_stderr"],
            "elbo": metrics["elbo"],
            "burda_ll": BURDA.get(name),
            "epochs": args.epochs,
            "train_cpu_seconds": seconds,
            "eval_cpu_seconds": time.process_time() - tic,
        }
        print(json.dumps(rows[name]), flush=True)
        _write(args, rows)


def _write(args, rows):
    RESULTS.parent.mkdir(exist_ok=True)
    report = {
        "command": "python " + " ".join(sys.argv),
        "binarization": "dynamic (training images redrawn every epoch, test images drawn once)",
        "latent_dim": args.latent_dim,
        "train_rows": args.train_rows,
        "test_rows": args.test_rows,
        "epochs": args.epochs,
        "passes_over_50000_images": args.epochs * args.train_rows / 50_000,
        "num_samples": args.num_samples,
        "burda_passes": 3280,
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        "1 thread",
        "results": list(rows.values()),
    }
    RESULTS.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--pseudo-inputs", type=int, default=500)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--test-rows", type=int, default=10_000)
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--data-root", default=os.environ.get("PYROVAE_DATA"))
    parser.add_argument("--runs", default="~/pyrovae-runs/toolbox")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier result rows")
    main(parser.parse_args())
