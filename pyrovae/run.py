"""Run folders: what ``fit(out=...)`` and ``pyrovae train`` write, and :func:`load` to read
one back.

A run folder holds ``config.yaml`` (how the model was built and trained: every value used,
no nulls), ``checkpoint.pt`` (:mod:`pyrovae.infer.checkpoint`, which carries the config too,
see :mod:`pyrovae.infer.run_folder`), ``metrics.json`` and, from the CLI, pictures. The config
is written when the model is one of pyrovae's registered models built from names (the model
records its arguments); a user's own class, or a model given a part as an object, cannot be
rebuilt from a file, and ``fit`` says so instead.
"""

import inspect
import math
from pathlib import Path

from . import config as cfg
from .infer import checkpoint as ckpt
from .infer.device import resolve as resolve_device
from .models import models

CONFIG, CHECKPOINT = "config.yaml", "checkpoint.pt"
TRAINING_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "warmup_epochs",
    "patience",
    "num_particles",
    "elbo",
    "alpha",
    "beta",
    "score_test",
)


def model_config(model):
    """``(config, None)``: the config keys that rebuild ``model`` (``model``, ``input_dim`` and
    its options), or ``(None, reason)`` when it cannot be rebuilt from names."""
    cls = type(model)
    name = cls.__dict__.get("registered_name")
    options = getattr(model, "build_options", None)
    if name is None or name not in models or models[name] is not cls or options is None:
        return None, f"{cls.__name__} is not one of pyrovae's registered models"
    config = {"model": name}
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    for key, value in options.items():
        if key in ("input_dim", "dim"):
            if value is not None:  # GaussianMixture's deprecated dim is None unless given
                config["input_dim"] = _plain(value)
        elif key in cfg.MODEL_KEYS:
            config[key] = _plain(value)
        elif value != defaults.get(key):
            return None, f"its option {key}={value!r} is not a config key"
        if key in config and config[key] is _NOT_PLAIN:
            return None, f"its {key} was given as an object, not a name or mapping"
    return config, None


def run_config(model, options, extra=None):
    """The resolved ``config.yaml`` of a run: ``extra`` (how the data were made), the model's
    config and the training ``options`` (:class:`pyrovae.infer.options.Options`), without
    ``None`` values; ``(None, reason)`` when the model cannot be rebuilt from names."""
    model_part, reason = model_config(model)
    if model_part is None:
        return None, reason
    training = {k: getattr(options, k) for k in TRAINING_KEYS}
    if not isinstance(training["elbo"], str):  # a Pyro ELBO object is not a config value
        training["elbo"] = "trace" if training["elbo"] is None else None
    config = {**(extra or {}), **model_part, **training}
    return {k: v for k, v in config.items() if v is not None}, None


def load_config(path):
    """The config of the run folder ``path`` (a dict, as written): the one its checkpoint
    carries, else ``config.yaml``."""
    path = Path(path)
    if (path / CHECKPOINT).is_file():
        stored = ckpt.load(path / CHECKPOINT).get("config")
        if stored is not None:
            return stored
        if (path / CONFIG).is_file():
            return cfg.read_file(path / CONFIG)
    raise FileNotFoundError(
        f"{path} holds no trained run ({CONFIG} and {CHECKPOINT}); give a folder written by "
        "fit(out=...) or pyrovae train"
    )


def load(path, device=None):
    """The trained model of the run folder ``path`` (written by ``fit(out=...)`` or ``pyrovae
    train``), with the parameters of its checkpoint, on ``device`` (default: the CPU; a run
    trained on a GPU loads anywhere). Its config is :func:`load_config`.

    Runs written before ``config.yaml`` recorded ``input_dim`` read their data set to learn it.
    """
    written = load_config(path)
    config = cfg.resolve(written)
    input_dim = config["input_dim"]
    if input_dim is None:
        input_dim = cfg.load_data(config).input_shape
    model = cfg.build_model(config, input_dim)
    state = ckpt.load(Path(path) / CHECKPOINT, model)
    model.load_state_dict(state["model"])
    if getattr(model, "autoguide", None) is not None:
        model.load_guide(state["param_store"])
    if device is not None:
        model.to(resolve_device(device))
    return model


_NOT_PLAIN = object()


def _plain(value):
    """``value`` as YAML-safe plain data (tuples as lists), or ``_NOT_PLAIN``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NOT_PLAIN
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _plain(v) for k, v in value.items()}
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items.values()) else items
    return _NOT_PLAIN
