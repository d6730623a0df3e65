"""Property-based: random configs and argument lists are either accepted or refused with the
documented error type, and a refusal writes no file.

Three targets, 1,000 examples each, all in this process: ``config.resolve`` followed by
``config.build_model`` (``ValueError`` only); the CLI's parser (``SystemExit(2)`` only); and
``pyrovae.cli.main`` for ``train`` up to the moment training would start (exit code 2 with
one line on stderr, or acceptance, and the out folder's parent unchanged either way).
"""

import math
import string

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pyrovae import cli
from pyrovae.models import models
from pyrovae.parts import decoders, encoders, likelihoods, posteriors, priors
from pyrovae.runs import config as cfg

pytestmark = pytest.mark.slow
EXAMPLES = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SIZES = st.sampled_from([0, 1, 2, 3, 5, 16, -1, 10**8, 2**63]) | st.integers(-3, 40)
REALS = st.sampled_from([0.0, -1.0, 1e-3, 0.5, 1000.0, math.inf, -math.inf, math.nan]) | st.floats()
NAMES = [*priors.names(), *posteriors.names(), *likelihoods.names(), *encoders.names()]
NAMES += [*models.names(), "learned", "relu", "tanh", "diag", "full", "amortized", "exact"]
NAMES += ["iterative", "dynamic", "static", "none", "digits", "trace", "iwae", "renyi"]
TEXT = st.sampled_from(NAMES) | st.text(string.printable, max_size=6)
SCALAR = SIZES | REALS | TEXT | st.none() | st.booleans()
LIST = st.lists(SIZES | REALS | TEXT, max_size=3)
PART_OPTIONS = [
    "hidden",
    "activation",
    "scale",
    "init_scale",
    "per_pixel",
    "num_components",
    "latent_dim",
    "input_dim",
    "output_dim",
    "concentration",
    "min_scale",
    "link",
    "sampler",
    "channels",
    "kernel_size",
    "steps",
    "step_size",
    "num_flows",
    "bogus",
]
PART = st.fixed_dictionaries(
    {"name": TEXT}, optional={k: SCALAR | LIST for k in PART_OPTIONS}
) | st.sampled_from(NAMES)
VALUE = SCALAR | LIST | PART
PLAUSIBLE = {
    "model": st.sampled_from(models.names()),
    "binarize": st.sampled_from(["none", "static", "dynamic"]),
    "latent_dim": SIZES,
    "hidden": st.lists(SIZES, min_size=1, max_size=2),
    "prior": PART,
    "posterior": PART,
    "likelihood": PART,
    "encoder": PART,
    "decoder": PART,
    "guide": PART,
    "num_components": SIZES,
    "covariance": st.sampled_from(["diag", "full"]),
    "noise": REALS | st.just("learned"),
    "lr": REALS,
    "epochs": SIZES,
}
OPTION_VALUES = {
    "hidden": st.lists(st.sampled_from([1, 4, 16]), max_size=2) | SIZES,
    "activation": st.sampled_from(["relu", "tanh", "swish"]),
    "scale": st.sampled_from(["learned", 0.1, 1e-3, -1, 0]),
    "init_scale": st.sampled_from([0.1, 1000.0, "abc", 0]),
    "per_pixel": st.booleans(),
    "num_components": st.sampled_from([1, 2, 3, 0]),
    "concentration": st.sampled_from(["learned", 5.0, 0]),
    "min_scale": st.sampled_from([0.0, 1e-5, -1.0]),
    "link": st.sampled_from(["exp", "softplus", "x"]),
    "sampler": st.sampled_from(["wood", "inverse_cdf", "x"]),
    "channels": st.lists(st.sampled_from([2, 4, 0]), max_size=2),
    "kernel_size": st.sampled_from([3, 4, 1, -1]),
    "num_flows": st.sampled_from([1, 2, 0]),
    "steps": st.sampled_from([0, 2, -1]),
    "step_size": st.sampled_from([0.01, 0, -1]),
}


def _part(registry):
    names = st.sampled_from(registry.names())
    return names | st.fixed_dictionaries(
        {"name": names}, optional={k: v for k, v in OPTION_VALUES.items()}
    )


