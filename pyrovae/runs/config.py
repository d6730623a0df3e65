"""Run configuration: one flat mapping of the options of :mod:`pyrovae.runs.options`, read
from YAML and command-line flags.

``resolve(file_values, flag_values)`` merges defaults < config file < flags and checks every
key and value; ``build_model(config, input_dim)`` and ``load_data(config)`` turn it into
objects. A part (``prior``, ``posterior``, ``likelihood``, ``guide``…) is a name or a mapping
``{name: ..., option: value}``, exactly as :mod:`pyrovae.parts` takes it.
"""

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import checks, schema
from .. import data as data_module
from ..infer.objectives import OBJECTIVES
from ..infer.options import Options
from ..models import models
from ..parts import decoders, encoders, likelihoods, posteriors, priors
from ..parts.registry import Registry
from ..parts.registry import parameters as options_of
from . import budget
from .options import (
    DEFAULT_LATENT_DIM,
    MODEL_KEYS,
    SECTIONS,
    DataOptions,
    FitOptions,
    ModelOptions,
    RunOptions,
)
from .yaml import load_yaml, read_file  # noqa: F401 (read_file: the config file reader)

DEFAULTS = schema.defaults(*SECTIONS, only_keys=True)
"""Every config key with its default (:mod:`pyrovae.runs.options`)."""
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")  # what an option's name looks like
LABEL_MODELS = ("cvae", "ssvae")  # the models that learn from labels
PART_REGISTRIES = {
    "prior": priors,
    "posterior": posteriors,
    "likelihood": likelihoods,
    "encoder": encoders,
    "decoder": decoders,
}


Config = dict[str, Any]
"""A resolved config: every key of :data:`DEFAULTS` with its value."""
InputDim = int | Sequence[int] | None


def resolve(
    file_values: Mapping[str, Any] | None = None, flag_values: Mapping[str, Any] | None = None
) -> Config:
    """Defaults < config file < flags (``None`` flags are unset); every key and value checked.

    :raises ValueError: naming the first key whose value is unknown, of the wrong type or out of
        range, and what it accepts.
    """
    config = dict(DEFAULTS)
    for source in (file_values or {}, flag_values or {}):
        unknown = sorted(set(source) - set(DEFAULTS), key=str)
        if unknown:
            named = [k for k in unknown if isinstance(k, str) and _NAME.fullmatch(k)]
            others = len(unknown) - len(named)  # not echoed: they may be a stray file's lines
            what = ", ".join(named + ([f"{others} that are not option names"] if others else []))
            raise ValueError(f"unknown config key(s) {what}; known keys: {', '.join(DEFAULTS)}")
        for key, value in source.items():
            checks.config_shape(key, value)  # nesting and list lengths bounded before any use
        config.update({k: v for k, v in source.items() if v is not None})
    _labels(config)
    _check(config)
    _own_data(
        config, any(s.get("dataset") is not None for s in (file_values or {}, flag_values or {}))
    )
    if config["binarize"] is None:
        bernoulli = config["model"] in ("vae", *LABEL_MODELS) and _part_name(
            config["likelihood"]
        ) in (
            None,
            "bernoulli",
        )
        clusters = _part_name(config["prior"]) == "mixture"  # grey levels, as VaDE
        config["binarize"] = "dynamic" if bernoulli and not clusters else "none"
    return config


RESUMABLE = ("epochs", "num_samples", "data_root", "out", *schema.free_keys(*SECTIONS))
"""Keys a resumed run may change: the number of epochs (to train on), the evaluation's sample
count, where the data and the run are found, and the keys that leave the result alone
(``logger``, ``num_workers``). Any other change would make the result differ from that of an
uninterrupted run."""


