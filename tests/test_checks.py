"""The shared argument checks: what each accepts and refuses, and that every user of a rule
reaches it (the models, the parts, the trainer and the config give the same message)."""

import math

import numpy as np
import pytest
import torch

from pyrovae import checks
from pyrovae.infer.options import Options
from pyrovae.models import VAE, GaussianMixture, MixtureOfLinearDecoders
from pyrovae.runs import config as cfg

CASES = [
    # check, accepted values, refused values, message
    (checks.positive_int, [1, 7, 2**40], [0, -1, 1.0, 2.5, True, "3", None], "a positive integer"),
    (checks.nonnegative_int, [0, 5], [-1, 0.0, False, "0"], "an integer >= 0"),
    (
        checks.positive_real,
        [1e-9, 3, 2.5],
        [0, -1.0, math.inf, math.nan, True, "1e-3"],
        "a positive number",
    ),
    (checks.nonnegative_real, [0, 0.0, 7.5], [-1e-9, math.inf, math.nan, "0"], "a number >= 0"),
    (checks.seed, [0, 2**32 - 1], [-1, 2**32, 1.5, True], r"an integer in \[0, 2\*\*32\)"),
    (
        checks.sizes,
        [[1], (3, 4)],
        [[], [0], [2, 2.0], "16", [math.inf]],
        "a non-empty list of positive integers",
    ),
]


@pytest.mark.parametrize(("check", "good", "bad", "message"), CASES)
def test_checks_accept_good_values_and_name_the_argument_on_bad_ones(check, good, bad, message):
    for value in good:
        assert check("arg", value) == value
    for value in bad:
        with pytest.raises(ValueError, match=rf"^arg must be {message}, got "):
            check("arg", value)


def test_positive_real_accepts_learned_only_when_asked():
    assert checks.positive_real("noise", "learned", learned=True) == "learned"
    with pytest.raises(ValueError, match="positive number, got 'learned'"):
        checks.positive_real("noise", "learned")
    with pytest.raises(ValueError, match="positive number or 'learned', got 'abc'"):
        checks.positive_real("noise", "abc", learned=True)


def test_one_of_lists_the_allowed_names_but_not_none():
    assert checks.one_of("mode", None, (None, "a", "b")) is None
    with pytest.raises(ValueError, match=r"^mode must be one of a, b, got 'c'$"):
        checks.one_of("mode", "c", (None, "a", "b"))


def test_device_dtype_follows_the_first_parameter_else_cpu_and_default_dtype():
    assert checks.device_dtype(torch.nn.Linear(2, 2).double()) == (
        torch.device("cpu"),
        torch.float64,
    )
    assert checks.device_dtype(torch.nn.ReLU()) == (torch.device("cpu"), torch.get_default_dtype())
    assert checks.device_dtype(object()) == (torch.device("cpu"), torch.get_default_dtype())


def test_numpy_integers_are_not_python_ints_and_are_refused():
    with pytest.raises(ValueError, match="positive integer"):
        checks.positive_int("n", np.int64(3))


BAD_SIZES = [
    (lambda: VAE(64, 0), "latent_dim must be a positive integer, got 0"),
    (lambda: VAE(True, 2), "input_dim must be a positive integer or an image shape"),
    (lambda: GaussianMixture(2.0, 4), "num_components must be a positive integer, got 2.0"),
    (lambda: MixtureOfLinearDecoders(2, 8, 0), "latent_dim must be a positive integer, got 0"),
    (lambda: VAE(64, 2, prior={"name": "mixture", "num_components": 0}), "num_components must"),
    (lambda: VAE(64, 2, hidden=[16, math.inf]), "hidden must be a non-empty list"),
    (lambda: VAE(64, 2, hidden=[]), "hidden must be a non-empty list"),
]


@pytest.mark.parametrize(("build", "message"), BAD_SIZES)
def test_models_and_parts_use_the_shared_checks(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", 0, "epochs must be a positive integer, got 0"),
        ("lr", math.nan, "lr must be a positive number, got nan"),
        ("seed", 2**32, r"seed must be an integer in \[0, 2\*\*32\), got 4294967296"),
        ("warmup_epochs", -1, "warmup_epochs must be a number >= 0, got -1"),
        ("patience", 0, "patience must be a positive integer, got 0"),
    ],
)
def test_fit_options_and_config_refuse_alike(key, value, message):
    options = dict(epochs=1, batch_size=1, lr=1e-3, seed=0, elbo=None, num_particles=1)
    options.update(warmup_epochs=0, patience=None, initialize=True)
    options.update(detect_anomaly=False, progress=False)
    with pytest.raises(ValueError, match=f"^{message}$"):
        Options(**{**options, key: value})
    with pytest.raises(ValueError, match=f"^{message}$"):
        cfg.resolve({key: value})


def test_check_matrix_still_importable_from_the_vae_module():
    from pyrovae.models.vae import check_matrix

    assert check_matrix is checks.check_matrix


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def test_config_shape_takes_the_limits_and_refuses_one_beyond():
    assert checks.config_shape("prior", nested(checks.MAX_NESTING)) == nested(checks.MAX_NESTING)
    with pytest.raises(ValueError, match=r"^prior is nested more than 32 levels deep \(at prior"):
        checks.config_shape("prior", nested(checks.MAX_NESTING + 1))
    spec = {"name": "vamp", "options": {"sizes": list(range(checks.MAX_ITEMS))}}
    assert checks.config_shape("prior", spec) is spec
    spec["options"]["sizes"].append(0)
    with pytest.raises(ValueError, match=r"^prior.options.sizes has 10001 entries, more than"):
        checks.config_shape("prior", spec)


def test_config_shape_bounds_the_layers_of_hidden_and_channels_at_any_depth():
    checks.config_shape("hidden", [8] * checks.MAX_LAYERS)
    with pytest.raises(ValueError, match=r"^hidden lists 1001 layers, more than 1000"):
        checks.config_shape("hidden", [8] * (checks.MAX_LAYERS + 1))
    with pytest.raises(ValueError, match=r"^encoder.channels lists 200001 layers"):
        checks.config_shape("encoder", {"name": "conv", "channels": [1] * 200_001})


def test_config_shape_refuses_what_would_overflow_the_stack_or_never_end():
    import yaml

    deep = yaml.safe_load("[" * 300 + "]" * 300)  # within PyYAML's reach, beyond the limit
    with pytest.raises(ValueError, match="nested more than 32 levels"):
        checks.config_shape("config", deep)
    with pytest.raises(ValueError, match="nested more than 32 levels"):
        checks.config_shape("config", nested(100_000))  # Python's recursion would fail here
    loop = yaml.safe_load("&a [*a]")  # a list that holds itself
    assert loop[0] is loop
    with pytest.raises(ValueError, match="nested more than 32 levels"):
        checks.config_shape("config", loop)
    laughs = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
    )  # 10⁹ entries when expanded
    with pytest.raises(ValueError, match=r"more than 1000000 entries in all \(YAML aliases"):
        checks.config_shape("config", yaml.safe_load(laughs))
