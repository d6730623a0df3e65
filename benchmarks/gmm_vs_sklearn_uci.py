"""Our GaussianMixture (EM start, then SVI) against scikit-learn's on small real data sets.

Data: scikit-learn's wine (K = 3), breast cancer (K = 2) and iris (K = 3), each split 75/25
at random (the seed) and standardised with the training rows' mean and sd, and "singular
blobs" (600 rows: three 5-d blobs, then 2·x₀ + 1 and the constant 1, so that every component's
sample covariance is singular; K = 3; not standardised). For each covariance type ("full",
"diag") and seed (0, 1, 2):

* scikit-learn: ``GaussianMixture(K, covariance_type, n_init=3, random_state=seed)``, float64;
* ours: ``pyrovae.models.GaussianMixture(K, D, covariance)`` in float32, started by
  ``initialize(x, seed)`` (scikit-learn's EM, n_init=3, the same seed: "start"), then
  ``pyrovae.fit`` for ``--epochs`` epochs, for each Adam learning rate and batch size of
  ``--settings`` (``LR:BATCH``, batch 0 = all training rows): fit's defaults (10⁻³, 128), the
  issue's 10⁻² at 128, and 10⁻² full batch.

Reported per row: mean ± sd over the seeds (n = number of seeds) of the training and test mean
log-likelihood per row (nats, higher is better), ours (after SVI), our start, and
scikit-learn's; the drift ``end − start`` on the training rows (its minimum over seeds: the
SVI steps should never lose more than 0.005 nats from EM's optimum); the smallest eigenvalue
of a fitted covariance (float64 from our float32 Cholesky factor; the floor is reg_covar =
10⁻⁶).

    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/gmm_vs_sklearn_uci.py
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyro
import sklearn
import torch
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_blobs
from sklearn.mixture import GaussianMixture as SklearnGMM
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import pyrovae
from pyrovae.models import GaussianMixture

OUT = Path(__file__).parent / "results" / "gmm_vs_sklearn_uci.json"


def singular_blobs(seed):
    x, _ = make_blobs(600, n_features=5, centers=3, random_state=0)
    x = np.hstack([x, 2 * x[:, :1] + 1, np.ones((len(x), 1))])
    return train_test_split(x, test_size=0.25, random_state=seed)


def standardised(load):
    def split(seed):
        train, test = train_test_split(load().data, test_size=0.25, random_state=seed)
        scaler = StandardScaler().fit(train)
        return scaler.transform(train), scaler.transform(test)

    return split


DATASETS = {  # name: (split(seed) -> (train, test), K)
    "wine": (standardised(load_wine), 3),
    "breast_cancer": (standardised(load_breast_cancer), 2),
    "iris": (standardised(load_iris), 3),
    "singular_blobs": (singular_blobs, 3),
}


def one_run(name, covariance, lr, batch_size, seed, epochs):
    split, k = DATASETS[name]
    train, test = split(seed)
    ref = SklearnGMM(k, covariance_type=covariance, n_init=3, random_state=seed).fit(train)
    xt, xs = (torch.tensor(a, dtype=torch.float32) for a in (train, test))
    model = GaussianMixture(k, train.shape[1], covariance)
    model.initialize(xt, seed=seed)
    with torch.no_grad():
        start = [model.log_prob(a).mean().item() for a in (xt, xs)]
    pyro.clear_param_store()
    batch_size = batch_size or len(xt)
    pyrovae.fit(model, xt, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                initialize=False, progress=False)  # fmt: skip
    with torch.no_grad():
        end = [model.log_prob(a).mean().item() for a in (xt, xs)]
        tril = model.scale_tril.double()
        floor = torch.linalg.eigvalsh(tril @ tril.mT).min().item()
    return {
        "train": end[0], "test": end[1], "start_train": start[0], "start_test": start[1],
        "sklearn_train": ref.score(train), "sklearn_test": ref.score(test),
        "drift": end[0] - start[0], "min_eigenvalue": floor,
    }  # fmt: skip


def summary(runs):
    row = {}
    for key in runs[0]:
        values = np.array([r[key] for r in runs])
        row[key] = {"mean": values.mean(), "sd": values.std(ddof=1), "n": len(values)}
    row["drift"]["min"] = min(r["drift"] for r in runs)
    row["min_eigenvalue"]["min"] = min(r["min_eigenvalue"] for r in runs)
    return row


def commit():
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "pyrovae"], capture_output=True,
                               text=True, cwd=Path(__file__).parents[1]).stdout.strip()  # fmt: skip
        return head + (" (pyrovae/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(args):
    torch.set_num_threads(1)
    rows, at = [], commit()  # the code that runs, before any later commit
    for name in DATASETS:
        for covariance in ("full", "diag"):
            for setting in args.settings:
                lr, batch = float(setting.split(":")[0]), int(setting.split(":")[1])
                tic = time.time()
                runs = [one_run(name, covariance, lr, batch, s, args.epochs) for s in args.seeds]
                row = {"dataset": name, "K": DATASETS[name][1], "covariance": covariance,
                       "lr": lr, "epochs": args.epochs, "batch_size": batch or "all",
                       **summary(runs), "runs": runs}  # fmt: skip
                rows.append(row)
                m = lambda key, row=row: f"{row[key]['mean']:.3f} ± {row[key]['sd']:.3f}"  # noqa: E731
                print(f"{name:15s} {covariance} lr={lr:g} batch={batch or 'all'}  "
                      f"train {m('train')} (start "
                      f"{m('start_train')}, sklearn {m('sklearn_train')})  test {m('test')} "
                      f"(sklearn {m('sklearn_test')})  drift min {row['drift']['min']:+.4f}  "
                      f"min eig {row['min_eigenvalue']['min']:.3g}  {time.time() - tic:.0f}s",
                      flush=True)  # fmt: skip
    report = {
        "benchmark": "gmm_vs_sklearn_uci",
        "commit": at,
        "command": "OMP_NUM_THREADS=1 python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
        "torch threads 1",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pyro-ppl": pyro.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },  # fmt: skip
        "units": "mean log-likelihood per row, nats (higher is better); mean ± sd over seeds",
        "rows": rows,
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--settings", nargs="+", default=["1e-3:128", "1e-2:128", "1e-2:0"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    main(parser.parse_args())
