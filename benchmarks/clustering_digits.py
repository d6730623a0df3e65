"""The README's clustering command on the offline digits, over seeds.

For each seed S: ``pyrovae train --prior "{name: mixture, num_components: 10}" --latent-dim 10
--seed S --out RUNS/clusters-sS`` then ``pyrovae evaluate RUNS/clusters-sS --num-samples 10``
(accuracy and NMI are those of the clusters at the posterior mode, which the number of
importance samples of the log-likelihood does not change), each in its own process; and
scikit-learn's k-means on the raw pixels with the same seed (fitted on the training rows, 10
starts, scored on the test rows) as the floor to beat. Writes per-seed figures, their mean ±
sd, and the command, commit, versions and machine to a JSON file, rewritten after every seed.

    OMP_NUM_THREADS=1 nice python benchmarks/clustering_digits.py --seeds 0 1 2 3 4 \\
        --runs ~/pyrovae-runs/repro --out benchmarks/results/clustering_digits_k10.json

Seeds run in parallel as separate invocations (each with its own ``--out``) are joined into
one file, their summaries recomputed, with ``--merge A.json B.json ... --out OUT.json``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyro
import sklearn
import torch

import pyrovae
from pyrovae.infer.clustering import clustering_scores

ROOT = Path(__file__).parents[1]
TRAIN = ["train", "--prior", "{name: mixture, num_components: 10}", "--latent-dim", "10"]


def pyrovae_cli(*args):
    """``python -m pyrovae ARGS`` in a fresh process: its standard output."""
    command = [sys.executable, "-m", "pyrovae", *map(str, args)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def kmeans_scores(seed):
    from sklearn.cluster import KMeans

    digits = pyrovae.data.load("digits")
    km = KMeans(10, n_init=10, random_state=seed).fit(digits.train.x.double().numpy())
    return clustering_scores(km.predict(digits.test.x.double().numpy()), digits.test.y)


def summary(values):
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def commit():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    return git("rev-parse", "HEAD").strip() + (
        " (modified)" if git("status", "--porcelain") else ""
    )


def summarize(report):
    """Add the mean ± sd of the per-seed figures (and of k-means's) to ``report``."""
    for key in ("accuracy", "nmi"):
        report[key] = summary([r[key] for r in report["seeds"]])
        report[f"kmeans_{key}"] = summary([r["kmeans_raw_pixels"][key] for r in report["seeds"]])
    return report


def merge(paths):
    """One report from the reports at ``paths`` (the same command, commit and versions)."""
    reports = [json.loads(Path(path).read_text()) for path in paths]
    for key in ("command", "commit", "versions"):
        if len({json.dumps(r[key]) for r in reports}) > 1:
            raise ValueError(f"the reports differ in {key!r}: merge only runs of one program")
    seeds = sorted((row for r in reports for row in r["seeds"]), key=lambda row: row["seed"])
    return summarize({**reports[0], "seeds": seeds})


def main(args):
    if args.merge:
        Path(args.out).write_text(json.dumps(merge(args.merge), indent=1) + "\n")
        return
    report = {
        "command": "pyrovae " + " ".join(TRAIN[:2]) + f' "{TRAIN[2]}" ' + " ".join(TRAIN[3:])
        + " --seed S --out DIR; pyrovae evaluate DIR --num-samples 10",
        "commit": commit(),
        "versions": {"torch": torch.__version__, "pyro": pyro.__version__,
                     "scikit-learn": sklearn.__version__, "python": platform.python_version()},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch on the CPU",
        "seeds": [],
    }  # fmt: skip
    for seed in args.seeds:
        out = Path(args.runs).expanduser() / f"clusters-s{seed}"
        start = time.perf_counter()
        pyrovae_cli(*TRAIN, "--seed", seed, "--out", out, "--overwrite", "--quiet")
        scores = json.loads(pyrovae_cli("evaluate", out, "--num-samples", 10))
        row = {
            "seed": seed,
            "accuracy": scores["accuracy"],
            "nmi": scores["nmi"],
            "seconds": round(time.perf_counter() - start),
            "kmeans_raw_pixels": kmeans_scores(seed),
        }
        report["seeds"].append(row)
        print(json.dumps(row), flush=True)
        Path(args.out).write_text(json.dumps(summarize(report), indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", default="runs", help="folder for the run folders clusters-sS")
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "clustering_digits_k10.json")
    )
    parser.add_argument("--merge", nargs="+", help="join these reports into --out, run nothing")
    main(parser.parse_args())
