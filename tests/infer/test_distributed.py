"""Data-parallel training on 2 CPU processes (gloo), against one process on the global batch."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from capture import Capture
from torch.utils.data import TensorDataset

import pyrovae
from pyrovae.infer import distributed
from pyrovae.infer.step import make_step, named_parameters, trainable_parameters
from pyrovae.models import VAE

WORLD = 2
SMALL = {"hidden": (32,)}
TRAIN = {"epochs": 3, "batch_size": 50, "progress": False}  # 2 ranks × 50 = global batch 100


class RowNoiseVAE(VAE):
    """A VAE whose guide draws z = μ + σ ε with ε a fixed function of the row: the sampling
    noise of a row is then the same in any process, and gradients can be compared exactly."""

    def guide(self, x):
        pyro.module(self.name, self)
        with pyro.plate("data", x.shape[0]):
            q = self.posterior(self.encoder(x))
            eps = torch.sin(100.0 * x @ torch.linspace(-1, 1, x.shape[1] * 2).view(-1, 2))
            z = q.base_dist.loc + q.base_dist.scale * eps
            pyro.sample("z", dist.Delta(z, log_density=q.log_prob(z), event_dim=1))


def one_step_gradients(x_global, ctx):
    """Gradients of one training step of this rank on its share of ``x_global``."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    model = RowNoiseVAE(64, 2, **SMALL)
    elbo = pyro.infer.Trace_ELBO(max_plate_nesting=1)
    params = trainable_parameters(model, elbo, model.model, model.guide, x_global[:2])
    step = make_step(elbo, model, model.model, model.guide, named_parameters(model, params), ctx)
    capture = Capture(params)
    step(x_global[ctx.rank :: ctx.world_size], len(x_global), capture, "test")
    return capture.grads


