"""Run configuration: one flat mapping, read from YAML and command-line flags.

``resolve(file_values, flag_values)`` merges defaults < config file < flags and checks every
key and value; ``build_model(config, input_dim)`` and ``load_data(config)`` turn it into
objects. A part (``prior``, ``posterior``, ``likelihood``, ``guide``…) is a name or a mapping
``{name: ..., option: value}``, exactly as :mod:`pyrovae.parts` takes it.
"""

import inspect
import math
from pathlib import Path

import yaml

from . import data as data_module
from .models import models
from .parts import decoders, encoders, likelihoods, posteriors, priors
from .parts.networks import ACTIVATIONS

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
    "reg_covar",
    "pretrain_epochs",
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
PART_REGISTRIES = {
    "prior": priors,
    "posterior": posteriors,
    "likelihood": likelihoods,
    "encoder": encoders,
    "decoder": decoders,
}
_POSITIVE_INTS = ("latent_dim", "num_components", "epochs", "batch_size", "num_particles")
_POSITIVE_INTS += ("num_samples", "patience")


def read_file(path):
    """The mapping in a YAML (or JSON) config file; ``-`` in keys becomes ``_``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(
            f"config file {path} is not valid YAML{at}; write one 'key: value' per line"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values")
    bad = [k for k in values if not isinstance(k, str)]
    if bad:
        raise ValueError(f"config file {path}: key {bad[0]!r} is not a name; keys are words")
    return {key.replace("-", "_"): value for key, value in values.items()}


def resolve(file_values=None, flag_values=None):
    """Defaults < config file < flags (``None`` flags are unset); every key and value checked.

    :raises ValueError: naming the first key whose value is unknown, of the wrong type or out of
        range, and what it accepts.
    """
    config = dict(DEFAULTS)
    for source in (file_values or {}, flag_values or {}):
        unknown = sorted(set(source) - set(DEFAULTS), key=str)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {', '.join(map(str, unknown))}; known keys: "
                f"{', '.join(DEFAULTS)}"
            )
        config.update({k: v for k, v in source.items() if v is not None})
    _check(config)
    if config["binarize"] is None:
        bernoulli = config["model"] == "vae" and _part_name(config["likelihood"]) in (
            None,
            "bernoulli",
        )
        clusters = _part_name(config["prior"]) == "mixture"  # grey levels, as VaDE
        config["binarize"] = "dynamic" if bernoulli and not clusters else "none"
    return config


def _part_name(spec):
    return spec.get("name") if isinstance(spec, dict) else spec


def _check(config):
    for key in _POSITIVE_INTS:
        if config[key] is not None and not (_int(config[key]) and config[key] >= 1):
            raise ValueError(f"{key} must be a positive integer, got {config[key]!r}")
    if not (_real(config["lr"]) and 0 < config["lr"] < math.inf):
        raise ValueError(f"lr must be a positive number, got {config['lr']!r}")
    warmup = config["warmup_epochs"]
    if not (_real(warmup) and 0 <= warmup < math.inf):
        raise ValueError(f"warmup_epochs must be a number >= 0, got {warmup!r}")
    if not (_int(config["seed"]) and 0 <= config["seed"] < 2**32):
        raise ValueError(f"seed must be an integer in [0, 2**32), got {config['seed']!r}")
    for key in ("model", "dataset", "out", "data_root", "activation", "covariance"):
        value = config[key]
        if value is not None and not (isinstance(value, str | Path) and str(value).strip()):
            raise ValueError(f"{key} must be a name or path (text), got {value!r}")
    if config["dataset"] not in data_module.DATASETS:
        raise ValueError(
            f"unknown dataset {config['dataset']!r}; known datasets: "
            f"{', '.join(data_module.DATASETS)}"
        )
    _one_of("binarize", config["binarize"], (None, *data_module.BINARIZE))
    _one_of("activation", config["activation"], (None, *ACTIVATIONS))
    hidden = config["hidden"]
    if hidden is not None and not (
        isinstance(hidden, list | tuple) and hidden and all(_int(h) and h >= 1 for h in hidden)
    ):
        raise ValueError(f"hidden must be a list of positive integers, got {hidden!r}")
    for key, registry in PART_REGISTRIES.items():
        _check_part(key, config[key], registry)
    _check_part("guide", config["guide"], None)
    model_class = models[config["model"]]  # raises with the known names
    accepted = inspect.signature(model_class).parameters
    foreign = [k for k in MODEL_KEYS if config[k] is not None and k not in accepted]
    if foreign:
        raise ValueError(
            f"{', '.join(foreign)}: not an option of model {config['model']!r} (its options: "
            f"{', '.join(k for k in MODEL_KEYS if k in accepted)}); remove it or pick a model "
            "that takes it"
        )


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one_of(key, value, allowed):
    if value not in allowed:
        known = ", ".join(a for a in allowed if a is not None)
        raise ValueError(f"{key} must be one of {known}, got {value!r}")


def _check_part(key, spec, registry):
    """A part is a registered name or a mapping with a ``name`` (options are checked when the
    model is built)."""
    if spec is None:
        return
    name = spec.get("name") if isinstance(spec, dict) else spec
    if not isinstance(name, str):
        raise ValueError(
            f"{key} must be a name or a mapping {{name: ..., option: value}}, got {spec!r}"
        )
    if registry is not None:
        registry[name]  # raises with the known names


def load_data(config):
    return data_module.load(config["dataset"], config["data_root"], config["binarize"])


def build_model(config, input_dim):
    """The model named by ``config["model"]`` with the model options that are set."""
    options = {k: config[k] for k in MODEL_KEYS if config[k] is not None}
    context = {"input_dim": input_dim}
    if "latent_dim" not in options:
        context["latent_dim"] = DEFAULT_LATENT_DIM
    return models.build({"name": config["model"], **options}, **context)


def write(config, path):
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
