"""Rerun the figures that README.md states, over their seeds, and check each stays in its range.

    python tools/figures.py              # every figure, seeds 0-2 (about 15 min, 2-core VM)
    python tools/figures.py --quick      # seed 0 of the fast figures (tests/test_figures.py)
    python tools/figures.py --only gmm_full demo

Each figure runs its command once per seed (one torch thread, in a temporary folder) and is
reported as mean ± sd (sample sd, n = number of seeds). A figure fails when any seed's value
leaves the range stated here, which is the range README.md quotes; the exit status is 1 then,
and every failing figure is named. The full run writes the per-seed values to
``tools/figures.json`` (``--out`` for another file; ``--quick`` writes nothing unless given one).

Wall-clock figures (the demo's timing) are recorded, never checked: they depend on the load of
the machine. The clustering figure is read from the rows of
``benchmarks/results/clustering_digits/clustering_digits.json`` at the README's budget when that
file exists (``python -m benchmarks clustering_digits --full``: its runs take an hour; they are
not rerun here).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLUSTERING_JSON = ROOT / "benchmarks" / "results" / "clustering_digits" / "clustering_digits.json"
SEEDS = (0, 1, 2)


def pyrovae_cli(*args, cwd):
    """``python -m pyrovae ARGS`` in ``cwd``; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "pyrovae", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"pyrovae {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def demo(seed, work):
    """``make demo`` with ``--seed``: test log-likelihood (1,000 importance samples) and the
    wall-clock seconds of its two commands."""
    tic = time.perf_counter()
    pyrovae_cli("train", "--dataset", "digits", "--latent-dim", 2, "--epochs", 150,
                "--batch-size", 100, "--warmup-epochs", 10, "--seed", seed, "--out", "demo",
                "--overwrite", "--quiet", cwd=work)  # fmt: skip
    scores = json.loads(pyrovae_cli("evaluate", "demo", "--num-samples", 1000, cwd=work))
    return {
        "test_log_likelihood": scores["log_likelihood"],
        "log_likelihood_stderr": scores["log_likelihood_stderr"],
        "seconds": time.perf_counter() - tic,
    }


def gmm(covariance):
    def run(seed, work):
        """``pyrovae train --model gmm``: exact log-likelihoods per image of both splits."""
        import torch

        import pyrovae

        pyrovae_cli("train", "--model", "gmm", "--num-components", 10, "--covariance",
                    covariance, "--seed", seed, "--out", "gmm", "--quiet", cwd=work)  # fmt: skip
        scores = json.loads(pyrovae_cli("evaluate", "gmm", cwd=work))
        model = pyrovae.load(Path(work) / "gmm")
        with torch.no_grad():
            train = model.log_prob(pyrovae.data.load("digits").train.x).mean().item()
        return {"train_log_likelihood": train, "test_log_likelihood": scores["log_likelihood"]}

    run.__doc__ = f"the README's GMM command, --covariance {covariance}"
    return run


def sklearn_gmm(covariance):
    def run(seed, work):
        """scikit-learn's EM, best of 3 starts (``random_state=seed``)."""
        from sklearn.mixture import GaussianMixture

        import pyrovae

        digits = pyrovae.data.load("digits")
        train, test = digits.train.x.double().numpy(), digits.test.x.double().numpy()
        em = GaussianMixture(10, covariance_type=covariance, n_init=3, reg_covar=1e-6,
                             random_state=seed).fit(train)  # fmt: skip
        return {"train_log_likelihood": em.score(train), "test_log_likelihood": em.score(test)}

    return run


def kmeans(seed, work):
    """scikit-learn's k-means (K = 10, 10 starts, ``random_state=seed``) on the raw pixels of
    the training digits, scored on the 359 test digits."""
    from sklearn.cluster import KMeans

    import pyrovae
    from pyrovae.infer.clustering import clustering_scores

    digits = pyrovae.data.load("digits")
    fit = KMeans(10, n_init=10, random_state=seed).fit(digits.train.x.double().numpy())
    scores = clustering_scores(fit.predict(digits.test.x.double().numpy()), digits.test.y)
    return {"accuracy": scores["accuracy"], "nmi": scores["nmi"]}


