"""Command line: ``pyrovae train | evaluate | sample``.

``train`` reads options from flags and/or ``--config FILE.yaml`` (flags win), trains, and
writes ``OUT/config.yaml``, ``OUT/metrics.json``, ``OUT/checkpoint.pt`` and pictures.
``evaluate OUT`` prints JSON with ``elbo`` and ``log_likelihood`` (nats per example).
``sample OUT -n 64 -o FILE.png`` draws from the trained model (``-o FILE.csv``: the rows).
"""

import argparse
import contextlib
import json
import logging
import math
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pyro
import torch

from . import schema
from .data import Data
from .infer.distributed import env_rank, env_world_size
from .infer.evaluation import evaluate
from .runs import budget
from .runs import config as cfg
from .runs.fit import fit
from .runs.folder import RunFolder, WriteError
from .runs.load import load_model
from .runs.options import RECORDED_DATA_KEYS, SECTIONS, device, training_options


class Parser(argparse.ArgumentParser):
    """``argparse`` with one-line errors: ``pyrovae train: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())  # one line, whatever the user's text holds
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = schema.integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    value = schema.integer(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {text!r}")
    return value


def _train_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a model and write OUT/config.yaml, metrics.json, checkpoint.pt, pictures",
        description="Train a model by SVI. Every option can also be given as a key (with _ for "
        "-) in --config FILE.yaml; flags override the file.",
    )
    schema.add_flags(p, *SECTIONS)  # one flag per option of pyrovae.runs.options
    return p


def train(args: argparse.Namespace) -> None:
    """Every check (options, data, model, out folder, checkpoint) passes before rank 0 writes
    anything; rank 0 owns the out folder while it trains (:class:`~pyrovae.runs.RunFolder`),
    and ``config.yaml`` is written with the first checkpoint. Under torchrun only rank 0 writes
    files and prints. The model is built once (and sized once on the ``meta`` device before);
    a resumed run's checkpoint is read once."""
    flags = {k: v for k, v in vars(args).items() if k in cfg.DEFAULTS}
    file_values = cfg.read_file(args.config) if args.config else {}
    config = cfg.resolve(file_values, flags)
    folder = RunFolder(config["out"], args.resume, args.overwrite)
    is_main = env_rank() == 0
    with folder if is_main else contextlib.nullcontext():
        state = folder.checkpoint() if args.resume else None
        stored = folder.config() if state is not None else None
        if state is not None and stored is not None:
            config = cfg.resume(stored, file_values, flags, state["epoch"])
        data = cfg.load_data(config)
        _check_input_dim(config, data)
        meta = cfg.size_model(config, data.input_shape)
        budget.check_training(config, len(data.train), data.input_dim, meta, args.device)
        pyro.set_rng_seed(config["seed"])  # the initial weights belong to the seeded run
        model = cfg.build_model(config, data.input_shape, sized=True)
        if is_main:  # refuse a checkpoint before the logger writes anything
            folder.resumed(model, env_world_size())
        recorded = {k: str(config[k]) if k == "out" else config[k] for k in RECORDED_DATA_KEYS}
        with _start_log(is_main and args.progress):
            history = fit(
                model,
                data,
                out=folder,
                config=recorded,  # config.yaml, with each checkpoint: every value the model used
                device=args.device,
                **training_options(config, vars(args)),
            )
        if is_main:
            from .plots import save_all

            save_all(model, data, history, folder.path)
            print(json.dumps({"out": str(folder.path), "test_elbo": history["test_elbo"][-1]}))


@contextlib.contextmanager
def _start_log(show: bool) -> Iterator[None]:
    """While ``show`` (rank 0 without ``--quiet``), the ``pyrovae`` loggers' INFO records on
    stderr, one line each: the progress of the starts that run before the first epoch (VaDE's
    pretraining and mixture fit, the GMM's EM), which can take minutes."""
    if not show:
        yield
        return
    logger, handler = logging.getLogger("pyrovae"), logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _check_input_dim(config: Mapping[str, Any], data: Data) -> None:
    given = config["input_dim"]
    same = (cfg.canonical("input_dim", d) for d in (data.input_dim, data.input_shape))
    if given is not None and cfg.canonical("input_dim", given) not in list(same):
        raise ValueError(
            f"input_dim {given} does not match the {data.name} rows "
            f"({data.input_dim} values, shape {list(data.input_shape)}); remove input_dim"
        )


