"""Davidson et al. 2018, Table 1, on the authors' terms: N-VAE and S-VAE on dynamically
binarized MNIST at d = 2, 5, 10, 20, 40.

**Dimension convention.** The paper's d is the dimension of the latent *manifold*: the N-VAE
has z ∈ R^d, the S-VAE has z ∈ S^d ⊂ R^{d+1} (``z_dim = flags.z + 1`` for the vMF in the
authors' ``trdavidson/increasing-expressivity-s-vae``, ``run_models.py``). pyrovae's
``latent_dim`` is the ambient dimension, so the S-VAE row for paper d is ``latent_dim = d + 1``.

Protocol, from the authors' code (``run_models.py`` defaults and ``utils/training_utils.py``):
encoder 784-256-128 and mirrored decoder 128-256-784, ReLU; Bernoulli likelihood on
dynamically binarized pixels; Adam, lr 1e-3, batch 100; at most 200 epochs; KL warm-up linear
over the first 100 epochs; the best model on the validation ELBO is kept and training stops
after 50 epochs without improvement (theirs only records the best after a burn-in of 100
epochs, which changes nothing when the best epoch is past 100: ``best_epoch`` is recorded);
analytic KL (``elbo="meanfield"``: the registered Normal–Normal and vMF–uniform KLs);
κ = softplus(raw) + 1; log-likelihood by importance sampling with 500 samples on
the 10,000 test images (test set binarized once with a fixed seed). Every row gets the same
budget.

``--sampler authors-2018`` (or ``authors``) trains the S-VAE rows with the authors' vMF
sampler as the paper ran it (or as released since June 2018) instead of pyrovae's
(``davidson_sampler.py``); every row is scored with pyrovae's exact sampler, and such a row
also by the authors' estimator (their sampler as the importance proposal).

``--init tensorflow`` starts every layer as the paper-time code did: s-vae-tf's MNIST example
builds its networks with ``tf.layers.dense``, whose defaults are Glorot-uniform weights and zero
biases; the protocol above (the follow-up code, PyTorch) has PyTorch's default (``--init
pytorch``: weights and biases uniform in ±1/√fan_in).

``--train-on all --batch-size 64 --warmup-epochs 0 --epochs 500`` is the training budget of
pythae's reproduction of the S^10 row (``clementchadebec/benchmark_VAE``,
``examples/scripts/reproducibility/svae.py``): all 60,000 training images and no validation
split, so no early stopping and the last epoch is scored; batch 64, 500 epochs, no warm-up;
everything else as above. It is not the authors' protocol, and such a run gets its own results
file.

Each (family, d) trains in its own folder ``--runs/{family}-d{d}`` with pyrovae's exact
resume: the same command run again continues a run that was cut off, and a finished run is
only evaluated. Rows are merged into ``benchmarks/results/davidson_table.json``.

    python benchmarks/davidson_table.py --data-root ../shared/data --family sphere --dims 2 5
"""

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import pyro
import torch
from davidson_sampler import DavidsonVonMisesFisherPosterior
from results_file import merge_row

import pyrovae

# paper d: (N-VAE LL, N-VAE ELBO, S-VAE LL, S-VAE ELBO), Davidson et al. 2018, Table 1
PUBLISHED = {
    2: (-135.73, -137.08, -132.50, -133.72),
    5: (-110.21, -112.98, -108.43, -111.19),
    10: (-93.84, -98.36, -93.16, -97.70),
    20: (-88.90, -94.79, -89.02, -96.15),
    40: (-88.93, -94.91, -90.87, -101.26),
}
PARTS = {
    "normal": {"prior": "normal", "posterior": "normal"},
    "sphere": {
        "prior": "hyperspherical_uniform",
        "posterior": {"name": "von_mises_fisher", "link": "softplus"},
    },
}
RESULTS = Path(__file__).parent / "results" / "davidson_table.json"


def build(family, paper_d, sampler="exact"):
    """The row's VAE; ``sampler``: the S-VAE's posterior draws by pyrovae's exact sampler
    (``"exact"``), the authors' as the paper ran it (``"authors-2018"``: the gradient through
    the proposal) or as released since June 2018 (``"authors"``: also the Taylor switch of b
    above κ = 10); see ``davidson_sampler.py``."""
    latent_dim = paper_d + 1 if family == "sphere" else paper_d
    parts = PARTS[family]
    if family == "sphere" and sampler != "exact":
        name = DavidsonVonMisesFisherPosterior.registered_name
        posterior = {**parts["posterior"], "name": name, "taylor_switch": sampler == "authors"}
        parts = {**parts, "posterior": posterior}
    return pyrovae.VAE(784, latent_dim, hidden=(256, 128), activation="relu", **parts)


