"""Config files read as a person means them (YAML 1.2's core schema), equal options equal on
``--resume`` whatever their spelling, and one line with the right exit code for a full disk,
Ctrl-C, a diverging S-VAE and non-finite evaluation scores."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyrovae import cli
from pyrovae.infer import checkpoint as ckpt
from pyrovae.runs import config as cfg
from pyrovae.runs.yaml import load_yaml, read_file

ROOT = Path(__file__).parents[1]
SMALL = ["--quiet", "--hidden", "16", "--latent-dim", "2", "--batch-size", "200"]


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err):
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# YAML 1.2.2, example 10.9 ("Core Tag Resolution"), and YAML 1.1 forms that are text in 1.2
CORE = {
    "null": None,
    "~": None,
    "": None,
    "true": True,
    "True": True,
    "FALSE": False,
    "0": 0,
    "0o7": 7,
    "0x3A": 58,
    "-19": -19,
    "010": 10,
    "0.": 0.0,
    "-0.0": -0.0,
    ".5": 0.5,
    "+12e03": 12000.0,
    "-2E+05": -200000.0,
    "1e-3": 0.001,
    ".inf": math.inf,
    "-.Inf": -math.inf,
    "+.INF": math.inf,
    "1:10": "1:10",
    "yes": "yes",
    "on": "on",
    "0b101": "0b101",
    "1_000": "1_000",
    "2001-12-14": "2001-12-14",
    "=": "=",
}


@pytest.mark.parametrize("text", list(CORE))
def test_plain_scalars_resolve_as_yaml_1_2_core(text):
    value = load_yaml(f"key: {text}", "test")["key"]
    assert value == CORE[text] and type(value) is type(CORE[text])


def test_nan_is_a_float_nan():
    assert math.isnan(load_yaml("key: .NaN", "test")["key"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: 1:10", r"lr must be a positive number, got '1:10'"),
        ("epochs: true", r"epochs must be a positive integer, got True"),
        ("epochs: yes", r"epochs must be a positive integer, got 'yes'"),
    ],
)
def test_numbers_are_not_base_60_nor_booleans(text, message, tmp_path):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        cfg.resolve(read_file(tmp_path / "c.yaml"))


def test_exponent_numbers_in_a_config_are_floats(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 1e-3\nbeta: 5E-1\nepochs: 0x10\n")
    config = cfg.resolve(read_file(tmp_path / "c.yaml"))
    assert (config["lr"], config["beta"], config["epochs"]) == (0.001, 0.5, 16)


@pytest.mark.parametrize("path", ["/dev/null", "{tmp}"])
def test_a_config_that_is_not_a_regular_file_is_named_so(path, tmp_path, capsys):
    argv = ["train", "--config", path.replace("{tmp}", str(tmp_path)), "--out", tmp_path / "o"]
    code, _, err = _main(capsys, *argv)
    assert code == 2 and "is not a regular file" in _one_line(err)
    assert "does not exist" not in err


def test_errors_never_echo_a_stray_file(tmp_path, capsys):
    lines = [f"user{i}:$6$Secret{i}Hash$abcdef:19000:0:99999:7:::" for i in range(5)]
    lines.append("PASSWORD: hunter2-secret")
    (tmp_path / "shadow").write_text("\n".join(lines) + "\n")
    code, _, err = _main(capsys, "train", "--config", tmp_path / "shadow", "--out", tmp_path / "o")
    assert code == 2 and "unknown config key(s) PASSWORD, 5 that are not option names" in err
    assert "Secret" not in err and "hunter2" not in err and "$6$" not in err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    out = tmp_path_factory.mktemp("spelling") / "run"
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    return out


SPELLINGS = [
    ["--prior", "{name: normal}"],
    ["--likelihood", "{name: bernoulli}"],
    ["--encoder", "{name: mlp}", "--decoder", "{name: mlp}"],
    ["--posterior", "{name: normal}"],
    ["--input-dim", "64"],
    ["--input-dim", "8,8"],
    ["--input-dim", "1,8,8"],
]


@pytest.mark.parametrize("flags", SPELLINGS, ids=lambda f: " ".join(f))
def test_equal_options_compare_equal_on_resume(flags, one_epoch, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "checkpoint.pt", "metrics.json"):
        (run / name).write_bytes((one_epoch / name).read_bytes())
    written = (run / "config.yaml").read_bytes()
    code, _, err = _main(capsys, "train", *SMALL, "--resume", "--epochs", "1", "--out", run, *flags)
    assert code == 0, err
    assert (run / "config.yaml").read_bytes() == written  # the run's own spelling


@pytest.mark.parametrize(
    "flags",
    [["--prior", "{name: normal, init_scale: 2}"], ["--input-dim", "2,32"]],
    ids=["prior-option", "input-dim"],
)
def test_a_real_change_is_still_refused_on_resume(flags, one_epoch, tmp_path, capsys):
    code, _, err = _main(
        capsys, "train", *SMALL, "--resume", "--epochs", "1", "--out", one_epoch, *flags
    )
    assert code == 2
    assert "--resume would change" in _one_line(err) or "does not match" in err


def _fill_disk_on(name, after):
    """``os.fdopen`` whose files' writes fail with ENOSPC for temporary files of ``name`` once
    ``after`` of them have been written (Linux: the file's name from /proc/self/fd)."""
    real, seen = os.fdopen, set()

    def fdopen(fd, *args, **kwargs):
        file = real(fd, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}")
        if f".{name}." in target:
            seen.add(target)
            if len(seen) > after:

                def write(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                file.write = write
        return file

    return fdopen


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(os, "fdopen", _fill_disk_on("checkpoint.pt", after=1))
    code, _, err = _main(capsys, "train", *SMALL, "--epochs", "3", "--out", out)
    monkeypatch.undo()
    assert code == 1
    assert "could not write" in _one_line(err) and "No space left on device" in err
    assert ckpt.load(out / "checkpoint.pt")["epoch"] == 1  # whole, and it resumes
    assert not list(out.glob(".*.tmp"))
    code, _, err = _main(capsys, "train", *SMALL, "--epochs", "3", "--resume", "--out", out)
    assert code == 0, err
    assert ckpt.load(out / "checkpoint.pt")["epoch"] == 3


def test_a_failing_serialisation_is_a_write_error(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    code, _, err = _main(capsys, "train", *SMALL, "--epochs", "1", "--out", tmp_path / "r")
    assert code == 1 and "could not write" in _one_line(err)
    assert not (tmp_path / "r").exists()


def test_non_finite_scores_are_refused_not_printed(one_epoch, capsys, monkeypatch):
    monkeypatch.setattr(cli, "evaluate", lambda *a, **k: {"elbo": math.nan, "nmi": 0.5})
    code, out, err = _main(capsys, "evaluate", one_epoch)
    assert code == 1 and out == ""
    assert f"the elbo of {one_epoch} is nan" in _one_line(err)


def test_evaluate_prints_strict_json(one_epoch, capsys):
    code, out, _ = _main(capsys, "evaluate", one_epoch, "--num-samples", "2")
    assert code == 0
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def test_a_diverging_s_vae_is_a_numerical_failure(tmp_path, capsys):
    argv = ["train", "--quiet", "--posterior", "von_mises_fisher", "--prior"]
    argv += ["hyperspherical_uniform", "--sphere-dim", "2", "--lr", "1e5", "--epochs", "3"]
    code, _, err = _main(capsys, *argv, "--out", tmp_path / "r")
    assert code == 1
    assert "training diverged at epoch 1" in _one_line(err)
    assert "a VonMisesFisher got a loc outside its constraint Sphere" in err


def test_ctrl_c_in_a_command_is_one_line(capsys, monkeypatch, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    code, _, err = _main(capsys, "train", "--out", tmp_path / "r")
    assert code == 130 and "interrupted" in _one_line(err)


@pytest.mark.parametrize("after", [1.0])  # 3.0 s can land as cli.main hands over: a race, noted
def test_ctrl_c_while_the_command_starts_is_one_line(after, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "pyrovae", "train", *SMALL, "--out", str(tmp_path / "r")]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in _one_line(err.decode())
    # interrupted before training, no folder is left; during training, the run is left for
    # --resume and its lock released
    assert not (tmp_path / "r" / ".lock").exists()
