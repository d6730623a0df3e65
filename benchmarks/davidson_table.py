"""Davidson et al. 2018, Table 1, on the authors' protocol: N-VAE and S-VAE on dynamically
binarized MNIST at d = 2, 5, 10, 20, 40 (the S-VAE's z on S^d ⊂ R^(d+1): ``benchmarks.davidson``).

Protocol (the full form), read from the authors' code (``trdavidson/increasing-expressivity-
s-vae``: ``run_models.py`` defaults, ``utils/training_utils.py``, ``utils/load_data.py``):
encoder 784-256-128 and mirrored decoder 128-256-784, ReLU; Bernoulli likelihood on
dynamically binarized pixels; a random 10,000 of the 60,000 training images for validation
(seeded by the run's seed; binarised once); Adam, lr 1e-3, batch 100; at most 200 epochs; KL
warm-up linear over 100 epochs, stepped once per epoch (β = min(e, 100)/100, e from 0); early
stopping as theirs: after a burn-in of 100 epochs, a validation ELBO better than the best by
more than 1e-2 becomes the best, training stops 50 epochs after the best, the best epoch is
scored; analytic KL; κ = softplus(raw) + 1; pyrovae's exact vMF sampler; PyTorch's default
initial parameters. Scored on the 10,000 test images (binarized once, fixed seed) by importance
sampling with 500 samples (the paper's text; the code's default is 100) and, from the same
draws, by the estimate of the authors' TensorFlow example (``benchmarks.davidson``): every row
gets both columns. Seeds 0, 1, 2 per row.

Known differences from that code: its validation rows are binarised afresh at every epoch
(ours once); its MNIST loader (``load_non_static_mnist``) hands raw 0–255 pixels to the
binarisation ``x > U(0, 1)``, so its "dynamic" binarisation is in effect the threshold x > 0
(ours, like s-vae-tf's example of the paper's time, draws Bernoulli(x) on grey levels in
[0, 1]); it restarts a run that produced NaN from its last checkpoint (``max_restarts``).

Each row and seed trains in the run folder the runner names, ``<runs>/davidson_table/<protocol
tag>/<family>-d<d>-s<seed>``, with pyrovae's exact resume: the same command continues a run that
was cut off and only scores a finished one. Rows merge into ``results/davidson_table/<protocol
tag>.json`` (one file per protocol), keyed by family, d and seed.

Options beyond the protocol: ``--sampler authors-2018|authors`` (the S-VAE trained with the
authors' vMF sampler, scored by ours and by theirs), ``--init tensorflow`` (Glorot-uniform
weights and zero biases, ``tf.layers.dense``'s defaults, as s-vae-tf's example), ``--split
none --batch-size 64 --warmup-epochs 0 --epochs 500`` (pythae's reproduction budget: all
60,000 images, no early stopping, the last epoch scored), ``--split last`` and ``--warmup
step`` (the split and warm-up of the results recorded before the runner).
"""

import json
import time

import pyro
import torch

import pyrovae

from .davidson import (
    PUBLISHED,
    AuthorsEarlyStopping,
    EpochWarmup,
    build,
    estimates,
    random_split,
    tensorflow_init,
)

FULL = []
QUICK = [
    "--dims", "2", "--families", "normal", "sphere", "--epochs", "4", "--warmup-epochs", "2",
    "--burn-in", "1", "--patience", "1", "--num-valid", "288", "--num-samples", "20",
]  # fmt: skip
SEEDS = (0, 1, 2)


def arguments(parser):
    parser.add_argument(
        "--families", nargs="+", choices=("normal", "sphere"), default=["normal", "sphere"]
    )
    parser.add_argument("--dims", type=int, nargs="+", default=sorted(PUBLISHED))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--warmup-epochs", type=int, default=100)
    parser.add_argument(
        "--warmup",
        choices=("epoch", "step"),
        default="epoch",
        help="the KL warm-up's β stepped once per epoch (the authors') or at every step",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=50,
        help="epochs after the best before stopping (the authors' look_ahead)",
    )
    parser.add_argument(
        "--min-delta",
        type=float,
        default=1e-2,
        help="the improvement of the validation ELBO that makes a new best",
    )
    parser.add_argument("--burn-in", type=int, default=100, help="epochs before a best is recorded")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--split",
        choices=("random", "last", "none"),
        default="random",
        help="validation rows: a random --num-valid of the 60,000 training images seeded by "
        "the run's seed (the authors' split), the last 10,000 (pyrovae.data.load's split, not "
        "the authors'), or none: all 60,000 train, no early stopping, the last epoch is scored",
    )
    parser.add_argument("--num-valid", type=int, default=10_000)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument(
        "--sampler",
        choices=("exact", "authors-2018", "authors"),
        default="exact",
        help="the S-VAE's training draws: pyrovae's exact vMF sampler, the authors' as the "
        "paper ran it, or as released since June 2018 (benchmarks.davidson); the LL is then also "
        "reported by their estimator",
    )
    parser.add_argument(
        "--init",
        choices=("pytorch", "tensorflow"),
        default="pytorch",
        help="initial parameters: PyTorch's default (the follow-up code's) or tf.layers.dense's",
    )
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument(
        "--rescore", action="store_true", help="score rows already in the results file again"
    )


