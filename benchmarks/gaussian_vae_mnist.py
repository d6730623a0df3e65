"""The N-VAE of Davidson et al. 2018 (Table 1) on dynamically binarized MNIST.

Encoder 784-256-128 (ReLU), mirrored decoder, Bernoulli likelihood, N(0, I) prior, Gaussian
posterior; Adam 1e-3, batch 100, linear KL warm-up, early stopping on the validation ELBO; test
log-likelihood by importance sampling with 500 samples (``pyrovae.evaluate``). Published N-VAE
figures (LL / ELBO, nats per test image): d=10 −93.84 / −98.36, d=20 −88.90 / −94.79,
d=40 −88.93 / −94.91.

A shorter budget than the authors' (120 epochs, patience 20, per-step warm-up over 10
epochs, the last 10,000 training images for validation): the Davidson rows on the authors'
protocol are ``davidson_table``. Each d and seed trains in the run folder the runner names
(``<runs>/gaussian_vae_mnist/e<epochs>/d<d>-s<seed>``); a rerun resumes a training that was cut
off and only scores a finished one. Rows merge into
``results/gaussian_vae_mnist/gaussian_vae_mnist.json``.
"""

import json
import time

import pyro
import torch

import pyrovae

PUBLISHED = {10: (-93.84, -98.36), 20: (-88.90, -94.79), 40: (-88.93, -94.91)}
QUICK = [
    "--dims", "2", "--epochs", "2", "--warmup-epochs", "1", "--patience", "1",
    "--num-samples", "10",
]  # fmt: skip
FULL = []
SEEDS = (0, 1, 2)


def train(d, data, args, session):
    """Train (or load) the d-dimensional N-VAE; returns the model and the fit history."""
    folder = session.folder(f"e{args.epochs}", f"d{d}-s{args.seed}")
    pyro.clear_param_store()
    torch.manual_seed(args.seed)
    model = pyrovae.VAE(data.input_dim, d, hidden=(256, 128), activation="relu")
    tic = time.process_time()
    history = pyrovae.fit(
        model,
        data,
        epochs=args.epochs,
        batch_size=100,
        lr=1e-3,
        seed=args.seed,
        warmup_epochs=args.warmup_epochs,
        patience=args.patience,
        out=folder,
        resume=True,
        progress=False,
    )
    return model, history, time.process_time() - tic


def main(args, session):
    data = session.load("mnist", binarize="dynamic")
    trained = {d: train(d, data, args, session) for d in args.dims}
    for d, (model, history, seconds) in trained.items():
        tic = time.process_time()
        metrics = pyrovae.evaluate(
            model, data.test.x, num_samples=args.num_samples, batch_size=100, seed=args.seed
        )
        valid = history["valid_elbo"]
        best = max(range(len(valid)), key=valid.__getitem__)
        ll, elbo = PUBLISHED.get(d, (None, None))
        row = session.merge(
            "gaussian_vae_mnist.json",
            {
                "d": d,
                "seed": args.seed,
                "num_samples": args.num_samples,
                "log_likelihood": metrics["log_likelihood"],
                "log_likelihood_stderr": metrics["log_likelihood_stderr"],
                "elbo": metrics["elbo"],
                "reconstruction_error": metrics["reconstruction_error"],
                "davidson_ll": ll,
                "davidson_elbo": elbo,
                "epochs_run": len(valid),
                "best_epoch": history["epoch"][best],
                "best_valid_elbo": valid[best],
                "train_cpu_seconds_last_invocation": seconds,
                "eval_cpu_seconds": time.process_time() - tic,
            },
            ("d", "seed"),
        )
        print(json.dumps({k: v for k, v in row[-1].items() if k != "meta"}), flush=True)


def arguments(parser):
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--warmup-epochs", type=float, default=10)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