def larger_than_memory(rows):
    def run(seed, work):
        """``examples/larger_than_memory.py`` for one epoch under a 1,000 MB cap on private
        memory: private memory after the epoch (MB) and the test ELBO."""
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "larger_than_memory.py"), "-n", "1",
             "--rows", str(rows), "--limit-mb", "1000", "--batch-size", "1000",
             "--seed", str(seed), "--out", str(Path(work) / "memmap")],
            capture_output=True, text=True, check=False,
            env={**os.environ, "OMP_NUM_THREADS": "1"},  # threads' arenas count against the cap
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"larger_than_memory.py failed:\n{done.stderr[-3000:]}")
        lines = done.stdout.splitlines()
        memory = next(line for line in lines if "private memory" in line and "epoch" in line)
        elbo = next(line for line in lines if line.startswith("test ELBO"))
        return {
            "private_memory_mb": float(memory.split("private memory")[1].split()[0]),
            "test_elbo": float(elbo.split()[2]),
        }

    return run


# name: (what it measures, how to run one seed, seeds, {value: (low, high) or None}, quick)
# A range is the one README.md states; None: recorded, not checked (wall-clock time).
FIGURES = {
    "demo": (
        "make demo (README: Two commands)",
        demo,
        SEEDS,
        {"test_log_likelihood": (-24.5, -23.3), "log_likelihood_stderr": None, "seconds": None},
        False,
    ),
    "gmm_full": (
        "pyrovae train --model gmm --num-components 10 --covariance full --seed S",
        gmm("full"),
        SEEDS,
        {"train_log_likelihood": (128.0, 130.5), "test_log_likelihood": (78.0, 90.0)},
        True,
    ),
    "gmm_diag": (
        "pyrovae train --model gmm --num-components 10 --covariance diag --seed S",
        gmm("diag"),
        SEEDS,
        {"train_log_likelihood": (112.8, 113.4), "test_log_likelihood": (90.0, 101.0)},
        False,
    ),
    "sklearn_gmm_full": (
        "sklearn GaussianMixture(10, 'full', n_init=3, reg_covar=1e-6, random_state=S)",
        sklearn_gmm("full"),
        SEEDS,
        {"train_log_likelihood": (129.3, 130.5), "test_log_likelihood": (78.0, 88.0)},
        True,
    ),
    "sklearn_gmm_diag": (
        "sklearn GaussianMixture(10, 'diag', n_init=3, reg_covar=1e-6, random_state=S)",
        sklearn_gmm("diag"),
        SEEDS,
        {"train_log_likelihood": (112.8, 113.4), "test_log_likelihood": (90.0, 101.0)},
        True,
    ),
    "kmeans": (
        "sklearn KMeans(10, n_init=10, random_state=S) on the raw training pixels",
        kmeans,
        SEEDS,
        {"accuracy": (0.77, 0.80), "nmi": (0.73, 0.76)},
        True,
    ),
    "memmap_small": (
        "python examples/larger_than_memory.py -n 1 --rows 23000 --limit-mb 1000 "
        "--batch-size 1000 --seed S",
        larger_than_memory(23_000),
        SEEDS,
        {"private_memory_mb": (300, 600), "test_elbo": (-35.5, -32.0)},
        True,
    ),
    "memmap_large": (
        "python examples/larger_than_memory.py -n 1 --rows 4400000 --limit-mb 1000 "
        "--batch-size 1000 --seed S",
        larger_than_memory(4_400_000),
        SEEDS,
        {"private_memory_mb": (300, 600), "test_elbo": None},
        False,
    ),
}


