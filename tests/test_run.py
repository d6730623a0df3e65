"""Run folders: config.yaml with every value used, pyrovae.load for runs of every model type
written by fit and by the CLI, devices."""

import json

import pyro
import pytest
import torch
import yaml

import pyrovae
from pyrovae import cli
from pyrovae.infer.device import resolve
from pyrovae.models import GaussianMixture, MixtureOfLinearDecoders

MODELS = {
    "vae": lambda: pyrovae.VAE(64, 2, hidden=(16,)),
    "svae": lambda: pyrovae.VAE(
        64, 3, prior="hyperspherical_uniform", posterior="von_mises_fisher", hidden=(16,)
    ),
    "mixture_vae": lambda: pyrovae.VAE(
        64, 2, prior={"name": "mixture", "num_components": 3}, pretrain_epochs=2
    ),
    "gmm": lambda: GaussianMixture(3, 64, covariance="full"),
    "llgae": lambda: MixtureOfLinearDecoders(3, 64, 2, guide="exact"),
}


def _nulls(value):
    if isinstance(value, dict):
        return any(_nulls(v) for v in value.values())
    if isinstance(value, list):
        return any(_nulls(v) for v in value)
    return value is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_load_rebuilds_every_model_type_written_by_fit(name, digits, tmp_path):
    model = MODELS[name]()
    pyrovae.fit(model, digits.train.x[:200], epochs=1, batch_size=100, out=tmp_path, progress=False)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert not _nulls(config) and config["input_dim"] == 64 and config["epochs"] == 1
    loaded = pyrovae.load(tmp_path)
    assert type(loaded) is type(model)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.sample(16).shape == (16, 64)
    assert pyrovae.load_config(tmp_path) == config


def test_the_config_holds_the_values_used_not_the_defaults_left_unset(tmp_path):
    model = pyrovae.VAE(64, 4)  # hidden, activation, parts: the defaults, written out
    pyrovae.fit(model, torch.rand(20, 64).round(), epochs=1, out=tmp_path, progress=False)
    config = pyrovae.load_config(tmp_path)
    assert config["hidden"] == [256, 128] and config["activation"] == "relu"
    assert config["prior"] == "normal" and config["score_test"] == "end"
    assert "patience" not in config  # unset (no early stopping): left out, not null


def test_a_users_model_gets_a_warning_and_no_config(digits, tmp_path, capsys):
    class Mine(pyrovae.VAE):
        pass

    with pytest.warns(UserWarning, match="config.yaml not written: Mine is not one of"):
        pyrovae.fit(
            Mine(64, 2, hidden=(8,)), digits.train.x[:50], epochs=1, out=tmp_path, progress=False
        )
    assert not (tmp_path / "config.yaml").exists()
    how = r"a class of your own: no config.yaml\); build the model in Python and load it with "
    how += r"model.load_state_dict\(torch.load\("
    with pytest.raises(ValueError, match=how):
        pyrovae.load(tmp_path)
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "load_state_dict" in capsys.readouterr().err  # not "holds no trained run"
    mine = Mine(64, 2, hidden=(8,))
    mine.load_state_dict(torch.load(tmp_path / "checkpoint.pt")["model"])  # what it says works
    with pytest.raises(FileNotFoundError, match="holds no trained run"):
        pyrovae.load(tmp_path / "nothing")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["--model", "vae", "--hidden", "16"],
        [
            "--model",
            "vae",
            "--prior",
            "hyperspherical_uniform",
            "--posterior",
            "von_mises_fisher",
            "--latent-dim",
            "3",
            "--hidden",
            "16",
        ],
        ["--model", "gmm", "--num-components", "3"],
        ["--model", "llgae", "--num-components", "2", "--guide", "exact"],
    ],
    ids=["vae", "svae", "gmm", "llgae"],
)
def test_load_rebuilds_runs_written_by_the_cli(args, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--epochs", "1", "--quiet", "--num-samples", "2", "--out", str(out)]
    assert cli.main([*base, *args]) == 0
    config = pyrovae.load_config(out)
    assert not _nulls(config) and config["dataset"] == "digits"
    assert config["input_dim"] in (64, [1, 8, 8])  # a VAE keeps the image shape
    assert pyrovae.load(out).sample(16).shape == (16, 64)
    # a saved config is a valid --config file: the same run again
    assert (
        cli.main(
            ["train", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "b"), "--quiet"]
        )
        == 0
    )
    assert pyrovae.load_config(tmp_path / "b") == {**config, "out": str(tmp_path / "b")}
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--batch-size", "10", "--device", "cpu"]) == 0
    assert '"log_likelihood"' in capsys.readouterr().out


