import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyro
import pytest
import torch
from pyro.infer.util import is_validation_enabled

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
def _threads():
    """torch's threads: ``OMP_NUM_THREADS`` when set (the suite can run with 2), else 1."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


@pytest.fixture(autouse=True)
def _restore_process_state():
    """No test leaks process-wide state into the next, whatever the order: the working
    directory, the environment, torch's default dtype, threads and grad mode and Pyro's
    validation flag are put back after each test."""
    cwd, env = os.getcwd(), dict(os.environ)
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    validation = is_validation_enabled()
    yield
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
    torch.set_grad_enabled(True)
    pyro.enable_validation(validation)


@pytest.fixture
def killed_after_first_checkpoint():
    """``run(args, out)``: start ``python args…`` in a subprocess, SIGKILL it just after its
    first checkpoint in ``out`` (into the next epoch), and check the checkpoint is mid-run."""

    torch.set_num_threads(1)  # as the subprocess: bit-identity needs one summation order

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
