"""The run layer: one schema for the options, one build of the model per ``pyrovae train``, one
read of each run-folder file per command, the model contract, and the Pyro APIs it leans on."""

import argparse
import dataclasses
import inspect
import json

import pyro
import pytest
import torch

import pyrovae
from pyrovae import cli, schema
from pyrovae.infer.options import Options
from pyrovae.models import contract, models
from pyrovae.runs import config as cfg
from pyrovae.runs.options import SECTIONS

SMALL = ["--quiet", "--hidden", "16", "--batch-size", "200", "--num-samples", "2"]


def _count(monkeypatch):
    """Count the real (not ``meta``) model builds and the checkpoint reads."""
    counts = {"builds": 0, "reads": 0}
    build, load = models.build, torch.load

    def counted_build(spec, **context):
        counts["builds"] += torch.empty(1 << 13).device.type != "meta"  # MetaBuild: big ones
        return build(spec, **context)

    def counted_load(*args, **kwargs):
        counts["reads"] += 1
        return load(*args, **kwargs)

    monkeypatch.setattr(models, "build", counted_build)
    monkeypatch.setattr(torch, "load", counted_load)
    return counts


def test_train_builds_once_and_evaluate_and_resume_read_the_checkpoint_once(
    tmp_path, monkeypatch, capsys
):
    out = str(tmp_path / "run")
    counts = _count(monkeypatch)
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", out]) == 0
    assert counts == {"builds": 1, "reads": 0}
    counts.update(builds=0)
    assert cli.main(["evaluate", out, "--num-samples", "2"]) == 0
    assert counts == {"builds": 1, "reads": 1}
    counts.update(builds=0, reads=0)
    assert cli.main(["train", *SMALL, "--resume", "--epochs", "2", "--out", out]) == 0
    assert counts == {"builds": 1, "reads": 1}
    counts.update(builds=0, reads=0)
    pyrovae.load(out)
    assert counts == {"builds": 1, "reads": 1}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epoch"] == [1, 2]


def test_one_default_per_option_the_same_in_python_in_a_config_and_on_the_command_line():
    o = Options()
    assert (o.epochs, o.batch_size) == (100, 100)
    config = cfg.resolve()
    flags = vars(cli.parser().parse_args(["train"]))
    for section in SECTIONS:
        for f in dataclasses.fields(section):
            if f.metadata["key"]:  # a config key: its default is the schema's
                assert config[f.name] == f.default or f.name == "binarize", f.name
            if f.metadata["flag"] and f.metadata["parse"] is not bool:
                assert flags[f.name] is None, f.name  # unset: the file or the default decides
    assert set(cfg.DEFAULTS) == set(schema.keys(*SECTIONS))


def test_a_new_option_is_one_entry_in_the_schema():
    """An option added as one field gets its check, its config key and its flag."""

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class More:
        width: int = schema.option(3, "a width", pyrovae.checks.positive_int, schema.integer)

    parser = argparse.ArgumentParser()
    schema.add_flags(parser, More)
    assert parser.parse_args(["--width", "1e1"]).width == 10
    assert schema.defaults(More) == {"width": 3} and schema.keys(More) == ("width",)
    with pytest.raises(ValueError, match="^width must be a positive integer, got 0$"):
        schema.check(More(width=0))


def test_early_stopping_says_why_and_which_epoch_it_restored(digits, tmp_path, capsys):
    torch.manual_seed(0)
    vae = pyrovae.VAE(64, 2, hidden=(8,))
    history = pyrovae.fit(
        vae, digits, epochs=30, patience=1, lr=0.05, batch_size=50, out=tmp_path, score_test="never"
    )
    printed = capsys.readouterr().err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    last, valid = history["epoch"][-1], history["valid_elbo"]
    best = history["epoch"][max(range(len(valid)), key=valid.__getitem__)]
    assert last < 30 and best == last - 1  # stopped: one epoch without improvement
    assert metrics["best_epoch"] == best
    assert metrics["stopped_because"].startswith("early stopping: the validation ELBO did not")
    assert f"stopped at epoch {last}: early stopping" in printed
    assert f"restored the parameters of the best epoch, {best}" in printed


def test_the_log_line_labels_the_beta_weighted_elbo_of_a_warm_up(digits, capsys):
    pyrovae.fit(pyrovae.VAE(64, 2, hidden=(8,)), digits, epochs=2, warmup_epochs=2)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch")]
    assert "train β-weighted elbo (β 0.5)" in lines[0] and "train elbo" in lines[1]


