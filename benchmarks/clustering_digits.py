"""The README's clustering command on the offline digits, one seed a run.

For seed S: ``pyrovae train --prior "{name: mixture, num_components: 10, covariance: full}"
--latent-dim 10 --seed S`` then ``pyrovae evaluate --num-samples 10`` of that run (accuracy
and NMI are those of the clusters at the posterior mode, which the number of importance
samples of the log-likelihood does not change), each in its own process; and
scikit-learn's k-means on the raw pixels with the same seed (fitted on the training rows, 10
starts, scored on the test rows) as the floor to beat. Rows go to
``benchmarks/results/clustering_digits/clustering_digits.json``.

    python -m benchmarks clustering_digits --full   # seeds 0-4, 4-15 minutes a seed
"""

import json
import subprocess
import sys

import pyrovae
from pyrovae.infer.clustering import clustering_scores

PRIOR = "{name: mixture, num_components: 10, covariance: full}"
TRAIN = ["train", "--prior", PRIOR, "--latent-dim", "10"]
QUICK = ["--epochs", "2", "--pretrain-epochs", "2"]
FULL = []
SEEDS = (0, 1, 2, 3, 4)


def arguments(parser):
    for option in ("--epochs", "--pretrain-epochs"):
        parser.add_argument(
            option, type=int, help=f"pyrovae train's {option} (default: the CLI's, the README's)"
        )
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")


def pyrovae_cli(*args):
    """``python -m pyrovae ARGS`` in a fresh process: its standard output."""
    command = [sys.executable, "-m", "pyrovae", *map(str, args)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def kmeans_scores(seed):
    from sklearn.cluster import KMeans

    digits = pyrovae.data.load("digits")
    km = KMeans(10, n_init=10, random_state=seed).fit(digits.train.x.double().numpy())
    return clustering_scores(km.predict(digits.test.x.double().numpy()), digits.test.y)


def main(args, session):
    budget = {"--epochs": args.epochs, "--pretrain-epochs": args.pretrain_epochs}
    train = TRAIN + [w for option, n in budget.items() if n for w in (option, str(n))]
    out = session.folder("readme-command", f"clusters-s{args.seed}")
    pyrovae_cli(*train, "--seed", args.seed, "--out", out, "--overwrite", "--quiet")
    scores = json.loads(pyrovae_cli("evaluate", out, "--num-samples", 10))
    row = {
        "seed": args.seed,
        "accuracy": scores["accuracy"],
        "nmi": scores["nmi"],
        "kmeans_raw_pixels": kmeans_scores(args.seed),
        "epochs": args.epochs,
        "pretrain_epochs": args.pretrain_epochs,
    }
    session.merge("clustering_digits.json", row, ("seed", "epochs", "pretrain_epochs"))
