"""Run configuration: one flat mapping, read from YAML and command-line flags.

``resolve(file_values, flag_values)`` merges defaults < config file < flags and checks every
key and value; ``build_model(config, input_dim)`` and ``load_data(config)`` turn it into
objects. A part (``prior``, ``posterior``, ``likelihood``, ``guide``…) is a name or a mapping
``{name: ..., option: value}``, exactly as :mod:`pyrovae.parts` takes it.
"""

import inspect
import math
import re
from collections.abc import Hashable
from pathlib import Path

import yaml

from . import budget, checks
from . import data as data_module
from .infer.objectives import OBJECTIVES, check_objective
from .infer.run_folder import config_text, write_atomically
from .models import models
from .parts import decoders, encoders, likelihoods, posteriors, priors
from .parts.network import ACTIVATIONS

MODEL_KEYS = (
    "latent_dim",
    "sphere_dim",
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
    "aux_loss_multiplier",
)
DEFAULTS = {
    "model": "vae",
    "dataset": "digits",
    "data_root": None,
    "binarize": None,
    "condition_on": None,
    "num_labels": None,
    "input_dim": None,
    **dict.fromkeys(MODEL_KEYS),
    "epochs": 100,
    "batch_size": 100,
    "lr": 1e-3,
    "seed": 0,
    "warmup_epochs": 0,
    "patience": None,
    "num_particles": 1,
    "elbo": "trace",
    "alpha": None,
    "beta": 1.0,
    "score_test": "end",
    "num_samples": 1000,
    "out": "runs/default",
}
DEFAULT_LATENT_DIM = 2
LABEL_MODELS = ("cvae", "ssvae")  # the models that learn from labels
PART_REGISTRIES = {
    "prior": priors,
    "posterior": posteriors,
    "likelihood": likelihoods,
    "encoder": encoders,
    "decoder": decoders,
}


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1) with two changes users expect:

    * numbers in exponent notation without a dot (``1e-3``, ``5E4``) are numbers, as in YAML
      1.2 and JSON, not text;
    * a mapping that holds a key twice is refused (:class:`DuplicateKeyError`) instead of the
      last value silently winning.
    """


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key, first, second):
        super().__init__(f"key {key!r} appears twice (lines {first} and {second}); keep one")


_EXPONENT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT, list("-+0123456789."))


def _mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    lines = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue  # construct_mapping refuses it below
        if key in lines:
            raise DuplicateKeyError(key, lines[key], key_node.start_mark.line + 1)
        lines[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


Loader.add_constructor("tag:yaml.org,2002:map", _mapping)


def load_yaml(text, what):
    """The value in YAML ``text`` (read by :class:`Loader`); ``ValueError`` naming ``what`` (e.g.
    ``config file run.yaml``) and the line when it is not valid YAML or repeats a key."""
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 (Loader is a SafeLoader)
    except DuplicateKeyError as err:
        raise ValueError(f"{what}: {err}") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(f"{what} is not valid YAML{at}") from None


def read_file(path):
    """The mapping in a YAML (or JSON) config file; ``-`` in keys becomes ``_``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(
            f"config file {path} is not text; write one 'key: value' per line"
        ) from None
    try:
        values = load_yaml(text, f"config file {path}")
    except ValueError as err:
        raise ValueError(f"{err}; write one 'key: value' per line") from None
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
    _labels(config)
    _check(config)
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


RESUMABLE = ("epochs", "num_samples", "data_root", "out")
"""Keys a resumed run may change: the number of epochs (to train on), the evaluation's sample
count and where the data and the run are found. Any other change would make the result differ
from that of an uninterrupted run."""


