import json
import subprocess
import sys

import pytest
import yaml

from pyrovae import cli
from pyrovae.runs import config

FAST = ["--epochs", "2", "--batch-size", "200", "--hidden", "32", "--quiet"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_evaluate_sample_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", "--out", out, *FAST)
    assert code == 0
    for name in ("config.yaml", "metrics.json", "checkpoint.pt", "samples.png"):
        assert (out / name).is_file(), name
    assert len(json.loads((out / "metrics.json").read_text())["test_elbo"]) == 2
    code, stdout, _ = run(capsys, "evaluate", out, "--num-samples", "20")
    result = json.loads(stdout)
    assert code == 0 and result["log_likelihood"] >= result["elbo"] - 1.0
    assert result["num_samples"] == 20
    code, stdout, _ = run(capsys, "sample", out, "-n", "16", "-o", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_config_file_values_are_used_and_flags_win(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {"latent_dim": 3, "epochs": 1, "activation": "tanh", "hidden": [16], "batch_size": 300}
        )
    )
    out = tmp_path / "run"
    code, _, _ = run(capsys, "train", "--config", path, "--epochs", "2", "--out", out, "--quiet")
    assert code == 0
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert (written["latent_dim"], written["epochs"], written["activation"]) == (3, 2, "tanh")


def test_svae_trains_from_the_cli_by_naming_the_parts(tmp_path, capsys):
    out = tmp_path / "svae"
    code, _, err = run(
        capsys,
        "train",
        "--prior",
        "hyperspherical_uniform",
        "--posterior",
        "{name: von_mises_fisher, concentration: learned}",
        "--latent-dim",
        "3",
        "--out",
        out,
        *FAST,
    )
    assert code == 0, err
    code, stdout, _ = run(capsys, "evaluate", out, "--num-samples", "10")
    assert code == 0 and "log_likelihood" in json.loads(stdout)


def test_help_documents_every_option():
    text = subprocess.run(
        [sys.executable, "-m", "pyrovae", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for key in config.DEFAULTS:
        assert f"--{key.replace('_', '-')}" in text, key


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--batch-size", "-5"], "batch_size must be a positive integer"),
        (["--prior", "laplace"], "unknown prior 'laplace'; known priors"),
        (["--likelihood", "{name: gaussian, scael: 1}"], "unknown option(s) scael"),
        (["--dataset", "cifar"], "unknown dataset 'cifar'"),
        (["--model", "gan"], "unknown model 'gan'"),
        (["--binarize", "maybe"], "binarize must be one of"),
        (["--dataset", "mnist", "--data-root", "{empty}"], "MNIST/raw"),
        (["--config", "{missing}"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(argv, message, tmp_path, capsys, monkeypatch):
    import torchvision

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", lambda self: 1 / 0)
    paths = {"{empty}": str(tmp_path / "empty"), "{missing}": str(tmp_path / "no.yaml")}
    argv = [paths.get(a, a) for a in argv]
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--out", out, *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_config_key_is_named(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("latent_dims: 3\n")
    code, _, err = run(capsys, "train", "--config", path, "--out", tmp_path / "run")
    assert code == 2 and "unknown config key(s) latent_dims" in err


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--out", out, *FAST)[0] == 0
    before = [(out / f).read_bytes() for f in ("checkpoint.pt", "config.yaml")]
    code, _, err = run(capsys, "train", "--out", out, "--latent-dim", "4", *FAST)
    assert code == 2 and "--resume" in err
    assert [(out / f).read_bytes() for f in ("checkpoint.pt", "config.yaml")] == before