def load_run(out: str, device: str | None = None) -> tuple[dict[str, Any], Data, Any]:
    """Config, data and trained model of the run in folder ``out``, each read or built once."""
    folder = RunFolder(out)
    written = folder.trained_config()
    if "dataset" not in written and "data" not in written:
        raise ValueError(
            f"{out} was trained by fit on data given in Python, which the command line cannot "
            "load: evaluate it there, pyrovae.evaluate(pyrovae.load(run), data)"
        )
    config = cfg.resolve(written)
    data = cfg.load_data(config)
    return config, data, load_model(folder, device, config, data)[1]


def evaluate_run(args: argparse.Namespace) -> None:
    config, data, model = load_run(args.out, args.device)
    num_samples = args.num_samples or config["num_samples"]
    budget.check_evaluation(len(data.test) if data.test is not None else 0, num_samples)
    result = evaluate(
        model, data, num_samples=num_samples, batch_size=args.batch_size, seed=args.seed
    )
    bad = [k for k, v in result.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise FloatingPointError(
            f"the {bad[0].replace('_', ' ')} of {args.out} is {result[bad[0]]}: the model gives "
            "non-finite scores on the test rows (JSON has no NaN); retrain it with a lower lr"
        )
    source = {"data": config["data"]} if config["data"] else {"dataset": config["dataset"]}
    report = {"model": config["model"], **source, **result}
    print(json.dumps(report, indent=1, allow_nan=False))


def sample(args: argparse.Namespace) -> None:
    from .plots import sample_grid
    from .plots.canvas import image_scale

    if not Path(args.o).parent.is_dir():
        raise FileNotFoundError(f"the folder of -o {args.o} does not exist; create it first")
    config, data, model = load_run(args.out)
    shape, rows = data.image_shape, Path(args.o).suffix.lower() in (".csv", ".npy")
    if shape is None and not rows:
        raise ValueError(
            f"the rows of run {args.out} are not images ({data.input_dim} values each): give "
            "-o FILE.csv or FILE.npy for the sampled rows"
        )
    budget.check_sample_grid(args.n, data.input_dim, shape, image_scale(shape) if shape else 1)
    torch.manual_seed(args.seed)
    if rows or shape is None:  # (no image shape: rows, checked above)
        _save_rows(model.sample(args.n).cpu().numpy(), args.o)
    else:
        sample_grid(model, args.n, shape, args.o)
    print(args.o)


def _save_rows(x: Any, path: str) -> None:
    """Rows ``(n, D)`` as a .npy array or a .csv file without a header."""
    import numpy as np

    if Path(path).suffix.lower() == ".npy":
        np.save(path, x)
    else:
        np.savetxt(path, x, delimiter=",", fmt="%.7g")


def parser() -> Parser:
    p = Parser(prog="pyrovae", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    _train_parser(sub).set_defaults(run=train)
    e = sub.add_parser("evaluate", help="print ELBO and log-likelihood of a trained run as JSON")
    e.add_argument("out", help="a folder written by pyrovae train")
    e.add_argument("--num-samples", type=_positive_int, help="importance samples per example")
    e.add_argument("--seed", type=_seed, default=0, help="seed of the importance samples")
    e.add_argument("--batch-size", type=_positive_int, default=100, help="rows per chunk")
    e.add_argument("--device", type=device, help="cpu (default), cuda, mps or auto")
    e.set_defaults(run=evaluate_run)
    s = sub.add_parser("sample", help="save a grid of samples from a trained run as PNG")
    s.add_argument("out", help="a folder written by pyrovae train")
    s.add_argument("-n", type=_positive_int, default=64, help="number of samples (default 64)")
    s.add_argument(
        "-o",
        default="samples.png",
        help="output PNG (default samples.png), or .csv/.npy for the sampled rows",
    )
    s.add_argument("--seed", type=_seed, default=0, help="seed of the samples")
    s.set_defaults(run=sample)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 done; 2 bad input (options, files, data: one line on stderr, nothing
    written); 1 a numerical failure (training stopped by a non-finite loss or gradient, or
    non-finite scores) or a file that could not be written (a full disk): the last good
    checkpoint is kept; 130 interrupted (Ctrl-C; the last checkpoint is kept)."""
    command = "pyrovae"
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            with contextlib.suppress(ValueError):  # Ctrl-C raises KeyboardInterrupt again
                signal.signal(signal.SIGINT, signal.default_int_handler)
        args = parser().parse_args(argv)
        command = f"pyrovae {args.command}"
        args.run(args)
    except (WriteError, FloatingPointError) as err:  # a numerical failure, a full disk
        print(f"{command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        print(f"{command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"{command}: interrupted; a run keeps its last checkpoint: continue it with --resume",
            file=sys.stderr,
        )
        return 130
    return 0


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
