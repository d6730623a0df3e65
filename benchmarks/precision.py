"""bf16 against float32 on the CPU: speed and log-likelihood of the Davidson N-VAE d = 10 and
S-VAE S^10 rows on a short budget.

The rows' networks (784-256-128, mirrored decoder, ReLU, Bernoulli likelihood on dynamically
binarized MNIST; the S-VAE's vMF in R^11 with κ = softplus(raw) + 1 and a uniform prior, the
N-VAE's Normal in R^10), Adam 1e-3, batch 100, analytic KL (``elbo="meanfield"``), no warm-up,
``--epochs`` epochs on the 50,000 training images; then the test ELBO and the importance-sampled
log-likelihood (``--num-samples`` samples) on the first ``--test-rows`` test images. Each
(family, precision, seed) is one run, in the order seed → family → precision, so that both
precisions see the same machine. Training time is this process's CPU time (one thread).

    nice -n 15 env OMP_NUM_THREADS=1 python -m benchmarks precision --full --data-root DIR

Writes ``benchmarks/results/precision/precision_mnist.json``: every run (``entries``, one per
family, precision and seed, each with its provenance), and ``precision_summary.json``: per
(family, precision) the mean ± sd over seeds; per family the bf16 − float32 log-likelihood
difference (mean ± sd over seeds, paired by seed) and the time ratio. The quick form: the 8×8
digits, one epoch. ``precision_mnist_before_runner.json``: seeds 0-2, recorded before the runner.
"""

import copy
import statistics
import time

import pyro
import torch

import pyrovae

QUICK = ["--epochs", "1", "--num-samples", "10", "--test-rows", "100"]
FULL = []
SEEDS = (0, 1, 2)
FAMILIES = {
    "normal-d10": {"latent_dim": 10, "prior": "normal", "posterior": "normal"},
    "sphere-s10": {
        "latent_dim": 11,
        "prior": "hyperspherical_uniform",
        "posterior": {"name": "von_mises_fisher", "link": "softplus"},
    },
}


def run(family, precision, seed, data, args):
    pyro.clear_param_store()
    torch.manual_seed(seed)
    vae = pyrovae.VAE(
        data.train.x.shape[1], hidden=(256, 128), activation="relu", **FAMILIES[family]
    )
    train = copy.copy(data)
    train.valid = train.test = None  # scored once, at the end
    tic = time.process_time()
    history = pyrovae.fit(
        vae,
        train,
        epochs=args.epochs,
        batch_size=100,
        lr=1e-3,
        elbo="meanfield",
        seed=seed,
        precision=precision,
        progress=False,
    )
    seconds = time.process_time() - tic
    scores = pyrovae.evaluate(
        vae, data.test.x[: args.test_rows], num_samples=args.num_samples, seed=seed
    )
    return {
        "family": family,
        "precision": precision,
        "seed": seed,
        "train_cpu_seconds": seconds,
        "seconds_per_epoch": seconds / args.epochs,
        "train_elbo": history["train_elbo"][-1],
        "test_elbo": scores["elbo"],
        "log_likelihood": scores["log_likelihood"],
        "log_likelihood_stderr": scores["log_likelihood_stderr"],
    }


def summary(runs):
    out = {}
    for family in FAMILIES:
        by = {p: {r["seed"]: r for r in runs if r["family"] == family and r["precision"] == p}
              for p in ("32", "bf16")}  # fmt: skip
        rows = {}
        for p, seeds in by.items():
            if not seeds:
                continue
            ll = [r["log_likelihood"] for r in seeds.values()]
            sec = [r["seconds_per_epoch"] for r in seeds.values()]
            rows[p] = {
                "n": len(ll),
                "log_likelihood_mean": statistics.mean(ll),
                "log_likelihood_sd": statistics.stdev(ll) if len(ll) > 1 else None,
                "log_likelihood_stderr_within_run": statistics.mean(
                    r["log_likelihood_stderr"] for r in seeds.values()
                ),
                "seconds_per_epoch_mean": statistics.mean(sec),
                "seconds_per_epoch_sd": statistics.stdev(sec) if len(sec) > 1 else None,
            }
        paired = sorted(set(by["32"]) & set(by["bf16"]))
        if paired:
            diff = [by["bf16"][s]["log_likelihood"] - by["32"][s]["log_likelihood"] for s in paired]
            ratio = [
                by["bf16"][s]["seconds_per_epoch"] / by["32"][s]["seconds_per_epoch"]
                for s in paired
            ]
            rows["bf16_minus_32"] = {
                "n": len(diff),
                "log_likelihood_mean": statistics.mean(diff),
                "log_likelihood_sd": statistics.stdev(diff) if len(diff) > 1 else None,
                "time_ratio_median": statistics.median(ratio),
                "time_ratio_min_max": [min(ratio), max(ratio)],
            }
        out[family] = rows
    return out


def arguments(parser):
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")


def main(args, session):
    """One seed: both families at both precisions (family → precision)."""
    data = session.load("mnist", binarize="dynamic")
    for family in FAMILIES:
        for precision in ("32", "bf16"):
            row = run(family, precision, args.seed, data, args)
            row.update(epochs=args.epochs, num_samples=args.num_samples, test_rows=args.test_rows)
            print(row, flush=True)
            rows = session.merge("precision_mnist.json", row, ("family", "precision", "seed"))
    session.write("precision_summary.json", {"summary": summary(rows)})
