import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyro
import pytest
import torch

ROOT = Path(__file__).parents[1]


@pytest.fixture(autouse=True)
def _clean_pyro():
    """Each test starts with an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def digits():
    import pyrovae

    return pyrovae.data.load("digits", binarize="dynamic")


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    torch.set_num_threads(1)


@pytest.fixture
def killed_after_first_checkpoint():
    """``run(args, out)``: start ``python args…`` in a subprocess, SIGKILL it just after its
    first checkpoint in ``out`` (into the next epoch), and check the checkpoint is mid-run."""

    def run(args, out):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen([sys.executable, *args], env=env)
        while not (out / "checkpoint.pt").exists() and process.poll() is None:
            time.sleep(0.01)
        time.sleep(0.05)  # into the next epoch (an epoch is 115 steps)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert 1 <= torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] < 4

    return run
