"""Throughput of von Mises-Fisher sampling: pyrovae's samplers next to peers.

For every (d, kappa) this times one call that draws a batch of samples (default 1024, one
sample per batch entry of a float32 distribution) for

* ``wood``         - ``VonMisesFisher(loc, kappa).rsample()`` (exact; Wood's rejection sampler,
  closed-form inverse CDF for d = 3),
* ``inverse_cdf``  - ``VonMisesFisher(loc, kappa, sampler="inverse_cdf").rsample()`` (table
  cached after the first call; the cold first call is reported separately),
* ``power_spherical`` - ``power_spherical.PowerSpherical(loc, kappa).rsample()`` (a different
  distribution with the same role, reparameterizable without rejection),
* ``scipy``        - ``scipy.stats.vonmises_fisher(mu, kappa).rvs(batch)`` (float64, one mu),
* ``wood_grad`` / ``power_spherical_grad`` - rsample plus backward of ``sum()`` to loc and
  kappa (the cost seen in training; for vMF this includes the implicit kappa gradient).

Methods are interleaved within each repeat and the median over repeats is reported, on one
thread. Times are process CPU time (``time.process_time``), which is robust to other jobs on a
shared machine; wall-clock medians are stored in the JSON too. Results go to
``benchmarks/results/vmf_sampling/vmf_sampling.json`` and a markdown table to stdout.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
import power_spherical
import scipy
import scipy.stats
import torch

from pyrovae.distributions import VonMisesFisher

QUICK = ["--dims", "3", "16", "--kappas", "1", "100", "--batch", "64", "--repeats", "3"]
FULL = []
SEEDS = (0,)

METHODS = ["wood", "inverse_cdf", "power_spherical", "scipy", "wood_grad", "power_spherical_grad"]


def make_callables(d, kappa, batch, seed):
    g = torch.Generator().manual_seed(seed)
    loc = torch.nn.functional.normalize(torch.randn(batch, d, generator=g), dim=-1)
    kap = torch.full((batch,), float(kappa))
    wood = VonMisesFisher(loc, kap)
    icdf = VonMisesFisher(loc, kap, sampler="inverse_cdf")
    ps = power_spherical.PowerSpherical(loc, kap)
    sp = scipy.stats.vonmises_fisher(loc[0].double().numpy(), float(kappa))
    rng = np.random.default_rng(seed)
    loc_g = loc.clone().requires_grad_(True)
    kap_g = kap.clone().requires_grad_(True)

    def wood_grad():
        VonMisesFisher(loc_g, kap_g).rsample().sum().backward()

    def ps_grad():
        power_spherical.PowerSpherical(loc_g, kap_g).rsample().sum().backward()

    return {
        "wood": wood.rsample,
        "inverse_cdf": icdf.rsample,
        "power_spherical": ps.rsample,
        "scipy": lambda: sp.rvs(batch, random_state=rng),
        "wood_grad": wood_grad,
        "power_spherical_grad": ps_grad,
    }


def cold_inverse_cdf(d, kappa, batch):
    """First call with a new kappa: builds (and caches) the CDF table."""
    loc = torch.nn.functional.normalize(torch.randn(batch, d), dim=-1)
    kap = torch.full((batch,), float(kappa) * (1 + 1e-6 * torch.rand(()).item()))  # new key
    start = time.process_time()
    VonMisesFisher(loc, kap, sampler="inverse_cdf").rsample()
    return time.process_time() - start


def run_point(d, kappa, batch, repeats, seed):
    fns = make_callables(d, kappa, batch, seed)
    for fn in fns.values():  # warm-up (and inverse-CDF table build)
        fn()
    times = {m: [] for m in METHODS}
    wall = {m: [] for m in METHODS}
    for _ in range(repeats):
        for m in METHODS:
            start, start_wall = time.process_time(), time.perf_counter()
            fns[m]()
            times[m].append(time.process_time() - start)
            wall[m].append(time.perf_counter() - start_wall)
    med = {m: statistics.median(v) for m, v in times.items()}
    row = {"d": d, "kappa": kappa, "batch": batch}
    for m in METHODS:
        row[f"{m}_seconds"] = med[m]
        row[f"{m}_wall_seconds"] = statistics.median(wall[m])
        row[f"{m}_samples_per_s"] = batch / med[m]
    row["wood_over_power_spherical"] = med["wood"] / med["power_spherical"]
    row["inverse_cdf_over_power_spherical"] = med["inverse_cdf"] / med["power_spherical"]
    row["wood_grad_over_power_spherical_grad"] = med["wood_grad"] / med["power_spherical_grad"]
    row["inverse_cdf_cold_seconds"] = cold_inverse_cdf(d, kappa, batch)
    return row


def markdown(rows):
    head = (
        "| d | κ | wood (samples/s) | inverse_cdf | PowerSpherical | scipy | wood / PS time |"
        " icdf / PS time | wood+grad / PS+grad time | icdf cold call (ms) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        lines.append(
            f"| {r['d']} | {r['kappa']:g} | {r['wood_samples_per_s']:.3g} |"
            f" {r['inverse_cdf_samples_per_s']:.3g} | {r['power_spherical_samples_per_s']:.3g} |"
            f" {r['scipy_samples_per_s']:.3g} | {r['wood_over_power_spherical']:.2f} |"
            f" {r['inverse_cdf_over_power_spherical']:.2f} |"
            f" {r['wood_grad_over_power_spherical_grad']:.2f} |"
            f" {1e3 * r['inverse_cdf_cold_seconds']:.1f} |"
        )
    return head + "\n".join(lines)


def main(args, session):
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rows = []
    for d in args.dims:
        for kappa in args.kappas:
            row = run_point(d, kappa, args.batch, args.repeats, args.seed)
            rows.append(row)
            print(
                f"d={d} kappa={kappa:g}: wood/PS {row['wood_over_power_spherical']:.2f}, "
                f"icdf/PS {row['inverse_cdf_over_power_spherical']:.2f}",
                file=sys.stderr,
                flush=True,
            )
    setup = {
        "scipy": scipy.__version__,
        "power_spherical": getattr(power_spherical, "__version__", "unknown"),
        "dtype": "float32 (scipy: float64)",
        "timer": "time.process_time (CPU time of this process), median over repeats",
        "repeats": args.repeats,
        "load_average_at_end": os.getloadavg(),
    }
    session.write("vmf_sampling.json", {"setup": setup, "results": rows})
    print(markdown(rows))


def arguments(parser):
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 16, 64, 256, 1024])
    parser.add_argument("--kappas", type=float, nargs="+", default=[1, 10, 100, 1e3, 1e4])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