def tensorflow_init(model):
    """Glorot-uniform weights and zero biases in every linear layer of ``model``, the defaults of
    ``tf.layers.dense``: W ~ U(±√(6 / (fan_in + fan_out)))."""
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)


def run(family, paper_d, data, args):
    folder = Path(args.runs).expanduser() / f"{family}-d{paper_d}"
    pyro.clear_param_store()
    torch.manual_seed(args.seed)  # the initial parameters (a resumed run takes its checkpoint's)
    model = build(family, paper_d, args.sampler)
    if args.init == "tensorflow":
        tensorflow_init(model)
    train = copy.copy(data)
    train.test = None  # the test split is scored once, at the end
    tic = time.process_time()
    history = pyrovae.fit(
        model,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        elbo="meanfield",  # the KL in closed form, as the authors compute it
        seed=args.seed,
        warmup_epochs=args.warmup_epochs,
        patience=args.patience if data.valid is not None else None,
        out=folder,
        resume=True,
        progress=False,
    )
    train_seconds = time.process_time() - tic  # of this invocation only (it may have resumed)
    tic = time.process_time()
    scored, theirs = model, None
    if family == "sphere" and args.sampler != "exact":  # scored by the authors' estimator, and
        theirs = pyrovae.evaluate(model, data, num_samples=args.num_samples, seed=args.seed)
        scored = build(family, paper_d)  # by ours: the same parameters, the exact sampler
        scored.load_state_dict(model.state_dict())
    metrics = pyrovae.evaluate(scored, data, num_samples=args.num_samples, seed=args.seed)
    valid = history["valid_elbo"]
    # without a validation split (--train-on all) the last epoch is the one scored
    best = len(valid) - 1 if data.valid is None else max(range(len(valid)), key=valid.__getitem__)
    pub = PUBLISHED[paper_d][0:2] if family == "normal" else PUBLISHED[paper_d][2:4]
    return {
        "family": family,
        "paper_d": paper_d,
        "latent_dim": model.latent_dim,
        "log_likelihood": metrics["log_likelihood"],
        "log_likelihood_stderr": metrics["log_likelihood_stderr"],
        "elbo": metrics["elbo"],
        "sampler": args.sampler,
        "init": args.init,
        "num_samples": metrics["num_samples"],
        "num_examples": metrics["num_examples"],
        "epochs_run": len(valid),
        "best_epoch": history["epoch"][best],
        "best_valid_elbo": valid[best],
        "valid_elbo_curve": valid,
        "train_elbo_curve": history["train_elbo"],
        "batch_size": args.batch_size,
        "train_on": args.train_on,
        "warmup_epochs": args.warmup_epochs,
        "published_log_likelihood": pub[0],
        "published_elbo": pub[1],
        "train_cpu_seconds_last_invocation": train_seconds,
        "eval_cpu_seconds": time.process_time() - tic,
        "command": "python " + " ".join(sys.argv),
    } | ({"authors_sampler": {k: theirs[k] for k in ("log_likelihood", "elbo")}} if theirs else {})


def merge(row, results):
    """Add ``row`` to the results file, in place of an earlier run of the same row."""
    merge_row(
        results,
        row,
        ("family", "paper_d"),
        protocol=__doc__.split("Protocol, ")[1].split("\n\n")[0].replace("\n", " "),
        torch=torch.__version__,
        pyro=pyro.__version__,
        machine=f"{platform.machine()}, {os.cpu_count()} cores, 1 thread per run",
    )
    report = json.loads(results.read_text())
    report["entries"].sort(key=lambda e: (e["paper_d"], e["family"]))
    results.write_text(json.dumps(report, indent=1))


