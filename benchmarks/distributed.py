"""Data-parallel training speed: 1 process against W processes (gloo, CPU, 1 thread each).

The MNIST VAE (784-256-128-20 ReLU MLPs, Bernoulli likelihood, N(0, I) prior, Gaussian
posterior; dynamically binarised training rows, Adam 1e-3) is trained by ``pyrovae.fit`` for two
epochs of ``--steps`` global steps on a global batch of ``--global-batch`` rows: one process
steps on the whole global batch, W processes (started with ``torchrun``) on ``1/W`` of it each.
Samples/s is measured on the second epoch (the first includes warm-up). With the same seed every
run starts from the same parameters and sees the same batches; only the sampling noise of the
guide differs between process counts (and the order of float additions), so the parameters after
the same number of global steps differ by Monte Carlo noise: the script reports that difference
next to the one between two single-process runs with different seeds. Writes
``benchmarks/results/distributed/distributed.json``. The worker processes run this module
(``python -m benchmarks.distributed``, under ``torchrun`` for W > 1).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

QUICK = ["--global-batch", "20", "--steps", "5"]
FULL = []
SEEDS = (0,)


def worker(args):
    """One process of a run (under torchrun, or alone): train and save rank 0's results."""
    import pyro
    import torch

    import pyrovae
    from pyrovae.data import Data, Split

    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    mnist = pyrovae.data.load(args.dataset, root=args.data_root)
    rows = mnist.train.x[: args.global_batch * args.steps]
    data = Data(Split(rows), binarize="dynamic")  # training rows only: the timing is the steps
    pyro.set_rng_seed(0)  # the same initial parameters in every run
    model = pyrovae.VAE(data.input_dim, 20, hidden=(256, 128))
    history = pyrovae.fit(
        model,
        data,
        epochs=2,
        batch_size=args.global_batch // world,
        seed=args.seed,
        progress=False,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        torch.save({"params": params, "history": history}, args.save)


def run(procs, seed, args, folder, session):
    """Start one training with ``procs`` processes; rank 0's saved results."""
    import torch

    save = folder / f"p{procs}_s{seed}.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    own = ["-m", "benchmarks.distributed", "--save", str(save), "--seed", str(seed)]
    own += ["--dataset", "digits" if session.quick else "mnist"]
    own += ["--data-root", session.data_root] if session.data_root else []
    own += ["--global-batch", str(args.global_batch), "--steps", str(args.steps)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(procs), *own]  # --standalone: a free port of its own
    subprocess.run(command if procs > 1 else [sys.executable, *own], env=env, check=True)
    return torch.load(save, weights_only=True)


def main(args, session):

    folder = Path(tempfile.mkdtemp(prefix="pyrovae-bench-"))
    rows = args.global_batch * args.steps
    results, reference = [], run(1, 0, args, folder, session)
    for procs in args.procs:
        out = reference if procs == 1 else run(procs, 0, args, folder, session)
        seconds = out["history"]["seconds"]
        diff = (out["params"] - reference["params"]).norm() / reference["params"].norm()
        results.append(
            {
                "processes": procs,
                "batch_per_process": args.global_batch // procs,
                "samples_per_second": rows / seconds[1],
                "first_epoch_samples_per_second": rows / seconds[0],
                "relative_parameter_difference_to_1_process": diff.item(),
                "max_abs_parameter_difference_to_1_process": (
                    (out["params"] - reference["params"]).abs().max().item()
                ),
                "train_elbo": out["history"]["train_elbo"],
            }
        )
        print(json.dumps(results[-1]))
    noise = run(1, 1, args, folder, session)
    noise_diff = (noise["params"] - reference["params"]).norm() / reference["params"].norm()
    report = {
        "model": "VAE 784-256-128-20, Bernoulli, dynamic binarisation, Adam 1e-3",
        "global_batch": args.global_batch,
        "global_steps": 2 * args.steps,
        "threads_per_process": 1,
        "backend": "gloo",
        "relative_parameter_difference_between_seeds_1_process": noise_diff.item(),
        "results": results,
        "load_average_at_end": os.getloadavg(),
    }
    shutil.rmtree(folder)
    print("wrote", session.write("distributed.json", report))


def arguments(p):
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts")
    p.add_argument("--global-batch", type=int, default=200, help="rows per global step")
    p.add_argument("--steps", type=int, default=100, help="global steps per epoch (2 epochs)")
    p.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")


def worker_arguments():
    """The options of one worker process (``python -m benchmarks.distributed``)."""
    p = argparse.ArgumentParser(description="one process of a distributed benchmark run")
    arguments(p)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-root")
    p.add_argument("--save", required=True)
    return p.parse_args()


if __name__ == "__main__":  # a worker process, started by main()
    worker(worker_arguments())
