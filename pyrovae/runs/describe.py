"""What a run folder's ``config.yaml`` says of a model built in Python: how to build it again.

The config is written when the model is one of pyrovae's registered models built from names
(it records its arguments, :class:`~pyrovae.parts.registry.Recorded`); a user's own class, or
a model given a part as an object, cannot be rebuilt from a file, and ``fit`` says so instead.
"""

import math
from collections.abc import Mapping
from typing import Any

from ..infer.options import Options
from ..models import models
from .config import options_of
from .options import MODEL_KEYS, TRAINING_KEYS


def model_config(model: object) -> tuple[dict[str, Any] | None, str | None]:
    """``(config, None)``: the config keys that rebuild ``model`` (``model``, ``input_dim`` and
    its options), or ``(None, reason)`` when it cannot be rebuilt from names."""
    cls = type(model)
    name = cls.__dict__.get("registered_name")
    options = model.__dict__.get("build_options")
    if name is None or name not in models or models[name] is not cls or options is None:
        return None, f"{cls.__name__} is not one of pyrovae's registered models"
    config: dict[str, Any] = {"model": name}
    defaults = {k: p.default for k, p in options_of(cls).items()}
    for key, value in options.items():
        if key == "input_dim":
            config["input_dim"] = _plain(value)
        elif key in MODEL_KEYS:
            config[key] = _plain(value)
        elif value != defaults.get(key):
            return None, f"its option {key}={value!r} is not a config key"
        if key in config and config[key] is _NOT_PLAIN:
            return None, f"its {key} was given as an object, not a name or mapping"
    return config, None


def run_config(
    model: object, options: Options, extra: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any] | None, str | None]:
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


_NOT_PLAIN = object()


def _plain(value: object) -> Any:
    """``value`` as YAML-safe plain data (tuples as lists), or ``_NOT_PLAIN``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NOT_PLAIN
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        entries = {k: _plain(v) for k, v in value.items()}
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in entries.values()) else entries
    return _NOT_PLAIN
