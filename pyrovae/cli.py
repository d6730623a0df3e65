"""Command line: ``pyrovae train | evaluate | sample``.

``train`` reads options from flags and/or ``--config FILE.yaml`` (flags win), trains, and
writes ``OUT/config.yaml``, ``OUT/metrics.json``, ``OUT/checkpoint.pt`` and pictures.
``evaluate OUT`` prints JSON with ``elbo`` and ``log_likelihood`` (nats per example).
``sample OUT -n 64 -o FILE.png`` draws from the trained model.
"""

import argparse
import json
import sys
from pathlib import Path

import pyro
import torch
import yaml

from . import config as cfg
from .infer import checkpoint as ckpt
from .infer.distributed import env_rank, env_world_size
from .infer.evaluate import evaluate
from .infer.train import CHECKPOINT, fit, open_run


class Parser(argparse.ArgumentParser):
    """``argparse`` with one-line errors: ``pyrovae train: error: ... (see --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _part(text):
    """A part on the command line: a name, or an inline YAML mapping ``{name: x, opt: 1}``."""
    if text.lstrip().startswith("{"):
        value = yaml.safe_load(text)
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"expected a name or {{name: ..., ...}}, got {text}")
        return value
    return text


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {text!r}")
    return value


def _int_list(text):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
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
    a("--latent-dim", type=int, help="latent dimension (default 2)")
    a("--hidden", type=_int_list, help="hidden layer sizes of the MLPs, e.g. 256,128")
    a("--activation", help="MLP activation: relu (default), tanh, elu, gelu, silu, ...")
    a("--prior", type=_part, help="prior: normal (default), or {name: ..., option: ...}")
    a("--posterior", type=_part, help="posterior family: normal (default), or a mapping")
    a("--likelihood", type=_part, help="bernoulli (default), gaussian, or a mapping")
    a("--encoder", type=_part, help="encoder network: mlp (default), or {name: mlp, hidden: [..]}")
    a("--decoder", type=_part, help="decoder network: mlp (default), or a mapping")
    a("--num-components", type=int, help="number of mixture components (gmm, llgae)")
    a("--covariance", help="gmm covariance: diag or full")
    a("--reg-covar", type=float, help="gmm covariance floor added to every variance (default 1e-6)")
    a(
        "--pretrain-epochs",
        type=int,
        help="VaDE start of a mixture prior: auto-encoder epochs "
        "before the GMM on its codes (default 50; 0: off)",
    )
    a("--noise", help="llgae noise scale: learned (default) or a fixed number")
    a("--guide", type=_part, help="llgae guide: amortized, iterative, exact, or a mapping")
    a("--epochs", type=int, help="passes over the training set (default 100)")
    a("--batch-size", type=int, help="rows per SVI step (default 100)")
    a("--lr", type=float, help="Adam learning rate (default 1e-3)")
    a("--seed", type=int, help="seed for torch, numpy and random (default 0)")
    a("--warmup-epochs", type=float, help="KL warm-up length in epochs (default 0: none)")
    a("--patience", type=int, help="early stopping patience in epochs on the validation ELBO")
    a("--num-particles", type=int, help="samples per ELBO estimate (default 1)")
    a("--num-samples", type=int, help="importance samples for the final log-likelihood")
    a("--resume", action="store_true", help="continue OUT/checkpoint.pt if it exists")
    a("--overwrite", action="store_true", help="start afresh over an existing checkpoint")
    a("--quiet", action="store_true", help="no progress bar")
    a(
        "--detect-anomaly",
        action="store_true",
        help="Pyro validation and torch anomaly detection, to find where a NaN comes from (slow)",
    )
    return p


def train(args):
    """Every check (options, data, model, out folder, checkpoint) passes before rank 0 writes
    anything; under torchrun only rank 0 writes files and prints."""
    flags = {k: v for k, v in vars(args).items() if k in cfg.DEFAULTS}
    config = cfg.resolve(cfg.read_file(args.config) if args.config else {}, flags)
    data = cfg.load_data(config)
    pyro.set_rng_seed(config["seed"])  # the initial weights belong to the seeded run
    model = cfg.build_model(config, data.input_dim)
    out = Path(config["out"])
    is_main = env_rank() == 0
    if is_main:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; give a folder")
        open_run(out / CHECKPOINT, model, args.resume, args.overwrite, env_world_size())
        cfg.write(config, out / "config.yaml")
    history = fit(
        model,
        data,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        lr=config["lr"],
        seed=config["seed"],
        num_particles=config["num_particles"],
        warmup_epochs=config["warmup_epochs"],
        patience=config["patience"],
        out=out,
        resume=args.resume,
        overwrite=args.overwrite,
        detect_anomaly=args.detect_anomaly,
        progress=not args.quiet,
    )
    if is_main:
        from .plots import save_all
        from .plots_mixture import save_mixture_pictures

        save_all(model, data, history, out)
        save_mixture_pictures(model, data, out)
        print(json.dumps({"out": str(out), "test_elbo": history["test_elbo"][-1]}))


def load_run(out):
    """Config, data and trained model of the run in folder ``out``."""
    out = Path(out)
    if not (out / "config.yaml").is_file() or not (out / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{out} holds no trained run (config.yaml and {CHECKPOINT})")
    config = cfg.resolve(cfg.read_file(out / "config.yaml"))
    data = cfg.load_data(config)
    model = cfg.build_model(config, data.input_dim)
    model.load_state_dict(ckpt.load(out / CHECKPOINT, model)["model"])
    return config, data, model


def evaluate_run(args):
    config, data, model = load_run(args.out)
    num_samples = args.num_samples or config["num_samples"]
    result = evaluate(model, data, num_samples=num_samples, seed=args.seed)
    print(json.dumps({"model": config["model"], "dataset": config["dataset"], **result}, indent=1))


def sample(args):
    from .plots import sample_grid

    if not Path(args.o).parent.is_dir():
        raise FileNotFoundError(f"the folder of -o {args.o} does not exist; create it first")
    config, data, model = load_run(args.out)
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
    e.set_defaults(run=evaluate_run)
    s = sub.add_parser("sample", help="save a grid of samples from a trained run as PNG")
    s.add_argument("out", help="a folder written by pyrovae train")
    s.add_argument("-n", type=_positive_int, default=64, help="number of samples (default 64)")
    s.add_argument("-o", default="samples.png", help="output PNG (default samples.png)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the samples")
    s.set_defaults(run=sample)
    return p


def main(argv=None):
    """Exit codes: 0 done, 2 bad input (options, files, data: nothing was written), 1 training
    stopped by a non-finite loss or gradient (the last good checkpoint is kept)."""
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as err:
        print(f"pyrovae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"pyrovae {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0