GUIDES = st.sampled_from(["amortized", "iterative", "exact", "auto_normal", "auto_delta", "x"])
TRAINING = {
    "elbo": st.sampled_from(["trace", "iwae", "renyi", "meanfield"]),
    "alpha": st.sampled_from([0.5, 0, 1]),
    "beta": st.sampled_from([0.5, 1]),
    "epochs": st.sampled_from([1, 2]),
}
PLAUSIBLE_CONFIG = st.one_of(
    st.fixed_dictionaries(
        {"model": st.just("vae")},
        optional={
            "latent_dim": st.sampled_from([1, 2, 3, 4]),
            "hidden": st.lists(st.sampled_from([1, 4, 16]), min_size=1, max_size=2),
            "activation": st.sampled_from(["relu", "tanh"]),
            "prior": _part(priors),
            "posterior": _part(posteriors),
            "likelihood": _part(likelihoods),
            "encoder": _part(encoders),
            "decoder": _part(decoders),
            "guide": GUIDES,
            **TRAINING,
        },
    ),
    st.fixed_dictionaries(
        {"model": st.just("gmm"), "num_components": st.sampled_from([1, 2, 3])},
        optional={"covariance": st.sampled_from(["diag", "full", "x"]), **TRAINING},
    ),
    st.fixed_dictionaries(
        {"model": st.just("llgae"), "num_components": st.sampled_from([1, 2, 3])},
        optional={
            "latent_dim": st.sampled_from([1, 2, 3, 64]),
            "noise": st.sampled_from([0.1, "learned", 0.0]),
            "guide": GUIDES | st.fixed_dictionaries({"name": GUIDES}, optional=OPTION_VALUES),
            **TRAINING,
        },
    ),
)
WILD_CONFIG = st.fixed_dictionaries(
    {},
    optional={
        k: (PLAUSIBLE[k] | VALUE) if k in PLAUSIBLE else VALUE
        for k in [*cfg.DEFAULTS, "bogus_key"]
        if k not in ("dataset", "data_root", "out")
    },
)
CONFIG = PLAUSIBLE_CONFIG | WILD_CONFIG


@EXAMPLES
@given(values=CONFIG)
def test_resolve_and_build_raise_only_value_errors(values):
    try:
        config = cfg.resolve(values)
        event("resolved")
        cfg.build_model(config, (1, 8, 8))
        event("built")
    except ValueError as err:
        assert str(err) and "\n" not in str(err).strip(), err


def _flag_value():
    numbers = st.sampled_from(["0", "1", "-1", "1e8", "2.5", "nan", "inf", "1e-3", "1e23"])
    inline = st.sampled_from(["{", "{name: normal}x", "{name: mlp, hidden: []}", "[1]", "{}"])
    return numbers | inline | TEXT.map(str)


FLAGS = [
    "--model",
    "--binarize",
    "--latent-dim",
    "--hidden",
    "--activation",
    "--prior",
    "--posterior",
    "--likelihood",
    "--encoder",
    "--decoder",
    "--num-components",
    "--covariance",
    "--noise",
    "--guide",
    "--epochs",
    "--batch-size",
    "--lr",
    "--seed",
    "--warmup-epochs",
    "--patience",
    "--num-particles",
    "--num-samples",
    "--bogus",
]
SMALL_INTS = st.sampled_from(["1", "2", "3", "16"])
GOOD_FLAG_VALUES = {
    "--model": st.sampled_from(["vae", "gmm", "llgae"]),
    "--latent-dim": SMALL_INTS,
    "--hidden": st.sampled_from(["16", "4,4", "8"]),
    "--prior": st.sampled_from(priors.names()),
    "--posterior": st.sampled_from(posteriors.names()),
    "--likelihood": st.sampled_from([*likelihoods.names(), "{name: gaussian, scale: 1e-3}"]),
    "--num-components": SMALL_INTS,
    "--noise": st.sampled_from(["0.1", "learned"]),
    "--epochs": SMALL_INTS,
    "--batch-size": st.sampled_from(["10", "100"]),
    "--lr": st.sampled_from(["1e-3", "0.01"]),
    "--num-particles": st.sampled_from(["1", "2"]),
}


def _pair(flag):
    value = _flag_value()
    return st.tuples(
        st.just(flag), (GOOD_FLAG_VALUES[flag] | value) if flag in GOOD_FLAG_VALUES else value
    )


ARGV = st.lists(st.sampled_from(FLAGS).flatmap(_pair), max_size=5).map(
    lambda pairs: [item for pair in pairs for item in pair]
)


@EXAMPLES
@given(argv=ARGV)
def test_the_parser_accepts_or_exits_with_code_2(argv, capsys):
    try:
        cli.parser().parse_args(["train", *argv])
    except SystemExit as exit:
        assert exit.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err


class Accepted(Exception):
    """Raised instead of training: the run got past every check."""


@pytest.fixture
def stop_before_training(monkeypatch, digits):
    def fit(*args, **kwargs):
        raise Accepted

    monkeypatch.setattr(cli, "fit", fit)
    monkeypatch.setattr(cfg, "load_data", lambda config: digits)


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@EXAMPLES
@given(argv=ARGV)
def test_train_refuses_in_one_line_and_writes_nothing(argv, stop_before_training, tmp_path, capsys):
    before = _files(tmp_path)
    try:
        code = cli.main(["train", "--quiet", "--out", str(tmp_path / "out"), *argv])
    except SystemExit as exit:  # argparse
        code = exit.code
    except Accepted:
        code = 0
    event(f"exit code {code}")
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
    assert _files(tmp_path) == before
