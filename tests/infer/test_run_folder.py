"""A run folder is owned by one process, its config.yaml never describes another checkpoint, and
``--resume`` continues the same run or refuses."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import yaml

import pyrovae
from pyrovae import cli
from pyrovae.models import VAE
from pyrovae.runs import RunFolder, folder, lock

SMALL = ["--quiet", "--hidden", "16", "--batch-size", "200"]
HOLDER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("lock", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
with module.owned(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _hold(folder):
    """Another process that owns ``folder`` until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, lock.__file__, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_folder_owned_by_a_live_process_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    holder = _hold(out)
    try:
        lock = json.loads((out / ".lock").read_text())
        assert lock["pid"] == holder.pid
        before = _files(tmp_path)
        assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by process {holder.pid} on " in err
        assert len(err.strip().splitlines()) == 1
        assert _files(tmp_path) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / ".lock").exists()  # a killed owner leaves its lock file: stale
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    assert not (out / ".lock").exists()
    assert {"checkpoint.pt", "config.yaml", "metrics.json"} <= set(os.listdir(out))


def test_a_run_folder_holds_its_lock_till_released_as_often_and_a_refusal_leaves_no_folder(
    tmp_path,
):
    out = tmp_path / "a" / "b"
    run = RunFolder(out)
    with pytest.raises(ValueError, match="boom"), run:
        with run:
            assert (out / ".lock").is_file()
        assert (out / ".lock").is_file()  # the inner block does not release the outer's lock
        with pytest.raises(ValueError, match=f"{out} is in use by process {os.getpid()}"):
            RunFolder(out).acquire()  # another owner, even in this process, is refused
        raise ValueError("boom")
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_two_trainings_into_one_folder_one_refused_and_the_folder_consistent(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "pyrovae", "train", *SMALL, "--epochs", "3", "--out", str(out)]
    procs = [
        subprocess.Popen([*argv, "--seed", str(s)], env=env, stderr=subprocess.PIPE, text=True)
        for s in (1, 2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    if codes == [0, 0]:  # one ran after the other had finished: then it must have been refused
        pytest.skip("the two runs did not overlap on this machine")
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    # the lock's refusal names the owner's pid, or "another process" when the owner holds the
    # lock but has not written its pid yet
    assert "is in use by" in refused or "checkpoint.pt exists" in refused
    config = yaml.safe_load((out / "config.yaml").read_text())
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["config"] == config  # the config beside the checkpoint is the checkpoint's


def _stop_at_save(monkeypatch, number):
    """Interrupt the run (as Ctrl-C would) at its ``number``-th checkpoint, before writing it."""
    save, calls = RunFolder.save, []

    def interrupted(self, state):
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt
        return save(self, state)

    monkeypatch.setattr(RunFolder, "save", interrupted)


def test_resume_without_epochs_continues_to_the_runs_target_bit_identically(
    tmp_path, monkeypatch, capsys
):
    flags = [*SMALL, "--epochs", "3", "--lr", "0.01", "--seed", "5"]
    assert cli.main(["train", *flags, "--out", str(tmp_path / "whole")]) == 0
    with monkeypatch.context() as m:
        _stop_at_save(m, 2)
        assert cli.main(["train", *flags, "--out", str(tmp_path / "cut")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert cli.main(["train", "--quiet", "--resume", "--out", str(tmp_path / "cut")]) == 0
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert cut["epoch"] == whole["epoch"] == 3
    for name, value in whole["model"].items():
        assert torch.equal(value, cut["model"][name]), name
    config = yaml.safe_load((tmp_path / "cut" / "config.yaml").read_text())
    assert config["epochs"] == 3 and config["lr"] == 0.01


def test_resume_may_extend_epochs(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    assert cli.main(["train", "--quiet", "--resume", "--epochs", "2", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["epoch"] == [1, 2]
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 2


def test_an_overwrite_stopped_before_its_first_checkpoint_keeps_the_old_pair(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    old = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "config.yaml")}
    _stop_at_save(monkeypatch, 1)
    argv = ["train", *SMALL, "--epochs", "2", "--latent-dim", "3", "--overwrite", "--out", str(out)]
    assert cli.main(argv) == 130
    assert {name: (out / name).read_bytes() for name in old} == old
    assert cli.main(["evaluate", str(out), "--num-samples", "2"]) == 0


def test_a_kill_between_checkpoint_and_config_leaves_no_mismatching_config(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0

    def killed(self, text):
        raise KeyboardInterrupt  # after the checkpoint's rename, before config.yaml's

    monkeypatch.setattr(RunFolder, "write_config", killed)
    argv = ["train", *SMALL, "--epochs", "1", "--latent-dim", "3", "--overwrite", "--out", str(out)]
    assert cli.main(argv) == 130
    assert not (out / "config.yaml").exists()  # the old one was removed before the rename
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--num-samples", "2"]) == 0  # config from the ckpt
    assert json.loads(capsys.readouterr().out)["num_samples"] == 2
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["config"]["latent_dim"] == 3


def test_config_is_written_atomically_and_refusals_write_nothing(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert cli.main(["train", *SMALL, "--epochs", "1", "--lr", "-1", "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
    folder.write_atomically(tmp_path / "c.yaml", "a: 1\n")
    assert (tmp_path / "c.yaml").read_text() == "a: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.slow
def test_fit_owns_its_out_folder_too(tmp_path, digits):
    out = tmp_path / "run"
    holder = _hold(out)
    try:
        with pytest.raises(ValueError, match=f"is in use by process {holder.pid}"):
            pyrovae.fit(VAE(64, 2, hidden=(16,)), digits, epochs=1, out=out, progress=False)
        assert sorted(os.listdir(out)) == [".lock"]  # the holder's; fit wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    pyrovae.fit(VAE(64, 2, hidden=(16,)), digits, epochs=1, out=out, progress=False)
    assert not (out / ".lock").exists()