def table(entries):
    """The markdown table of ``entries`` beside the published rows."""
    lines = [
        "| paper d | family | latent | our LL | ± | our ELBO | paper LL | paper ELBO | epochs "
        "(best) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        name = "N-VAE, z ∈ R^d" if e["family"] == "normal" else "S-VAE, z ∈ S^d ⊂ R^(d+1)"
        lines.append(
            f"| {e['paper_d']} | {name} | {e['latent_dim']} | {e['log_likelihood']:.2f} | "
            f"{e['log_likelihood_stderr']:.2f} | {e['elbo']:.2f} | "
            f"{e['published_log_likelihood']:.2f} | {e['published_elbo']:.2f} | "
            f"{e['epochs_run']} ({e['best_epoch']}) |"
        )
    return "\n".join(lines)


def against(entries, baseline):
    """The markdown table of ``entries`` beside the rows of ``baseline`` (another results file's
    entries, e.g. pyrovae's sampler against the authors', or PyTorch's initial parameters
    against TensorFlow's): LL, ELBO, epochs and the mean (and largest) difference of the
    validation ELBO over epochs 101–200."""
    base = {(e["family"], e["paper_d"]): e for e in baseline}
    lines = [
        "| row | sampler | init | LL | ELBO | epochs (best) | validation ELBO − baseline's, "
        "epochs 101–200: mean (largest gap) | paper LL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        d, b = e["paper_d"], base[e["family"], e["paper_d"]]
        diffs = [
            v - w
            for v, w in zip(
                e["valid_elbo_curve"][100:200], b["valid_elbo_curve"][100:200], strict=False
            )
        ]
        gap = f"{sum(diffs) / len(diffs):+.2f} ({max(diffs, key=abs):+.2f})"
        for row, column in ((b, ""), (e, gap)):
            name = f"S^{d}" if row["family"] == "sphere" else f"N-VAE d = {d}"
            lines.append(
                f"| {name} | {row.get('sampler', 'exact')} | {row.get('init', 'pytorch')} | "
                f"{row['log_likelihood']:.2f} ± {row['log_likelihood_stderr']:.2f} | "
                f"{row['elbo']:.2f} | {row['epochs_run']} ({row['best_epoch']}) | {column} | "
                f"{row['published_log_likelihood']:.2f} |"
            )
    return "\n".join(lines)


def status(runs):
    """Progress of every run folder under ``runs`` from its ``metrics.json``: the table rows of a
    benchmark still training (no log-likelihood before a run ends)."""
    header = "| family | paper d | epochs run | best valid ELBO (epoch) | β now |"
    lines = [header, "|---" * 5 + "|"]
    for folder in sorted(Path(runs).expanduser().glob("*-d*")):
        metrics = folder / "metrics.json"
        if metrics.exists():
            h = json.loads(metrics.read_text())
            family, d = folder.name.split("-d")
            if h["valid_elbo"][-1] is None:  # --train-on all: no validation split
                best = f"none; train ELBO {h['train_elbo'][-1]:.2f}"
            else:
                i = max(range(len(h["valid_elbo"])), key=h["valid_elbo"].__getitem__)
                best = f"{h['valid_elbo'][i]:.2f} ({h['epoch'][i]})"
            lines.append(f"| {family} | {d} | {h['epoch'][-1]} | {best} | {h['beta'][-1]:.2f} |")
    return "\n".join(lines)


def main(args):
    torch.set_num_threads(1)
    results = Path(args.results)
    if args.table:
        entries = json.loads(results.read_text())["entries"]
        if args.against:
            print(against(entries, json.loads(Path(args.against).read_text())["entries"]))
        else:
            print(table(entries))
        return
    if args.status:
        print(status(args.runs))
        return
    data = pyrovae.data.load("mnist", root=args.data_root, binarize="dynamic")
    if args.train_on == "all":  # the grey validation rows join the training rows; the test
        grey = pyrovae.data.load("mnist", root=args.data_root)  # rows stay as binarised above
        rows = torch.cat([grey.train.x, grey.valid.x])
        data = pyrovae.data.Data(rows, None, data.test, "dynamic", data.image_shape, "mnist")
    for d in args.dims:
        row = run(args.family, d, data, args)
        merge(row, results)
        print(json.dumps({k: v for k, v in row.items() if k != "valid_elbo_curve"}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(PARTS), default="sphere")
    parser.add_argument("--dims", type=int, nargs="+", default=sorted(PUBLISHED))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--warmup-epochs", type=float, default=100)
    parser.add_argument("--patience", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--train-on", choices=("train", "all"), default="train",
        help="'train': the first 50,000 training images, the last 10,000 for validation (the "
        "authors' split); 'all': all 60,000, no validation split, so no early stopping and the "
        "last epoch is scored",
    )  # fmt: skip
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=os.environ.get("PYROVAE_DATA"))
    parser.add_argument("--runs", default="~/pyrovae-runs/davidson")
    parser.add_argument(
        "--results", default=str(RESULTS),
        help="the results file (a run beyond the authors' protocol gets its own)",
    )  # fmt: skip
    parser.add_argument(
        "--sampler", choices=("exact", "authors-2018", "authors"), default="exact",
        help="the S-VAE's training draws: pyrovae's exact vMF sampler, the authors' as the paper "
        "ran it (gradient through the proposal), or as released since June 2018 (also a Taylor "
        "switch of b above kappa = 10); see davidson_sampler.py. LL is then also reported by "
        "their estimator",
    )  # fmt: skip
    parser.add_argument(
        "--init", choices=("pytorch", "tensorflow"), default="pytorch",
        help="the layers' initial parameters: PyTorch's default (the follow-up code's) or "
        "tf.layers.dense's, Glorot-uniform weights and zero biases (s-vae-tf's, the paper's time)",
    )  # fmt: skip
    parser.add_argument("--table", action="store_true", help="print the table of the results")
    parser.add_argument(
        "--against", help="with --table: another results file whose rows to set beside them"
    )
    parser.add_argument("--status", action="store_true", help="print the progress of the runs")
    main(parser.parse_args())
