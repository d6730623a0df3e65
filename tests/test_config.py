"""Config resolution, property-based: valid configs resolve (and survive YAML), invalid ones
raise a ValueError naming the key."""

import math
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrovae.data import BINARIZE, DATASETS
from pyrovae.models import models
from pyrovae.parts import decoders, encoders, likelihoods, posteriors, priors
from pyrovae.parts.network import ACTIVATIONS
from pyrovae.runs import config as cfg

POSITIVE_INTS = ("latent_dim", "epochs", "batch_size", "num_particles", "num_samples", "patience")
texts = st.text(min_size=1, max_size=12).filter(str.strip)

VALID = {
    "model": st.just("vae"),
    "dataset": st.sampled_from(DATASETS),
    "data_root": texts,
    "binarize": st.sampled_from(BINARIZE),
    "hidden": st.lists(st.integers(1, 1024), min_size=1, max_size=4),
    "activation": st.sampled_from(sorted(ACTIVATIONS)),
    "prior": st.sampled_from(["normal", {"name": "normal"}]),
    "posterior": st.sampled_from(["normal", {"name": "normal", "min_scale": 1e-4}]),
    "likelihood": st.sampled_from(["bernoulli", "gaussian", {"name": "gaussian", "scale": 0.5}]),
    "encoder": st.just("mlp"),
    "decoder": st.just({"name": "mlp"}),
    "lr": st.floats(1e-8, 10.0),
    "seed": st.integers(0, 2**32 - 1),
    "warmup_epochs": st.floats(0, 1e3) | st.integers(0, 1000),
    "out": texts,
    **dict.fromkeys(POSITIVE_INTS, st.integers(1, 10**6)),
}

not_numbers = st.text(max_size=5) | st.booleans() | st.lists(st.integers(), max_size=2)
not_names = st.integers() | st.booleans() | st.lists(st.text(), max_size=2)
non_positive = st.integers(max_value=0) | st.floats(allow_nan=True).filter(
    lambda v: v != int(v) if math.isfinite(v) else True
)

INVALID = {
    "model": texts.filter(lambda t: t not in models) | not_names,
    "dataset": texts.filter(lambda t: t not in DATASETS) | not_names,
    "data_root": not_names | st.just("  "),
    "binarize": texts.filter(lambda t: t not in BINARIZE) | st.integers(),
    "hidden": st.just([])
    | st.lists(st.integers(max_value=0), min_size=1, max_size=3)
    | not_names.filter(lambda v: not isinstance(v, list))
    | st.lists(st.floats(0.5, 9.5), min_size=1, max_size=2),
    "activation": texts.filter(lambda t: t not in ACTIVATIONS) | st.integers(),
    "prior": texts.filter(lambda t: t not in priors) | st.integers() | st.just({"scale": 1}),
    "posterior": texts.filter(lambda t: t not in posteriors) | st.integers(),
    "likelihood": texts.filter(lambda t: t not in likelihoods) | st.integers(),
    "encoder": texts.filter(lambda t: t not in encoders) | st.integers(),
    "decoder": texts.filter(lambda t: t not in decoders) | st.just({"name": 3}),
    "lr": st.floats(max_value=0) | st.just(math.inf) | st.just(math.nan) | not_numbers,
    "seed": st.integers(max_value=-1)
    | st.integers(min_value=2**32)
    | st.floats(0.5, 9.5)
    | not_numbers,
    "warmup_epochs": st.floats(max_value=-1e-9)
    | st.just(math.inf)
    | st.just(math.nan)
    | not_numbers,
    "out": not_names | st.just(""),
    "num_components": st.integers(1, 10),  # not an option of the VAE
    "covariance": st.integers(),
    "guide": st.integers(),
    "noise": st.floats(0.1, 1.0),  # not an option of the VAE
    **dict.fromkeys(POSITIVE_INTS, non_positive | not_numbers),
}


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({}, optional=VALID))
def test_valid_configs_resolve_and_survive_yaml(values):
    config = cfg.resolve(values)
    assert set(config) == set(cfg.DEFAULTS)
    assert all(config[k] == v for k, v in values.items())
    assert config["binarize"] in BINARIZE
    assert cfg.resolve(yaml.safe_load(yaml.safe_dump(config))) == config


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional=VALID), st.data())
def test_an_invalid_value_gives_a_value_error_naming_its_key(values, data):
    key = data.draw(st.sampled_from(sorted(INVALID)))
    bad = data.draw(INVALID[key])
    with pytest.raises(ValueError, match=re.escape(key)):
        cfg.resolve({**values, key: bad})


@settings(max_examples=50, deadline=None)
@given(texts.filter(lambda t: t.replace("-", "_") not in cfg.DEFAULTS))
def test_an_unknown_key_is_named(key):
    with pytest.raises(ValueError, match="unknown config key"):
        cfg.resolve({key: 1})


def test_flags_override_the_file():
    config = cfg.resolve({"epochs": 5, "lr": 0.1}, {"epochs": 7, "lr": None})
    assert (config["epochs"], config["lr"]) == (7, 0.1)
