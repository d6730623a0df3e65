"""Cost of the guard's parameter check (``guard.check_update``) per training step.

Interleaved rounds on one thread: each round times ``STEPS`` steps with the check and ``STEPS``
without (the order alternating between rounds), on the same model, optimiser and batch; the
report is each arm's fastest round (on a shared machine the other processes only ever add
time, so a minimum is the least disturbed figure), the per-round difference (median over n
rounds), and the check's own time (best of 5 × 200 calls).

    OMP_NUM_THREADS=1 python tools/guard_cost.py
"""

import math
import statistics
import time

import torch

import pyrovae
from pyrovae.infer import guard
from pyrovae.infer import step as step_module
from pyrovae.infer.elbo import FastTrace_ELBO

ROUNDS, STEPS = 20, 30


def arm(step, x, optimizer, n):
    tic = time.perf_counter()
    for i in range(n):
        step(x, len(x), optimizer, (1, i + 1))
    return (time.perf_counter() - tic) / n


def measure(input_dim, latent_dim, hidden, batch):
    torch.manual_seed(0)
    vae = pyrovae.VAE(input_dim, latent_dim, hidden=hidden)
    x = torch.rand(batch, input_dim).round()
    elbo = FastTrace_ELBO()
    params = step_module.trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    named = step_module.named_parameters(vae, params)
    step = step_module.make_step(elbo, vae, vae.model, vae.guide, named)
    optimizer = step_module.adam(params, lr=1e-4)
    real = guard.check_update
    arm(step, x, optimizer, STEPS)  # warm-up
    on, off = [], []
    for r in range(ROUNDS):
        for enabled in (True, False) if r % 2 == 0 else (False, True):
            guard.check_update = real if enabled else (lambda *a, **k: None)
            (on if enabled else off).append(arm(step, x, optimizer, STEPS))
    guard.check_update = real
    diffs = [a - b for a, b in zip(on, off, strict=True)]
    n_params = sum(p.numel() for p in params)
    alone = math.inf
    for _ in range(5):
        tic = time.perf_counter()
        for _ in range(200):
            real(named, "epoch 1, step 1", optimizer)
        alone = min(alone, (time.perf_counter() - tic) / 200)
    print(
        f"VAE({input_dim}, {latent_dim}, hidden={hidden}) batch {batch}, {n_params} parameters: "
        f"fastest round {min(off) * 1e3:.3f} ms per step without, {min(on) * 1e3:.3f} ms with "
        f"({100 * (min(on) - min(off)) / min(off):+.2f} %); difference per step "
        f"median {statistics.median(diffs) * 1e6:.1f} µs, mean "
        f"{statistics.mean(diffs) * 1e6:.1f} ± {statistics.stdev(diffs) * 1e6:.1f} µs "
        f"(n = {ROUNDS} rounds of {STEPS} steps), "
        f"median {100 * statistics.median(diffs) / statistics.median(off):.2f} % of a step; "
        f"the check alone {alone * 1e6:.1f} µs"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    measure(64, 2, (32,), 128)
    measure(784, 20, (400,), 100)
    measure(784, 50, (500, 500), 100)