class Pair:
    """A user's model/guide object with nothing but ``model`` and ``guide``."""

    def __init__(self):
        self.loc = torch.nn.Parameter(torch.zeros(4))

    def model(self, x):
        loc = pyro.param("pair_loc", torch.zeros(4))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", pyro.distributions.Normal(0.0, 1.0).expand([4]).to_event(1))
            pyro.sample("x", pyro.distributions.Normal(z + loc, 1.0).to_event(1), obs=x)

    def guide(self, x):
        scale = pyro.param(
            "pair_scale", torch.ones(4), constraint=torch.distributions.constraints.positive
        )
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pyro.distributions.Normal(x / 2, scale).to_event(1))


def test_a_model_guide_pair_alone_meets_the_contract_and_trains_scores_and_draws(tmp_path):
    pair, x = Pair(), torch.randn(40, 4)
    assert isinstance(pair, contract.LatentVariableModel)
    for protocol in (contract.ChecksData, contract.Samples, contract.Clusters, contract.Pictures):
        assert not isinstance(pair, protocol)
    assert contract.amortized(pair) and not contract.uses_labels(pair)
    history = pyrovae.fit(pair, x, epochs=2, batch_size=20, progress=False)
    data = pyrovae.data.from_arrays(x)
    assert set(pyrovae.evaluate(pair, data, num_samples=3)) >= {"elbo", "log_likelihood"}
    from pyrovae.plots import save_all

    assert [p.name for p in save_all(pair, data, history, tmp_path)] == ["learning_curves.png"]


def test_a_vae_offers_its_capabilities_through_the_contract():
    vae, mixture = pyrovae.VAE(6, 2), pyrovae.VAE(6, 2, prior="mixture")
    for protocol in (
        contract.Samples,
        contract.Reconstructs,
        contract.Encodes,
        contract.ChecksData,
    ):
        assert isinstance(vae, protocol)
    assert not contract.has_clusters(vae) and contract.has_clusters(mixture)
    assert contract.pictures(mixture) == ("mixture_components",)
    assert contract.latent_on_reals(vae)
    assert contract.has_enumerated_sites(mixture) and not contract.has_enumerated_sites(vae)
    assert isinstance(pyrovae.GaussianMixture(2, 3), contract.Initializes)


def test_the_label_models_build_their_networks_once_with_the_vaes_construction():
    torch.manual_seed(0)
    cvae = pyrovae.ConditionalVAE(6, 2, num_classes=3, hidden=(5,))
    torch.manual_seed(0)
    vae = pyrovae.VAE(9, 2, hidden=(5,))  # 6 + 3 label inputs
    encoder = {k: v.shape for k, v in cvae.encoder.state_dict().items()}
    assert encoder == {k: v.shape for k, v in vae.encoder.state_dict().items()}
    assert cvae.decoder.net[0].in_features == 2 + 3
    options = cvae.build_options  # given, its own defaults and the VAE's it passes them to
    assert {k: options[k] for k in ("input_dim", "num_classes", "name", "hidden")} == {
        "input_dim": 6, "num_classes": 3, "name": "cvae", "hidden": (5,)
    }  # fmt: skip
    assert options["prior"] == "normal" and options["activation"] == "relu"
    with pytest.raises(ValueError, match="ConditionalVAE's guide is its label-conditioned"):
        pyrovae.ConditionalVAE(6, 2, guide="auto_normal")
    ssvae = pyrovae.SemiSupervisedVAE(6, 2, num_classes=3)
    assert ssvae.build_options["hidden"] == (500,) and ssvae.build_options["name"] == "ssvae"
    with pytest.raises(ValueError, match="^num_classes must be an integer >= 2, got 1$"):
        pyrovae.ConditionalVAE(6, 2, num_classes=1)


PRIVATE_PYRO = {
    (pyro.infer.ELBO, "_get_traces"): ["self", "model", "guide", "args", "kwargs"],
    (pyro.infer.Trace_ELBO, "_get_trace"): ["self", "model", "guide", "args", "kwargs"],
    (pyro.infer.Trace_ELBO, "_differentiable_loss_particle"): [
        "self",
        "model_trace",
        "guide_trace",
    ],
}


@pytest.mark.parametrize(("owner", "name"), list(PRIVATE_PYRO))
def test_the_private_pyro_apis_pyrovae_overrides_are_still_there(owner, name):
    """pyrovae.infer.elbo and .objectives override or call these private Pyro methods; if this
    fails, Pyro changed them: fix those modules before raising the bound pyro-ppl<1.10."""
    method = getattr(owner, name, None)
    assert method is not None, f"pyro {pyro.__version__}: {owner.__name__}.{name} is gone"
    params = list(inspect.signature(method).parameters)
    assert params == PRIVATE_PYRO[owner, name], (
        f"pyro {pyro.__version__} changed the signature of {owner.__name__}.{name}: {params}"
    )
