"""Crash safety: a run killed with SIGKILL resumes from its last checkpoint and ends exactly
where an uninterrupted run ends."""

import json

import pytest
import torch

import pyrovae
from pyrovae import cli
from pyrovae.infer import checkpoint as ckpt
from pyrovae.models import VAE

ARGS = ["train", "--dataset", "digits", "--quiet", "--hidden", "128,64", "--batch-size", "10"]
ARGS += ["--epochs", "4", "--warmup-epochs", "2"]  # 115 steps of 10 rows per epoch


def _metrics(out):
    history = json.loads((out / "metrics.json").read_text())
    history.pop("seconds")
    return history


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(
    tmp_path, killed_after_first_checkpoint
):
    out = tmp_path / "killed"
    killed_after_first_checkpoint(["-m", "pyrovae", *ARGS, "--out", str(out)], out)
    # the same command, uninterrupted, and the resumption of the killed run (in this process:
    # the same code path, and one thread as in the subprocess)
    assert cli.main([*ARGS, "--out", str(tmp_path / "whole")]) == 0
    assert cli.main([*ARGS, "--out", str(out), "--resume"]) == 0
    assert _metrics(out) == _metrics(tmp_path / "whole")
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_save_killed_before_its_rename_leaves_the_old_checkpoint_whole(digits, tmp_path):
    model = VAE(64, 2, hidden=(32,))
    pyrovae.fit(model, digits, epochs=1, progress=False, out=tmp_path)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    # what SIGKILL during torch.save leaves: a partial temporary file next to the checkpoint
    (tmp_path / ".checkpoint.pt.k1ll3d.tmp").write_bytes(good[:1000])
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert ckpt.load(tmp_path / "checkpoint.pt", model)["epoch"] == 1
    pyrovae.fit(
        VAE(64, 2, hidden=(32,)), digits, epochs=2, progress=False, out=tmp_path, resume=True
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt",
        "config.yaml",
        "metrics.json",
    ]


def test_metrics_lagging_behind_the_checkpoint_catch_up_on_resume(digits, tmp_path):
    """A kill between the checkpoint's rename and the metrics' write of the last epoch."""
    pyrovae.fit(VAE(64, 2, hidden=(32,)), digits, epochs=2, progress=False, out=tmp_path)
    metrics = tmp_path / "metrics.json"
    complete = json.loads(metrics.read_text())
    lagging = {k: v[:1] if isinstance(v, list) else None for k, v in complete.items()}
    metrics.write_text(json.dumps(lagging))  # epoch 1's, written before training had ended
    pyrovae.fit(
        VAE(64, 2, hidden=(32,)), digits, epochs=2, progress=False, out=tmp_path, resume=True
    )
    assert json.loads(metrics.read_text()) == complete


class Initialized(VAE):
    """Records the calls of the ``initialize(x, seed)`` hook."""

    def initialize(self, x, seed):
        self.calls = [*getattr(self, "calls", []), (x.shape, seed)]


def test_initialize_runs_on_a_fresh_start_only(digits, tmp_path):
    model = Initialized(64, 2, hidden=(32,))
    pyrovae.fit(model, digits, epochs=1, seed=3, progress=False, out=tmp_path)
    assert model.calls == [(digits.train.x.shape, 3)]
    resumed = Initialized(64, 2, hidden=(32,))
    pyrovae.fit(resumed, digits, epochs=2, seed=3, progress=False, out=tmp_path, resume=True)
    assert not hasattr(resumed, "calls")
