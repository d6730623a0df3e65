"""Command line: ``pyrovae train | evaluate | sample``.

``train`` reads options from flags and/or ``--config FILE.yaml`` (flags win), trains, and
writes ``OUT/config.yaml``, ``OUT/metrics.json``, ``OUT/checkpoint.pt`` and pictures.
``evaluate OUT`` prints JSON with ``elbo`` and ``log_likelihood`` (nats per example).
``sample OUT -n 64 -o FILE.png`` draws from the trained model.
"""

import argparse
import contextlib
import decimal
import json
import sys
from pathlib import Path

import pyro
import torch

from . import budget, run
from . import config as cfg
from .infer import checkpoint as ckpt
from .infer import run_folder
from .infer.device import DEVICES
from .infer.distributed import env_rank, env_world_size
from .infer.evaluation import evaluate
from .infer.objectives import make_elbo
from .infer.train import CHECKPOINT, fit, open_run


class Parser(argparse.ArgumentParser):
    """``argparse`` with one-line errors: ``pyrovae train: error: ... (see --help)``."""

    def error(self, message):
        message = " ".join(message.split())  # one line, whatever the user's text holds
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text):
    """An integer flag: ``100``, or exponent notation that is exactly an integer (``1e8``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = decimal.Decimal(text.strip())
        if value.is_finite() and value.adjusted() > 100:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range")
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
    except decimal.InvalidOperation:
        pass
    raise argparse.ArgumentTypeError(f"invalid int value: {text!r}")


def _positive_int(text):
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text):
    value = _integer(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {text!r}")
    return value


def _number_or_learned(text):
    """``learned`` or a number (checked by the model: a fixed noise scale must be > 0)."""
    if text == "learned":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'learned', got {text!r}") from None


def _part(text):
    """A part on the command line: a name, or an inline YAML mapping ``{name: x, opt: 1}``."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        value = cfg.load_yaml(text, "the mapping")
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected {{name: ..., option: value}}: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a name or {{name: ..., ...}}, got {text}")
    return value


def _device(text):
    if text not in DEVICES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(DEVICES)}, got {text!r}")
    return text


