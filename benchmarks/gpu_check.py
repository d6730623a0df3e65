"""Everything to check on the first lent GPU, in one run of at most 5 minutes, into one JSON.

1. ``cuda_tests``: the suite's CUDA tests (those that skip without a GPU: ``-k "cuda or gpu"``
   in :data:`CUDA_TEST_FILES`), passed/failed/skipped counts.
2. ``fit_vs_torch``: one epoch of ``pyrovae.fit`` against the hand-written PyTorch loop on the
   same rows (the VAE 784-256-128-20 of ``benchmarks/overhead.py``, Bernoulli, fused Adam 1e-3)
   at batch 128 and 1,024, for ``fit`` eager, traced (``jit=True``) and bf16 (``precision``),
   and the loop eager and under bf16 autocast: wall time of an epoch (after one epoch of
   warm-up, with ``torch.cuda.synchronize``), ``--rounds`` interleaved rounds, median and
   min–max; the ratio to the eager loop of the same round.
3. ``sphere``: ``fit`` epochs of the S-VAE (vMF on S^10 ⊂ R^11) against the N-VAE (R^10),
   batch 128, eager and traced.
4. ``torchrun``: ``fit`` under ``torchrun`` with one process per GPU on the NCCL backend
   (gloo in the dry run): the backend, world size, and a finite loss after one epoch.

Each section records its error instead of stopping the others. ``--dry-run`` runs the same code
on the CPU with small sizes (< 1 min): the quick form, in ``make bench`` and the test suite.
The GPU run, from the repository root:

    bash benchmarks/gpu_check.sh    # = python -m benchmarks gpu_check --full

writes ``benchmarks/results/gpu_check/gpu_check.json`` (the dry run: ``gpu_check_dry_run.json``
under the quick form's run folder).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from .harness import ROOT
from .plain_vae import HIDDEN, LR, TorchVAE

QUICK = ["--dry-run", "--rounds", "2"]
FULL = []
SEEDS = (0,)
CUDA_TEST_FILES = [
    "tests/ops/test_special.py",
    "tests/distributions/test_hyperspherical_uniform.py",
    "tests/distributions/test_von_mises_fisher_extreme.py",
    "tests/infer/test_precision.py",
    "tests/test_run.py",
]
# (steps per epoch, rows per batch list, rounds) for the GPU and the dry run
SIZES = {"gpu": (100, (128, 1024)), "dry": (4, (16, 64))}


def _env():
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def cuda_tests(args):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
    command += ["-k", "cuda or gpu", *CUDA_TEST_FILES]
    done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    counts = {}
    for part in tail.split(","):
        words = part.split()
        if len(words) >= 2 and words[0].isdigit():
            counts[words[1]] = int(words[0])
    return {"command": " ".join(command[1:]), "exit_code": done.returncode, "summary": tail,
            **counts}  # fmt: skip


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def torch_epoch(model, optimizer, x, batch, device, bf16):
    """One epoch of the hand-written loop over ``x`` (on ``device``) in shuffled batches."""
    order = torch.randperm(len(x), device=device)
    cast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for start in range(0, len(x), batch):
        rows = x[order[start : start + batch]]
        optimizer.zero_grad()
        with cast:
            loss = model(rows).float() / len(rows)
        loss.backward()
        optimizer.step()
    return loss.item()


def _vae(latent=20, **parts):
    import pyrovae

    return pyrovae.VAE(784, latent, hidden=HIDDEN, **parts)


def fit_epoch_seconds(model, x, batch, device, **options):
    """Seconds of ``fit``'s second epoch (the first pays for warm-up and tracing)."""
    import pyrovae

    history = pyrovae.fit(
        model, x, epochs=2, batch_size=batch, device=device, progress=False, **options
    )
    return history["seconds"][1]


def fit_vs_torch(args, device):
    from pyrovae.infer.step import adam

    steps, batches = SIZES["dry" if args.dry_run else "gpu"]
    out = {}
    for batch in batches:
        x = torch.bernoulli(torch.full((steps * batch, 784), 0.13, device=device))
        arms = {
            "torch": lambda x=x, b=batch: _torch_seconds(TorchVAE, adam, LR, x, b, device, False),
            "torch-bf16": lambda x=x, b=batch: _torch_seconds(
                TorchVAE, adam, LR, x, b, device, True
            ),
            "fit": lambda x=x, b=batch: fit_epoch_seconds(_vae(), x, b, device),
            "fit-jit": lambda x=x, b=batch: fit_epoch_seconds(_vae(), x, b, device, jit=True),
            "fit-bf16": lambda x=x, b=batch: fit_epoch_seconds(
                _vae(), x, b, device, precision="bf16"
            ),
            "fit-jit-bf16": lambda x=x, b=batch: fit_epoch_seconds(
                _vae(), x, b, device, jit=True, precision="bf16"
            ),
        }
        out[f"batch-{batch}"] = _rounds(arms, args.rounds, "torch")
    return out


