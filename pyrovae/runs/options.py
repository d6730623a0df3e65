"""The options of a run, one :func:`pyrovae.schema.option` entry each: the data, the model,
where the run goes, and (in :class:`pyrovae.infer.options.Options`) the training.

Every option's default, check, config-file key and ``pyrovae train`` flag come from its entry
here; :data:`SECTIONS` lists the sections in the order of ``--help``. To add an option, add one
field to the section it belongs to (``key=False`` when a config file may not set it,
``flag=False`` when it has no flag, ``result=False`` when it leaves the result alone): the
config file, ``config.yaml``, ``--help`` and the flag follow. A training option goes into
:class:`~pyrovae.infer.options.Options` and reaches the loop as ``state.options``; an option
of :class:`FitOptions` is handed to :func:`pyrovae.fit` by keyword; a model option is passed
to the model's constructor by name (:func:`pyrovae.runs.config.build_model`); a data option is
read by :func:`pyrovae.runs.config.load_data`; a run option by :mod:`pyrovae.cli`.
"""

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import checks
from .. import data as data_module
from ..infer.device import DEVICES
from ..infer.loggers import LOGGERS
from ..infer.options import Options
from ..parts.network import ACTIVATIONS
from ..schema import integer, integers, one_of, option, optional
from .yaml import load_yaml

DEFAULT_LATENT_DIM = 2
"""The latent dimension of a model built from a config without ``latent_dim`` or
``sphere_dim`` (the models themselves have none: ``VAE(input_dim, latent_dim)``)."""


def part(text: str) -> str | dict[str, Any]:
    """A part on the command line: a name, or an inline YAML mapping ``{name: x, opt: 1}``."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        value = load_yaml(text, "the mapping")
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected {{name: ..., option: value}}: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a name or {{name: ..., ...}}, got {text}")
    return value


def number_or_learned(text: str) -> str | float:
    """``learned`` or a number (checked by the model: a fixed noise scale must be > 0)."""
    if text == "learned":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'learned', got {text!r}") from None


def device(text: str) -> str:
    if text not in DEVICES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(DEVICES)}, got {text!r}")
    return text


def text(name: str, value: Any) -> Any:
    """A name or path: non-empty text."""
    if not (isinstance(value, str) and value.strip()) and not hasattr(value, "__fspath__"):
        raise ValueError(f"{name} must be a name or path (text), got {value!r}")
    return value


def sizes(name: str, value: Any) -> Any:
    return checks.sizes(name, value if isinstance(value, list | tuple) else [value])


def column(name: str, value: Any) -> Any:
    """A column or key of the user's file: a name, or an index (its digits on a command line)."""
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and value)
    ):
        raise ValueError(f"{name} must be a column name or index, got {value!r}")
    return value


def loggers(name: str, value: Any) -> Any:
    """A logger's name, or a list of them (:data:`pyrovae.infer.loggers.LOGGERS`)."""
    for item in value if isinstance(value, list | tuple) else [value]:
        checks.one_of(name, item, tuple(LOGGERS))
    return value


def dataset(name: str, value: Any) -> Any:
    if value not in data_module.DATASETS:
        raise ValueError(
            f"unknown {name} {value!r}; known datasets: {', '.join(data_module.DATASETS)}"
        )
    return value


POSITIVE = optional(checks.positive_int)
TEXT = optional(text)