def _worker(rank, port, folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        ctx = distributed.setup()
        digits = pyrovae.data.load("digits", binarize="dynamic")
        x = digits.train.x[:9].round()  # 9 rows: 5 on rank 0, 4 on rank 1
        result = {
            "grads": one_step_gradients(x, ctx),
            "grads_one_row": one_step_gradients(x[:1], ctx),  # rank 1 gets no rows
        }
        raw = pyrovae.data.load("digits")  # the same rows, training rows as a Dataset
        rows = pyrovae.data.Data(
            TensorDataset(raw.train.x), raw.valid.x, raw.test.x, binarize="dynamic"
        )
        runs = (("run", [3], digits), ("resumed", [2, 3], digits), ("dataset", [2, 3], rows))
        for name, epochs, data in runs:  # the last two resumed
            for i, n in enumerate(epochs):
                pyro.clear_param_store()
                pyro.set_rng_seed(0)
                model = VAE(64, 2, **SMALL)
                options = {**TRAIN, "epochs": n, "resume": i > 0}
                history = pyrovae.fit(model, data, out=Path(folder) / name, **options)
            result[name] = {"params": [p.detach() for p in model.parameters()], "history": history}
        torch.save(result, Path(folder) / f"rank{rank}.pt")
        tdist.barrier()  # neither rank tears gloo down while the other still talks to it
    finally:
        tdist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Results of both ranks of one 2-process run (gradients, trained parameters, history)."""
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(folder)), nprocs=WORLD, join=True)
    results = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return folder, results


@pytest.mark.slow
def test_parameters_are_identical_on_every_rank(two_ranks):
    _, (r0, r1) = two_ranks
    for a, b in zip(r0["run"]["params"], r1["run"]["params"], strict=True):
        assert torch.equal(a, b)
    assert r0["run"]["history"]["test_elbo"] == r1["run"]["history"]["test_elbo"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resumed", "dataset"])
def test_a_resumed_distributed_run_equals_the_uninterrupted_one(two_ranks, name):
    """Resumed after 2 of 3 epochs, from tensors or from a Dataset of the same rows."""
    _, results = two_ranks
    for r in results:
        for a, b in zip(r["run"]["params"], r[name]["params"], strict=True):
            assert torch.equal(a, b)
        a, b = dict(r["run"]["history"]), dict(r[name]["history"])
        del a["seconds"], b["seconds"]
        assert a == b


@pytest.mark.slow
@pytest.mark.parametrize("key, rows", [("grads", 9), ("grads_one_row", 1)])
def test_averaged_gradient_equals_the_global_batch_gradient(two_ranks, digits, key, rows):
    _, (r0, r1) = two_ranks
    x = digits.train.x[:9].round()[:rows]
    alone = one_step_gradients(x, distributed.Context())
    for g0, g1, g in zip(r0[key], r1[key], alone, strict=True):
        assert torch.equal(g0, g1)  # DDP hands both ranks the same average
        torch.testing.assert_close(g0, g, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_two_processes_reach_the_test_elbo_of_one(two_ranks, digits):
    _, (r0, _) = two_ranks
    pyro.set_rng_seed(0)
    alone = pyrovae.fit(VAE(64, 2, **SMALL), digits, **{**TRAIN, "batch_size": 100})
    # Monte Carlo error: the two runs see the same batches but different sampling noise.
    # Measured over seeds 0-5 with one process: the test ELBO after 3 epochs (≈ -38.8) spreads
    # with standard deviation 0.09 nats; we allow 5 of them.
    assert math.isclose(r0["run"]["history"]["test_elbo"][-1], alone["test_elbo"][-1], abs_tol=0.5)


@pytest.mark.slow
def test_only_rank_zero_writes(two_ranks):
    folder, _ = two_ranks
    for run in ("run", "resumed"):
        assert sorted(p.name for p in (folder / run).iterdir()) == [
            "checkpoint.pt",
            "config.yaml",
            "metrics.json",
        ]
    state = torch.load(folder / "run" / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == WORLD and len(state["rng_by_rank"]) == WORLD


def test_distributed_true_outside_torchrun_says_how_to_start(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc-per-node N"):
        pyrovae.fit(VAE(64, 2, **SMALL), torch.rand(10, 64), distributed=True, progress=False)


@pytest.mark.slow
def test_torchrun_cli_writes_one_set_of_files(tmp_path):
    out = tmp_path / "run"
    # --standalone: the rendezvous picks its own free port (no race with other processes)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    command += ["2", "-m", "pyrovae", "train", "--quiet"]
    command += ["--hidden", "32", "--batch-size", "100", "--epochs", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.strip().splitlines()) == 1  # one JSON line, from rank 0
    assert json.loads(run.stdout)["out"] == str(out)
    files = {p.name for p in out.iterdir() if p.suffix != ".png"}  # and the pictures, once
    assert files == {"checkpoint.pt", "config.yaml", "metrics.json"}
    assert json.loads((out / "metrics.json").read_text())["epoch"] == [1]


TWO_FITS_TIMEOUT = 240  # s; the two fits take about 15 s
TWO_FITS = """
import os, sys, pyro, torch, torch.distributed as dist, pyrovae
from pyrovae.models import VAE
torch.set_num_threads(1)
open(f"{sys.argv[1]}/pid{os.environ['RANK']}", "w").write(str(os.getpid()))
made, init = [], dist.init_process_group
dist.init_process_group = lambda *a, **k: made.append(1) or init(*a, **k)
digits = pyrovae.data.load("digits", binarize="dynamic")
for i in range(2):
    pyro.clear_param_store()
    pyro.set_rng_seed(i)
    model = VAE(64, 2, hidden=(32,))
    pyrovae.fit(model, digits, epochs=1, batch_size=50, progress=False, distributed=True)
params = [p.detach() for p in model.parameters()]
torch.save((params, len(made)), f"{sys.argv[1]}/rank{os.environ['RANK']}.pt")
"""


@pytest.mark.slow
def test_two_fits_in_one_torchrun_process_share_the_process_group(tmp_path):
    """A second ``fit(distributed=True)`` in the same processes reuses the first one's process
    group (made once per process) and trains on both ranks (DDP keeps their parameters equal),
    instead of waiting forever on a group made again."""
    script = tmp_path / "two_fits.py"
    script.write_text(TWO_FITS)
    # torchrun's default rendezvous, as ``torchrun --nproc-per-node 2 script.py`` uses it
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--master-port", str(_free_port()), str(script), str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}
    # stderr to a file: a worker left behind cannot keep a pipe open and block the test
    with open(tmp_path / "stderr", "w") as stderr:
        run = subprocess.Popen(command, env=env, stderr=stderr, start_new_session=True)
        hung = False
        try:
            run.wait(timeout=TWO_FITS_TIMEOUT)
        except subprocess.TimeoutExpired:
            hung = True
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    # torchrun starts its workers in sessions of their own: each wrote its pid first
    workers = [int(path.read_text()) for path in tmp_path.glob("pid*")]
    left = [pid for pid in workers if _alive(pid)]  # none may be left waiting at exit
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not hung, f"the two fits did not end within {TWO_FITS_TIMEOUT} s"
    assert run.returncode == 0, (tmp_path / "stderr").read_text()[-3000:]
    assert not left, "workers still running after torchrun returned"
    (params0, made0), (params1, made1) = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert made0 == made1 == 1  # one group for both fits, not one made again
    for a, b in zip(params0, params1, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