def tag(args):
    """The protocol's name: the run folders' parent and the results file's stem."""
    stopping = f"es{args.patience}-md{args.min_delta:g}-bi{args.burn_in}"
    return "_".join([
        f"split-{args.split}" + (f"{args.num_valid}" if args.split == "random" else ""),
        f"warmup-{args.warmup}{args.warmup_epochs}",
        stopping if args.split != "none" else "no-es",
        f"e{args.epochs}", f"bs{args.batch_size}", f"init-{args.init}", f"sampler-{args.sampler}",
    ])  # fmt: skip


def data_for(args, session):
    """The protocol's splits (grey levels read once, binarised as the protocol says)."""
    grey = session.load("mnist")
    if args.split == "random":
        return random_split(grey, args.num_valid, args.seed)
    binary = session.load("mnist", binarize="dynamic")
    if args.split == "last":
        return binary
    rows = torch.cat([grey.train.x, grey.valid.x])
    return pyrovae.data.Data(rows, None, binary.test, "dynamic", grey.image_shape, grey.name)


def train(family, paper_d, data, folder, args):
    """Train (or resume, or only reload) one row; returns the model at its scored epoch, the
    history and that epoch."""
    pyro.clear_param_store()
    torch.manual_seed(args.seed)  # the initial parameters (a resumed run takes its checkpoint's)
    model = build(family, paper_d, args.sampler, data.input_dim)
    if args.init == "tensorflow":
        tensorflow_init(model)
    hooks = [EpochWarmup(args.warmup_epochs)] if args.warmup == "epoch" else []
    stopping = AuthorsEarlyStopping(args.patience, args.min_delta, args.burn_in)
    hooks += [stopping] if data.valid is not None else []
    history = pyrovae.fit(
        model,
        pyrovae.data.Data(data.train, data.valid, None, data.binarize, data.image_shape),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        elbo="meanfield",  # the KL in closed form, as the authors compute it
        seed=args.seed,
        warmup_epochs=args.warmup_epochs if args.warmup == "step" else 0,
        patience=None,
        callbacks=hooks,
        out=folder,
        resume=True,
        progress=False,
    )
    scored = stopping.best["epoch"] if data.valid is not None else history["epoch"][-1]
    return model, history, scored


def score(model, test, args):
    """Both estimates (means and standard errors over the test rows) from the same draws."""
    per_row = {}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(args.seed)
        for x in test.chunks(100):
            for k, v in estimates(model.eval(), x, args.num_samples).items():
                per_row.setdefault(k, []).append(v)
    figures = {}
    for k, v in per_row.items():
        v = torch.cat(v)
        figures[k], figures[f"{k}_stderr"] = v.mean().item(), (v.std() / len(v) ** 0.5).item()
    return figures


def run(family, paper_d, data, args, session):
    folder = session.folder(tag(args), f"{family}-d{paper_d}-s{args.seed}")
    tic = time.process_time()
    model, history, scored_epoch = train(family, paper_d, data, folder, args)
    train_seconds = time.process_time() - tic
    tic = time.process_time()
    theirs = {}
    if family == "sphere" and args.sampler != "exact":  # their estimator: their sampler as q
        theirs = pyrovae.evaluate(model, data, num_samples=args.num_samples, seed=args.seed)
        theirs = {"authors_sampler": {k: theirs[k] for k in ("log_likelihood", "elbo")}}
        exact = build(family, paper_d, "exact", data.input_dim)
        exact.load_state_dict(model.state_dict())
        model = exact
    figures = score(model, data.test, args)
    pub = PUBLISHED[paper_d][0:2] if family == "normal" else PUBLISHED[paper_d][2:4]
    return {
        "family": family,
        "paper_d": paper_d,
        "seed": args.seed,
        "latent_dim": model.latent_dim,
        **figures,
        "num_samples": args.num_samples,
        "num_test_rows": len(data.test),
        "epochs_run": history["epoch"][-1],
        "scored_epoch": scored_epoch,
        "valid_elbo_curve": history["valid_elbo"],
        "train_elbo_curve": history["train_elbo"],
        "beta_curve": history["beta"],
        "published_log_likelihood": pub[0],
        "published_elbo": pub[1],
        "protocol": tag(args),
        "run_folder": str(folder),
        "train_cpu_seconds_last_invocation": train_seconds,
        "eval_cpu_seconds": time.process_time() - tic,
        **theirs,
    }


def main(args, session):
    path = session.results / f"{tag(args)}.json"
    done = json.loads(path.read_text())["entries"] if path.exists() else []
    done = {(e["family"], e["paper_d"], e["seed"]) for e in done}
    data = data_for(args, session)
    for family in args.families:
        for d in args.dims:
            if (family, d, args.seed) in done and not args.rescore:
                print(f"{family} d={d} seed {args.seed}: in {path.name} already (--rescore)")
                continue
            row = run(family, d, data, args, session)
            session.merge(f"{tag(args)}.json", row, ("family", "paper_d", "seed"))
            print(
                f"{family} d={d} seed {args.seed}: LL {row['log_likelihood']:.2f} (IS, "
                f"{args.num_samples}), {row['log_likelihood_svae_tf']:.2f} (s-vae-tf), ELBO "
                f"{row['elbo']:.2f}, {row['epochs_run']} epochs, scored {row['scored_epoch']}",
                flush=True,
            )