@dataclass(frozen=True, kw_only=True)
class DataOptions:
    """Which rows a run trains on."""

    dataset: str | None = option(
        "digits",
        "digits (offline), mnist, fashion-mnist; unset by --data",
        dataset,
        str,
    )
    data: str | None = option(
        None,
        "your own rows instead of --dataset: a .npy, .npz, .csv or .pt file or a folder of "
        "images (pyrovae.data.load_file; split 70/10/20 with a fixed seed)",
        TEXT,
        str,
        metavar="PATH",
    )
    labels: str | int | None = option(
        None,
        "--data: the column (name or index) of the .csv/.npy/.pt rows, or the key of the "
        ".npz/.pt dict, that holds integer labels",
        optional(column),
        str,
        metavar="COLUMN",
    )
    data_key: str | None = option(
        None,
        "--data: the key of the rows in an .npz or a dict .pt (unset: the only other one)",
        optional(column),
        str,
        metavar="NAME",
    )
    data_root: str | None = option(
        None, "folder holding MNIST/raw or FashionMNIST/raw ($PYROVAE_DATA)", TEXT, str
    )
    binarize: str | None = option(
        None,
        "none | static | dynamic (unset: dynamic for a Bernoulli VAE without a mixture prior)",
        one_of(None, *data_module.BINARIZE),
        str,
    )
    condition_on: str | None = option(
        None, "label: the conditional VAE, p(x | z, y) and q(z | x, y)", one_of(None, "label"), str
    )
    num_labels: int | None = option(
        None, "ssvae: training labels kept, balanced per class", POSITIVE, integer
    )
    input_dim: list | None = option(
        None, "D or C,H,W (unset: the dataset's; checked if given)", optional(sizes), integers
    )


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """How the model is built: its registered name and the options of its constructor."""

    model: str = option("vae", "model: vae, gmm, llgae, cvae, ssvae", text, str)
    latent_dim: int | None = option(
        None,
        f"latent dimension (unset: {DEFAULT_LATENT_DIM}), ambient: z in R^d, or on the sphere "
        "S^(d-1) in R^d",
        POSITIVE,
        integer,
    )
    sphere_dim: int | None = option(
        None,
        "instead of --latent-dim, for a sphere prior: z on S^d in R^(d+1), d as Davidson et al. "
        "2018 count it (--sphere-dim 2 = --latent-dim 3)",
        POSITIVE,
        integer,
    )
    hidden: list | None = option(
        None,
        "hidden layer sizes of the MLPs, e.g. 256,128 (the default; 500,500,2000 with a mixture "
        "prior, VaDE's)",
        optional(checks.sizes),
        integers,
    )
    activation: str | None = option(
        None, "MLP activation: relu, tanh, elu, gelu, silu, ...", one_of(None, *ACTIVATIONS), str
    )
    prior: object = option(None, "prior: normal, or {name: ..., option: ...}", parse=part)
    posterior: object = option(None, "posterior family: normal, or a mapping", parse=part)
    likelihood: object = option(None, "bernoulli, gaussian, or a mapping", parse=part)
    encoder: object = option(None, "encoder network: mlp, or {name: mlp, hidden: [..]}", parse=part)
    decoder: object = option(None, "decoder network: mlp, or a mapping", parse=part)
    num_components: int | None = option(
        None, "number of mixture components (gmm, llgae)", POSITIVE, integer
    )
    covariance: str | None = option(None, "gmm covariance: diag or full", TEXT, str)
    reg_covar: float | None = option(
        None,
        "gmm covariance floor added to every variance (unset: 1e-6)",
        optional(checks.nonnegative_real),
        float,
    )
    pretrain_epochs: int | None = option(
        None,
        "mixture prior: epochs of VaDE's auto-encoder start before the GMM on its codes "
        "(unset: 3000 batches' worth; 0: off)",
        optional(checks.nonnegative_int),
        integer,
    )
    guide: object = option(
        None, "llgae guide: amortized, iterative, exact, or a mapping", parse=part
    )
    noise: object = option(
        None, "llgae noise scale: learned or a fixed number", parse=number_or_learned
    )
    num_classes: int | None = option(
        None,
        "cvae, ssvae: the labels are 0 … K-1 (unset: 10)",
        optional(lambda name, value: checks.int_at_least(name, value, 2)),
        integer,
    )
    condition_dim: int | None = option(
        None,
        "cvae: y is a real vector of this size, not a label (data given in Python, "
        "from_arrays(x, y) with y (N, c); a file's --labels are one column)",
        POSITIVE,
        integer,
    )
    aux_loss_multiplier: float | None = option(
        None, "ssvae: weight α of the classification term per labelled row (unset: 50)", None, float
    )


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Where the run goes and how the command runs (``config``, ``resume``, ``overwrite``,
    ``device``: flags only, not config keys)."""

    out: str = option("runs/default", "output folder", text, str)
    num_samples: int = option(
        1000, "importance samples for the final log-likelihood", checks.positive_int, integer
    )
    config: str | None = option(
        None, "YAML file of options (keys as the flags, with _ for -)", key=False, metavar="FILE"
    )
    resume: bool = option(False, "continue OUT/checkpoint.pt if it exists", parse=bool, key=False)
    overwrite: bool = option(
        False, "start afresh over an existing checkpoint", parse=bool, key=False
    )
    device: str | None = option(
        None, "cpu, cuda, mps or auto (torchrun: each rank's GPU)", parse=device, key=False
    )


@dataclass(frozen=True, kw_only=True)
class FitOptions:
    """How :func:`pyrovae.fit` runs, not what it computes: each is a keyword of ``fit`` with
    the same default, a flag and a config key, but ``result=False``: ``config.yaml`` does not
    record it and a resumed run may change it."""

    logger: list | None = option(
        None,
        f"log the run to {', '.join(LOGGERS)} (repeat the flag for several; csv, tensorboard "
        "and wandb write to OUT/NAME, mlflow to its tracking store)",
        optional(loggers),
        str,
        metavar="NAME",
        repeat=True,
        result=False,
    )
    num_workers: int = option(
        0,
        "processes that read the training rows ahead of the steps (the batches are the same)",
        checks.nonnegative_int,
        integer,
        result=False,
    )


SECTIONS = (RunOptions, DataOptions, ModelOptions, Options, FitOptions)
MODEL_KEYS = tuple(k for k in ModelOptions.__dataclass_fields__ if k != "model")
TRAINING_KEYS = tuple(
    k for k, f in Options.__dataclass_fields__.items() if f.metadata.get("key", True)
)
RECORDED_DATA_KEYS = (
    "dataset",
    "data",
    "labels",
    "data_key",
    "data_root",
    "binarize",
    "num_samples",
    "out",
)
"""The data and run options that ``pyrovae train`` writes into ``config.yaml`` besides the
model's and the training's (the others are resolved into those: ``condition_on`` into the
model, ``input_dim`` from the model; or, as :class:`FitOptions`, leave the result alone). Unset
ones are left out: a run on the user's file records ``data`` and no ``dataset``."""


def training_options(config: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword options of :func:`pyrovae.fit` for a resolved ``config``: every training
    option that is a config key from it, every other one that has a flag from ``flags`` (the
    parsed command line), and those of :class:`FitOptions`."""
    options = {name: config[name] for name in FitOptions.__dataclass_fields__}
    for name, f in Options.__dataclass_fields__.items():
        if f.metadata.get("key", True):
            options[name] = config[name]
        elif f.metadata.get("flag") and name in flags:
            options[name] = flags[name]
    return options