def resume(stored, file_values=None, flag_values=None, epochs_done=0):
    """The config of a resumed run: the run's ``stored`` config < config file < flags.

    Without ``epochs`` among the new values the run continues to its own target.

    :raises ValueError: naming every option that differs from the run's (only the keys in
        :data:`RESUMABLE` may), or when ``epochs`` is below the ``epochs_done`` already trained.
    """
    stored = resolve(stored)
    config = resolve({**stored, **(file_values or {})}, flag_values)
    changed = [k for k in config if k not in RESUMABLE and config[k] != stored[k]]
    if changed:
        what = ", ".join(f"{k} {config[k]!r} (the run's: {stored[k]!r})" for k in changed)
        raise ValueError(
            f"--resume would change {what}: the result would differ from the uninterrupted "
            "run's; resume with the run's options (only --epochs may change) or train into a "
            "new --out folder"
        )
    if config["epochs"] < epochs_done:
        raise ValueError(
            f"epochs {config['epochs']} is below the {epochs_done} epochs this run has already "
            f"trained; resume with --epochs {epochs_done} or more"
        )
    return config


def _labels(config):
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


def _part_name(spec):
    return spec.get("name") if isinstance(spec, dict) else spec


def _check(config):
    checks.training_options(config)
    if not isinstance(config["elbo"], str):
        raise ValueError(f"elbo must be one of {', '.join(OBJECTIVES)}, got {config['elbo']!r}")
    check_objective(config["elbo"], config["alpha"])
    for key in ("latent_dim", "sphere_dim", "num_components", "num_samples"):
        checks.positive_int(key, config[key], optional=True)
    if config["reg_covar"] is not None:
        checks.nonnegative_real("reg_covar", config["reg_covar"])
    if config["pretrain_epochs"] is not None:
        checks.nonnegative_int("pretrain_epochs", config["pretrain_epochs"])
    for key in ("model", "dataset", "out", "data_root", "activation", "covariance"):
        value = config[key]
        if value is not None and not (isinstance(value, str | Path) and str(value).strip()):
            raise ValueError(f"{key} must be a name or path (text), got {value!r}")
    if config["dataset"] not in data_module.DATASETS:
        raise ValueError(
            f"unknown dataset {config['dataset']!r}; known datasets: "
            f"{', '.join(data_module.DATASETS)}"
        )
    checks.one_of("binarize", config["binarize"], (None, *data_module.BINARIZE))
    checks.one_of("score_test", config["score_test"], ("end", "epoch", "never"))
    if config["input_dim"] is not None:  # written by fit: the model's D (or image shape)
        dims = config["input_dim"]
        checks.sizes("input_dim", dims if isinstance(dims, list | tuple) else [dims])
    checks.one_of("activation", config["activation"], (None, *ACTIVATIONS))
    if config["hidden"] is not None:
        checks.sizes("hidden", config["hidden"])
    for key, registry in PART_REGISTRIES.items():
        _check_part(key, config[key], registry)
    _check_part("guide", config["guide"], None)
    model_class = models[config["model"]]  # raises with the known names
    accepted = inspect.signature(model_class).parameters
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
    data = data_module.load(config["dataset"], config["data_root"], config["binarize"])
    if config["num_labels"] is not None:
        data = data_module.keep_labels(data, config["num_labels"], config["seed"])
    return data


def build_model(config, input_dim):
    """The model named by ``config["model"]`` with the model options that are set.

    ``input_dim`` is D or the data's ``input_shape`` (``(C, H, W)`` for images): models that
    take image shapes (``accepts_image_shape``, e.g. the VAE's conv networks) get the shape,
    others D. ``None``: the config's own ``input_dim`` (a saved run's). A model that training could
    not hold in memory is refused first (:func:`pyrovae.budget.check_model`).
    """
    input_dim = config["input_dim"] if input_dim is None else input_dim
    options = {k: config[k] for k in MODEL_KEYS if config[k] is not None}
    shape = tuple(input_dim) if isinstance(input_dim, tuple | list) else (input_dim,)
    if not getattr(models[config["model"]], "accepts_image_shape", False):
        input_dim = math.prod(shape)
    context = {"input_dim": input_dim}
    if "latent_dim" not in options and "sphere_dim" not in options:
        context["latent_dim"] = DEFAULT_LATENT_DIM
    spec = {"name": config["model"], **options}
    budget.check_model(lambda: models.build(spec, **context))  # before allocating anything
    return models.build(spec, **context)


def write(config, path):
    """Write ``config`` to the YAML file ``path`` atomically (temporary file + rename)."""
    write_atomically(path, config_text(config))