def _int_list(text):
    try:
        return [_integer(v) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected integers like 256,128, got {text!r}") from None


def _train_parser(sub):
    p = sub.add_parser(
        "train",
        help="train a model and write OUT/config.yaml, metrics.json, checkpoint.pt, pictures",
        description="Train a model by SVI. Every option can also be given as a key (with _ for "
        "-) in --config FILE.yaml; flags override the file.",
    )
    a = p.add_argument
    a("--config", help="YAML file of options (keys as below, e.g. latent_dim: 10)")
    a("--out", help="output folder (default runs/default)")
    a("--model", help="model: vae (default), gmm, llgae, ...")
    a("--dataset", help="digits (default, offline), mnist, fashion-mnist")
    a("--data-root", help="folder holding MNIST/raw or FashionMNIST/raw (default $PYROVAE_DATA)")
    a(
        "--binarize",
        help="none | static | dynamic (default: dynamic for a Bernoulli VAE "
        "without a mixture prior)",
    )
    a(
        "--latent-dim",
        type=_integer,
        help="latent dimension (default 2), ambient: z in R^d, or on the sphere S^(d-1) in R^d",
    )
    a(
        "--sphere-dim",
        type=_integer,
        help="instead of --latent-dim, for a sphere prior: z on S^d in R^(d+1), d as Davidson et "
        "al. 2018 count it (--sphere-dim 2 = --latent-dim 3)",
    )
    a("--input-dim", type=_int_list, help="D or C,H,W (default: the dataset's; checked if given)")
    a("--hidden", type=_int_list, help="hidden layer sizes of the MLPs, e.g. 256,128")
    a("--activation", help="MLP activation: relu (default), tanh, elu, gelu, silu, ...")
    a("--prior", type=_part, help="prior: normal (default), or {name: ..., option: ...}")
    a("--posterior", type=_part, help="posterior family: normal (default), or a mapping")
    a("--likelihood", type=_part, help="bernoulli (default), gaussian, or a mapping")
    a("--encoder", type=_part, help="encoder network: mlp (default), or {name: mlp, hidden: [..]}")
    a("--decoder", type=_part, help="decoder network: mlp (default), or a mapping")
    a("--num-components", type=_integer, help="number of mixture components (gmm, llgae)")
    a("--covariance", help="gmm covariance: diag or full")
    a("--reg-covar", type=float, help="gmm covariance floor added to every variance (default 1e-6)")
    a(
        "--pretrain-epochs",
        type=_integer,
        help="mixture prior: epochs of VaDE's auto-encoder start before the GMM on its codes "
        "(default: 3000 batches' worth; 0: off)",
    )
    a(
        "--noise",
        type=_number_or_learned,
        help="llgae noise scale: learned (default) or a fixed number",
    )
    a("--guide", type=_part, help="llgae guide: amortized, iterative, exact, or a mapping")
    a("--condition-on", help="label: the conditional VAE, p(x | z, y) and q(z | x, y)")
    a("--num-labels", type=_integer, help="ssvae: training labels kept, balanced per class")
    a(
        "--aux-loss-multiplier",
        type=float,
        help="ssvae: weight α of the classification term per labelled row (default 50)",
    )
    a("--epochs", type=_integer, help="passes over the training set (default 100)")
    a("--batch-size", type=_integer, help="rows per SVI step (default 100)")
    a("--lr", type=float, help="Adam learning rate (default 1e-3)")
    a("--seed", type=_integer, help="seed for torch, numpy and random (default 0)")
    a("--warmup-epochs", type=float, help="KL warm-up length in epochs (default 0: none)")
    a("--patience", type=_integer, help="early stopping patience in epochs on the validation ELBO")
    a("--num-particles", type=_integer, help="samples per ELBO estimate (default 1)")
    a("--elbo", help="objective: trace (default), meanfield, iwae, renyi (K = --num-particles)")
    a("--alpha", type=float, help="alpha of --elbo renyi (default 0.5)")
    a("--beta", type=float, help="constant weight of the KL term, a beta-VAE (default 1)")
    a("--num-samples", type=_integer, help="importance samples for the final log-likelihood")
    a("--score-test", help="when to score the test split: end (default), epoch, never")
    a("--resume", action="store_true", help="continue OUT/checkpoint.pt if it exists")
    a("--overwrite", action="store_true", help="start afresh over an existing checkpoint")
    a("--quiet", action="store_true", help="no progress bar and no line per epoch")
    a("--device", type=_device, help="cpu (default), cuda, mps or auto (torchrun: each rank's GPU)")
    a("--tensorboard", metavar="DIR", help="write TensorBoard event files to DIR")
    a(
        "--detect-anomaly",
        action="store_true",
        help="Pyro validation and torch anomaly detection, to find where a NaN comes from (slow)",
    )
    return p


def train(args):
    """Every check (options, data, model, out folder, checkpoint) passes before rank 0 writes
    anything; rank 0 owns the out folder while it trains (:mod:`pyrovae.infer.run_folder`), and
    ``config.yaml`` is written with the first checkpoint. Under torchrun only rank 0 writes
    files and prints."""
    if args.resume and args.overwrite:
        raise ValueError("give --resume or --overwrite, not both")
    flags = {k: v for k, v in vars(args).items() if k in cfg.DEFAULTS}
    file_values = cfg.read_file(args.config) if args.config else {}
    config = cfg.resolve(file_values, flags)
    out = Path(config["out"])
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    is_main = env_rank() == 0
    with run_folder.owned(out) if is_main else contextlib.nullcontext():
        if args.resume and (out / CHECKPOINT).is_file():
            state = ckpt.load(out / CHECKPOINT)
            stored = state.get("config") or _config_file(out)
            if stored is not None:
                config = cfg.resume(stored, file_values, flags, state["epoch"])
        data = cfg.load_data(config)
        _check_input_dim(config, data)
        meta = budget.check_model(lambda: cfg.build_model(config, data.input_shape))
        budget.check_training(config, len(data.train), data.input_dim, meta)
        pyro.set_rng_seed(config["seed"])  # the initial weights belong to the seeded run
        model = cfg.build_model(config, data.input_shape)
        make_elbo(config["elbo"], model, config["num_particles"], config["alpha"])  # refusals
        if is_main:
            open_run(out / CHECKPOINT, model, args.resume, args.overwrite, env_world_size())
        logger = None
        if args.tensorboard and is_main:
            from .infer.loggers import TensorBoardLogger

            logger = TensorBoardLogger(args.tensorboard)
        data_keys = ("dataset", "data_root", "binarize", "num_samples", "out")
        # fit writes config.yaml with each checkpoint: every value the model used
        history = fit(
            model,
            data,
            epochs=config["epochs"],
            batch_size=config["batch_size"],
            lr=config["lr"],
            seed=config["seed"],
            num_particles=config["num_particles"],
            warmup_epochs=config["warmup_epochs"],
            elbo=config["elbo"],
            alpha=config["alpha"],
            beta=config["beta"],
            patience=config["patience"],
            score_test=config["score_test"],
            out=out,
            config={k: str(config[k]) if k == "out" else config[k] for k in data_keys},
            device=args.device,
            logger=logger,
            resume=args.resume,
            overwrite=args.overwrite,
            detect_anomaly=args.detect_anomaly,
            progress=not args.quiet,
        )
        if is_main:
            from .plots import save_all

            save_all(model, data, history, out)
            print(json.dumps({"out": str(out), "test_elbo": history["test_elbo"][-1]}))


def _check_input_dim(config, data):
    given = config["input_dim"]
    if given is not None and list(given if isinstance(given, list) else [given]) not in (
        [data.input_dim],
        list(data.input_shape),
    ):
        raise ValueError(
            f"input_dim {given} does not match the {config['dataset']} rows "
            f"({data.input_dim} values, shape {list(data.input_shape)}); remove input_dim"
        )


def _config_file(out):
    path = out / run_folder.CONFIG
    return cfg.read_file(path) if path.is_file() else None


def load_run(out, device=None):
    """Config, data and trained model of the run in folder ``out`` (:func:`pyrovae.load`)."""
    written = run.load_config(out)
    if "dataset" not in written:
        raise ValueError(
            f"{out} was trained by fit on data given in Python, which the command line cannot "
            "load: evaluate it there, pyrovae.evaluate(pyrovae.load(run), data)"
        )
    config = cfg.resolve(written)
    return config, cfg.load_data(config), run.load(out, device)


def evaluate_run(args):
    config, data, model = load_run(args.out, args.device)
    num_samples = args.num_samples or config["num_samples"]
    budget.check_evaluation(len(data.test), num_samples)
    result = evaluate(
        model, data, num_samples=num_samples, batch_size=args.batch_size, seed=args.seed
    )
    print(json.dumps({"model": config["model"], "dataset": config["dataset"], **result}, indent=1))


def sample(args):
    from .plots import sample_grid
    from .plots.canvas import image_scale

    if not Path(args.o).parent.is_dir():
        raise FileNotFoundError(f"the folder of -o {args.o} does not exist; create it first")
    config, data, model = load_run(args.out)
    shape = data.image_shape
    budget.check_sample_grid(args.n, data.input_dim, shape, image_scale(shape) if shape else 1)
    torch.manual_seed(args.seed)
    sample_grid(model, args.n, data.image_shape, args.o)
    print(args.o)


def parser():
    p = Parser(prog="pyrovae", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    _train_parser(sub).set_defaults(run=train)
    e = sub.add_parser("evaluate", help="print ELBO and log-likelihood of a trained run as JSON")
    e.add_argument("out", help="a folder written by pyrovae train")
    e.add_argument("--num-samples", type=_positive_int, help="importance samples per example")
    e.add_argument("--seed", type=_seed, default=0, help="seed of the importance samples")
    e.add_argument("--batch-size", type=_positive_int, default=100, help="rows per chunk")
    e.add_argument("--device", type=_device, help="cpu (default), cuda, mps or auto")
    e.set_defaults(run=evaluate_run)
    s = sub.add_parser("sample", help="save a grid of samples from a trained run as PNG")
    s.add_argument("out", help="a folder written by pyrovae train")
    s.add_argument("-n", type=_positive_int, default=64, help="number of samples (default 64)")
    s.add_argument("-o", default="samples.png", help="output PNG (default samples.png)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the samples")
    s.set_defaults(run=sample)
    return p


def main(argv=None):
    """Exit codes: 0 done; 2 bad input (options, files, data: one line on stderr, nothing
    written); 1 training stopped by a non-finite loss or gradient (the last good checkpoint is
    kept); 130 interrupted (Ctrl-C; the last checkpoint is kept)."""
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as err:
        print(f"pyrovae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"pyrovae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"pyrovae {args.command}: interrupted; a run keeps its last checkpoint: continue it "
            "with --resume",
            file=sys.stderr,
        )
        return 130
    return 0


def _one_line(err):
    return " ".join(str(err).split())