def resume(
    stored: Mapping[str, Any],
    file_values: Mapping[str, Any] | None = None,
    flag_values: Mapping[str, Any] | None = None,
    epochs_done: int = 0,
) -> Config:
    """The config of a resumed run: the run's ``stored`` config < config file < flags.

    Without ``epochs`` among the new values the run continues to its own target.

    :raises ValueError: naming every option that differs from the run's (only the keys in
        :data:`RESUMABLE` may), or when ``epochs`` is below the ``epochs_done`` already trained.
    """
    stored = resolve(stored)
    config = resolve({**stored, **(file_values or {})}, flag_values)
    changed = [
        k
        for k in config
        if k not in RESUMABLE and _compared(k, config[k]) != _compared(k, stored[k])
    ]
    if changed:
        what = ", ".join(f"{k} {config[k]!r} (the run's: {stored[k]!r})" for k in changed)
        raise ValueError(
            f"--resume would change {what}: the result would differ from the uninterrupted "
            "run's; resume with the run's options (only --epochs may change) or train into a "
            "new --out folder"
        )
    # the run's own spelling (input_dim as given: it is checked against the data)
    config.update({k: stored[k] for k in config if k not in (*RESUMABLE, "input_dim")})
    if config["epochs"] < epochs_done:
        raise ValueError(
            f"epochs {config['epochs']} is below the {epochs_done} epochs this run has already "
            f"trained; resume with --epochs {epochs_done} or more"
        )
    return config


def canonical(key: str, value: Any) -> Any:
    """One spelling of an option's value, so that equal options compare equal: a part given as
    ``{name: x}`` is ``x``; ``input_dim`` is a list without leading 1s (``64`` = ``[64]``,
    ``[1, 8, 8]`` = ``[8, 8]``: one channel is the same picture)."""
    if key in PART_REGISTRIES or key == "guide":
        if isinstance(value, dict) and set(value) == {"name"}:
            return value["name"]
        return value
    if key == "input_dim" and value is not None:
        shape = list(value) if isinstance(value, list | tuple) else [value]
        while len(shape) > 1 and shape[0] == 1:
            shape = shape[1:]
        return shape
    return value


def _compared(key: str, value: Any) -> Any:
    """What ``--resume`` compares: :func:`canonical`, and for ``input_dim`` the number of
    values (``64`` and ``[1, 8, 8]`` both describe the digits rows; which shapes fit the data
    is checked against the data itself)."""
    value = canonical(key, value)
    return math.prod(value) if key == "input_dim" and value is not None else value


def _labels(config: Config) -> None:
    """``condition_on: label`` turns the VAE into the conditional VAE; ``num_labels`` is for
    the semi-supervised VAE only."""
    if config["condition_on"] is not None:
        checks.one_of("condition_on", config["condition_on"], ("label",))
        if config["model"] == "vae":
            config["model"] = "cvae"
        elif config["model"] not in LABEL_MODELS:
            raise ValueError(
                f"model {config['model']!r} cannot condition on labels; use model vae (it "
                "becomes cvae), cvae or ssvae"
            )
    checks.positive_int("num_labels", config["num_labels"], optional=True)
    if config["num_labels"] is not None and config["model"] != "ssvae":
        raise ValueError(
            f"num_labels keeps only some training labels, for the semi-supervised VAE; use "
            f"--model ssvae, or drop num_labels (model {config['model']!r} needs every label)"
        )


def _own_data(config: Config, named: bool) -> None:
    """``data`` (the user's file, made absolute so that ``evaluate`` and ``sample`` find it
    from anywhere) or a ``dataset`` (``named``: given, not the default), not both: with
    ``data`` the config has no ``dataset``. ``labels`` and ``data_key`` belong to ``data``, and
    a model that learns from labels needs them."""
    if config["data"] is None:
        given = [k for k in ("labels", "data_key") if config[k] is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} name a column or key of your own file: give --data PATH, "
                f"or drop {', '.join(given)} (dataset {config['dataset']!r} has its own labels)"
            )
        return
    if named:
        raise ValueError(
            f"give --data {config['data']} or --dataset {config['dataset']}, not both (data is "
            "your own file, dataset a named data set)"
        )
    config["dataset"] = None
    config["data"] = str(Path(config["data"]).expanduser().absolute())
    if config["model"] in LABEL_MODELS and config["labels"] is None:
        raise ValueError(
            f"model {config['model']!r} learns from labels: give --labels COLUMN, the column "
            f"(or key) of {config['data']} that holds them"
        )