def summary(values):
    """``{"mean", "sd", "n", "min", "max"}`` of a list of numbers (sd: sample sd, 0 for n = 1)."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "min": min(values),
        "max": max(values),
    }


def clustering_from_json(path=CLUSTERING_JSON):
    """The README's mixture-prior command over seeds, as ``benchmarks/clustering_digits.py``
    wrote it (``{"entries": [{"seed", "accuracy", "nmi", "kmeans_raw_pixels": {...},
    "epochs", "pretrain_epochs"}]}``; the rows with neither budget set are the README's), with
    what README.md says of it checked: a mean accuracy of at least 85 %, no seed below 78 %,
    and an NMI above k-means's on the raw pixels at every seed. ``None`` when the file is not
    there."""
    if not path.exists():
        return None
    entries = json.loads(path.read_text())["entries"]
    seeds = [e for e in entries if e["epochs"] is None and e["pretrain_epochs"] is None]
    out = {"command": f"read from {path}", "per_seed": seeds}
    out["summary"] = {
        key: {**summary([float(r[key]) for r in seeds]), "range": None}
        for key in ("accuracy", "nmi")
    }
    kmeans_nmi = summary([float(r["kmeans_raw_pixels"]["nmi"]) for r in seeds])["mean"]
    accuracy, nmi = out["summary"]["accuracy"], out["summary"]["nmi"]
    checks = {
        "mean accuracy at least 0.85": accuracy["mean"] >= 0.85,
        "no seed below 0.78": accuracy["min"] >= 0.78,
        f"mean NMI above k-means's {kmeans_nmi:.3f}": nmi["mean"] > kmeans_nmi,
        "NMI above k-means's at every seed": all(
            r["nmi"] > r["kmeans_raw_pixels"]["nmi"] for r in seeds
        ),
    }
    out["failures"] = [f"clustering: {claim}" for claim, ok in checks.items() if not ok]
    return out


def run_figure(name, seeds):
    what, run, _, ranges, _ = FIGURES[name]
    per_seed, errors = [], []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix=f"figure-{name}-") as work:
            try:
                per_seed.append({"seed": seed, **run(seed, work)})
            except (RuntimeError, StopIteration) as err:  # the command failed: say so, go on
                errors.append(f"{name} seed {seed}: {' '.join(str(err).split())[-500:]}")
                print(errors[-1], flush=True)
                continue
        print(f"{name} seed {seed}: {json.dumps(per_seed[-1])}", flush=True)
    result = {"command": what, "per_seed": per_seed, "summary": {}, "failures": errors}
    if not per_seed:
        return result
    for key, bounds in ranges.items():
        values = [row[key] for row in per_seed]
        result["summary"][key] = {**summary(values), "range": bounds}
        outside = [v for v in values if bounds is not None and not bounds[0] <= v <= bounds[1]]
        if outside:
            result["failures"].append(f"{name}.{key}: {outside} outside {bounds}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the fast figures, seed 0")
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="these figures")
    parser.add_argument("--out", help="JSON of the results (default tools/figures.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    names = args.only or [n for n, spec in FIGURES.items() if spec[4] or not args.quick]
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "figures": {},
    }
    import torch

    results["torch"] = torch.__version__
    for name in names:
        seeds = FIGURES[name][2][:1] if args.quick else FIGURES[name][2]
        results["figures"][name] = run_figure(name, seeds)
    clustering = clustering_from_json(CLUSTERING_JSON)  # read at call time (tests patch it)
    if clustering is not None:
        results["figures"]["clustering"] = clustering
    failures = [f for r in results["figures"].values() for f in r["failures"]]
    out = args.out or (None if args.quick else ROOT / "tools" / "figures.json")
    if out is not None:
        Path(out).write_text(json.dumps(results, indent=1) + "\n")
    for name, r in results["figures"].items():
        for key, s in r["summary"].items():
            print(f"{name}.{key}: {s['mean']:.4g} ± {s['sd']:.2g} (n = {s['n']}, "
                  f"{s['min']:.4g} to {s['max']:.4g}), range {s['range']}")  # fmt: skip
    if failures:
        print("outside their stated range:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