@pytest.mark.slow
def test_the_cli_trains_a_vae_with_an_autoguide_full_batch(tmp_path, capsys):
    out = tmp_path / "auto"
    argv = ["train", "--guide", "auto_normal", "--batch-size", "1150", "--epochs", "2"]
    assert cli.main([*argv, "--hidden", "16", "--quiet", "--out", str(out)]) == 0
    history = json.loads((out / "metrics.json").read_text())
    assert history["valid_elbo"] == [None, None] and history["test_elbo"] == [None, None]
    assert sorted(p.name for p in out.glob("*.png")) == ["learning_curves.png", "samples.png"]
    assert pyrovae.load(out).sample(16).shape == (16, 64)
    assert cli.main(["evaluate", str(out)]) == 2
    assert "is not amortised" in capsys.readouterr().err


@pytest.mark.parametrize("guide", ["auto_normal", "auto_multivariate_normal"])
def test_load_remakes_the_autoguide_with_its_trained_parameters(guide, digits, tmp_path):
    """The autoguide's parameters live in Pyro's param store, not in the VAE's state: a loaded
    run, in a process whose store is empty, gets them back from the checkpoint."""
    rows = digits.train.x[:150]
    vae = pyrovae.VAE(64, 2, hidden=(16,), guide=guide)
    pyrovae.fit(vae, rows, epochs=3, batch_size=150, out=tmp_path, progress=False)
    trained = {k: v.detach().clone() for k, v in vae.autoguide.named_parameters()}
    means = vae.autoguide.median(rows)["z"].detach().clone()
    pyro.clear_param_store()
    loaded = pyrovae.load(tmp_path)
    assert int(loaded.guide_rows) == 150
    remade = dict(loaded.autoguide.named_parameters())
    assert remade.keys() == trained.keys()
    assert all(torch.equal(remade[k], trained[k]) for k in trained)
    # the posterior means of the training rows are the trained ones, not a fresh start
    assert torch.equal(loaded.autoguide.median(rows)["z"], means)


def test_the_cli_says_it_cannot_evaluate_a_run_trained_on_python_data(tmp_path, capsys):
    pyrovae.fit(
        pyrovae.VAE(64, 2, hidden=(8,)),
        torch.rand(20, 64).round(),
        epochs=1,
        out=tmp_path,
        progress=False,
    )
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "trained by fit on data given in Python" in capsys.readouterr().err


def test_devices_resolve_and_refuse():
    assert resolve("cpu") == torch.device("cpu")
    assert resolve("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device must be one of cpu, cuda, mps, auto"):
        resolve("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
            resolve("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_run_trained_on_the_gpu_loads_on_the_cpu(digits, tmp_path):
    model = pyrovae.VAE(64, 2, hidden=(16,))
    history = pyrovae.fit(model, digits, epochs=2, device="cuda", out=tmp_path, progress=False)
    assert next(model.parameters()).is_cuda and history["test_elbo"][-1] is not None
    loaded = pyrovae.load(tmp_path)
    assert not next(loaded.parameters()).is_cuda
    assert torch.equal(loaded.decoder.net[0].weight, model.decoder.net[0].weight.cpu())
    resumed = pyrovae.VAE(64, 2, hidden=(16,))
    pyrovae.fit(resumed, digits, epochs=3, device="cpu", out=tmp_path, resume=True, progress=False)
    result = pyrovae.evaluate(loaded, digits, num_samples=10, device="cuda")
    assert result["log_likelihood"] < 0


def test_import_pyrovae_leaves_scipy_and_sklearn_unloaded():
    """They are imported where used (clustering scores, k-means), not by ``import pyrovae``."""
    import subprocess
    import sys

    code = "import pyrovae, sys; print(sorted({'scipy', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