def _part_name(spec: object) -> Any:
    return spec.get("name") if isinstance(spec, dict) else spec


def _check(config: Config) -> None:
    """Every value's own check (:mod:`pyrovae.runs.options`), then what ties values together."""
    schema.check_values((Options,), config)
    if not isinstance(config["elbo"], str):
        raise ValueError(f"elbo must be one of {', '.join(OBJECTIVES)}, got {config['elbo']!r}")
    Options(**{k: config[k] for k in Options.__dataclass_fields__ if k in config})  # elbo, alpha
    schema.check_values((RunOptions, DataOptions, ModelOptions, FitOptions), config)
    for key, registry in PART_REGISTRIES.items():
        _check_part(key, config[key], registry)
    _check_part("guide", config["guide"], None)
    accepted = options_of(models[config["model"]])  # raises with the known names
    missing = [
        k
        for k, p in accepted.items()
        if k in MODEL_KEYS and k != "latent_dim" and p.default is p.empty and config[k] is None
    ]
    if missing:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in missing)
        raise ValueError(
            f"model {config['model']!r} needs {', '.join(missing)}: give {flags} (or the key in "
            "the config file)"
        )
    foreign = [k for k in MODEL_KEYS if config[k] is not None and k not in accepted]
    if foreign:
        raise ValueError(
            f"{', '.join(foreign)}: not an option of model {config['model']!r} (its options: "
            f"{', '.join(k for k in MODEL_KEYS if k in accepted)}); remove it or pick a model "
            "that takes it"
        )


def _check_part(key: str, spec: object, registry: Registry | None) -> None:
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


def load_data(config: Mapping[str, Any]) -> data_module.Data:
    """The rows of a resolved ``config``: the user's file (``data``) or a named ``dataset``."""
    if config["data"] is not None:
        how = {"labels": config["labels"], "key": config["data_key"]}
        data = data_module.load_file(config["data"], binarize=config["binarize"], **how)
    else:
        data = data_module.load(config["dataset"], config["data_root"], config["binarize"])
    if config["num_labels"] is not None:
        data = data_module.keep_labels(data, config["num_labels"], config["seed"])
    return data


def size_model(config: Mapping[str, Any], input_dim: InputDim) -> Any:
    """:func:`build_model` on PyTorch's ``meta`` device (no memory, no random numbers), refused
    when training it would not fit in memory (:func:`pyrovae.runs.budget.check_model`); the meta
    model, or ``None`` when it cannot be built there."""
    return budget.check_model(lambda: build_model(config, input_dim, sized=True))


def build_model(config: Mapping[str, Any], input_dim: InputDim, sized: bool = False) -> Any:
    """The model named by ``config["model"]`` with the model options that are set, after
    :func:`size_model` unless ``sized`` (the caller has sized it).

    ``input_dim`` is D or the data's ``input_shape`` (``(C, H, W)`` for images): models that
    take image shapes (``accepts_image_shape``, e.g. the VAE's conv networks) get the shape,
    others D. ``None``: the config's own ``input_dim`` (a saved run's). Without ``latent_dim``
    or ``sphere_dim`` the latent dimension is :data:`~pyrovae.runs.options.DEFAULT_LATENT_DIM`.
    """
    if not sized:
        size_model(config, input_dim)
    input_dim = config["input_dim"] if input_dim is None else input_dim
    options = {k: config[k] for k in MODEL_KEYS if config[k] is not None}
    shape = tuple(input_dim) if isinstance(input_dim, tuple | list) else (input_dim,)
    if not getattr(models[config["model"]], "accepts_image_shape", False):
        input_dim = math.prod(shape)
    context = {"input_dim": input_dim}
    if "latent_dim" not in options and "sphere_dim" not in options:
        context["latent_dim"] = DEFAULT_LATENT_DIM
    return models.build({"name": config["model"], **options}, **context)