def _torch_seconds(cls, adam, lr, x, batch, device, bf16):
    model = cls().to(device)
    optimizer = adam(model.parameters(), lr)
    torch_epoch(model, optimizer, x, batch, device, bf16)  # warm-up
    _sync(device)
    tic = time.perf_counter()
    torch_epoch(model, optimizer, x, batch, device, bf16)
    _sync(device)
    return time.perf_counter() - tic


def _rounds(arms, rounds, reference):
    """Each arm once per round (rotating order); medians, min–max and ratios to the reference
    arm of the same round."""
    times = {name: [] for name in arms}
    names = list(arms)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(arms[name]())
    out = {}
    for name, values in times.items():
        ratios = [a / b for a, b in zip(values, times[reference], strict=True)]
        out[name] = {
            "epoch_seconds_median": statistics.median(values),
            "epoch_seconds_min_max": [min(values), max(values)],
            "ratio_to_" + reference + "_median": statistics.median(ratios),
            "ratio_min_max": [min(ratios), max(ratios)],
            "n": len(values),
        }
    return out


def sphere(args, device):
    steps, (batch, *_) = SIZES["dry" if args.dry_run else "gpu"]
    x = torch.bernoulli(torch.full((steps * batch, 784), 0.13, device=device))
    svae = {"prior": "hyperspherical_uniform", "posterior": "von_mises_fisher"}
    arms = {
        "nvae": lambda: fit_epoch_seconds(_vae(10), x, batch, device),
        "svae": lambda: fit_epoch_seconds(_vae(11, **svae), x, batch, device),
        "nvae-jit": lambda: fit_epoch_seconds(_vae(10), x, batch, device, jit=True),
        "svae-jit": lambda: fit_epoch_seconds(_vae(11, **svae), x, batch, device, jit=True),
    }
    return _rounds(arms, args.rounds, "nvae")


def torchrun(args, device):
    procs = max(1, torch.cuda.device_count()) if device.type == "cuda" else 1
    with tempfile.TemporaryDirectory() as folder:
        save = Path(folder) / "rank0.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc-per-node", str(procs), "-m", "benchmarks", "gpu_check"]
        command += ["--worker", str(save)]
        command += ["--device", device.type]
        done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True)
        result = json.loads(save.read_text()) if save.exists() else {}
    result.update(exit_code=done.returncode, processes=procs)
    if done.returncode:
        result["stderr_tail"] = done.stderr[-2000:]
    return result


def worker(save, device):
    """One rank of the torchrun check: a ``fit`` epoch on this rank's device."""
    import pyrovae
    from pyrovae.infer.callbacks import Callback

    class Backend(Callback):
        def on_train_start(self, state):
            self.name = torch.distributed.get_backend()
            self.world_size = torch.distributed.get_world_size()

    backend = Backend()
    x = torch.bernoulli(torch.full((512, 784), 0.13))
    history = pyrovae.fit(
        _vae(), x, epochs=1, batch_size=64, device=device, distributed=True, progress=False,
        callbacks=[backend],
    )  # fmt: skip
    if int(os.environ.get("RANK", "0")) == 0:
        info = {
            "backend": backend.name,
            "world_size": backend.world_size,
            "train_elbo": history["train_elbo"][-1],
        }
        Path(save).write_text(json.dumps(info))


def arguments(parser):
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU, small")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)


def main(args, session):
    if args.worker:
        return worker(args.worker, args.device)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run the quick form (--quick: --dry-run) on the CPU")
    torch.set_num_threads(1 if args.dry_run else torch.get_num_threads())
    device = torch.device("cpu" if args.dry_run else "cuda")
    report = {
        "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.machine(),
        "cuda": torch.version.cuda,
    }
    tic = time.perf_counter()
    for name, section in [
        ("cuda_tests", lambda: cuda_tests(args)),
        ("fit_vs_torch", lambda: fit_vs_torch(args, device)),
        ("sphere", lambda: sphere(args, device)),
        ("torchrun", lambda: torchrun(args, device)),
    ]:
        start = time.perf_counter()
        try:
            report[name] = section()
        except Exception:  # recorded, and the other sections still run
            report[name] = {"error": traceback.format_exc()[-2000:]}
        report[name]["section_seconds"] = time.perf_counter() - start
        print(name, json.dumps(report[name])[:400], flush=True)
    report["total_seconds"] = time.perf_counter() - tic
    session.write("gpu_check_dry_run.json" if args.dry_run else "gpu_check.json", report)
    return report
