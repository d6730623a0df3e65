"""Run configuration: one flat mapping, read from YAML and command-line flags.

``resolve(file_values, flag_values)`` merges defaults < config file < flags and checks every
key and value; ``build_model(config, input_dim)`` and ``load_data(config)`` turn it into
objects. A part (``prior``, ``posterior``, ``likelihood``, ``guide``…) is a name or a mapping
``{name: ..., option: value}``, exactly as :mod:`pyrovae.parts` takes it.
"""

from pathlib import Path

import yaml

from . import data as data_module
from .models import models

MODEL_KEYS = (
    "latent_dim",
    "hidden",
    "activation",
    "prior",
    "posterior",
    "likelihood",
    "encoder",
    "decoder",
    "num_components",
    "covariance",
    "guide",
    "noise",
)
DEFAULTS = {
    "model": "vae",
    "dataset": "digits",
    "data_root": None,
    "binarize": None,
    **dict.fromkeys(MODEL_KEYS),
    "epochs": 100,
    "batch_size": 100,
    "lr": 1e-3,
    "seed": 0,
    "warmup_epochs": 0,
    "patience": None,
    "num_particles": 1,
    "num_samples": 1000,
    "out": "runs/default",
}
DEFAULT_LATENT_DIM = 2
_POSITIVE_INTS = ("latent_dim", "num_components", "epochs", "batch_size", "num_particles")
_POSITIVE_INTS += ("num_samples", "patience")


def read_file(path):
    """The mapping in a YAML (or JSON) config file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    values = yaml.safe_load(path.read_text())
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values")
    return {key.replace("-", "_"): value for key, value in values.items()}


def resolve(file_values=None, flag_values=None):
    """Defaults < config file < flags (``None`` flags are unset); every key and value checked."""
    config = dict(DEFAULTS)
    for source in (file_values or {}, flag_values or {}):
        unknown = sorted(set(source) - set(DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(DEFAULTS)}"
            )
        config.update({k: v for k, v in source.items() if v is not None})
    _check(config)
    if config["binarize"] is None:
        bernoulli = config["model"] == "vae" and _part_name(config["likelihood"]) in (
            None,
            "bernoulli",
        )
        config["binarize"] = "dynamic" if bernoulli else "none"
    return config


def _part_name(spec):
    return spec.get("name") if isinstance(spec, dict) else spec


def _check(config):
    for key in _POSITIVE_INTS:
        value = config[key]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    for key in ("lr",):
        if isinstance(config[key], bool) or not isinstance(config[key], int | float):
            raise ValueError(f"{key} must be a number, got {config[key]!r}")
        if not config[key] > 0:
            raise ValueError(f"{key} must be > 0, got {config[key]!r}")
    warmup = config["warmup_epochs"]
    if isinstance(warmup, bool) or not isinstance(warmup, int | float) or warmup < 0:
        raise ValueError(f"warmup_epochs must be a number >= 0, got {warmup!r}")
    if isinstance(config["seed"], bool) or not isinstance(config["seed"], int):
        raise ValueError(f"seed must be an integer, got {config['seed']!r}")
    if config["dataset"] not in data_module.DATASETS:
        raise ValueError(
            f"unknown dataset {config['dataset']!r}; known: {', '.join(data_module.DATASETS)}"
        )
    if config["binarize"] not in (None, *data_module.BINARIZE):
        raise ValueError(
            f"binarize must be one of {', '.join(data_module.BINARIZE)}, got {config['binarize']!r}"
        )
    hidden = config["hidden"]
    if hidden is not None and (
        not isinstance(hidden, list | tuple)
        or not hidden
        or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden)
    ):
        raise ValueError(f"hidden must be a list of positive integers, got {hidden!r}")
    models[config["model"]]  # raises with the known names


def load_data(config):
    return data_module.load(config["dataset"], config["data_root"], config["binarize"])


def build_model(config, input_dim):
    """The model named by ``config["model"]`` with the model options that are set."""
    options = {k: config[k] for k in MODEL_KEYS if config[k] is not None}
    context = {"input_dim": input_dim, "dim": input_dim}
    if "latent_dim" not in options:
        context["latent_dim"] = DEFAULT_LATENT_DIM
    return models.build({"name": config["model"], **options}, **context)


def write(config, path):
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
