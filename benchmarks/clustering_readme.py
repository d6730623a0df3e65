"""The README's clustering command on the offline digits, one seed a run: the script
``benchmarks/clustering_digits.py`` (its protocol in its docstring: ``pyrovae train`` with a
10-component mixture prior, ``pyrovae evaluate``, and k-means on the raw pixels with the same
seed), run by the runner so that each seed's row carries the harness's provenance. Writes the
rows to ``benchmarks/results/clustering_digits/clustering_digits.json``; the file the script
wrote before the runner is ``benchmarks/results/clustering_digits_k10.json``.

    python -m benchmarks clustering_digits --full   # seeds 0-4, about 6-12 minutes a seed
"""

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from . import clustering_digits

QUICK = ["--epochs", "2", "--pretrain-epochs", "2"]
FULL = []
SEEDS = (0, 1, 2, 3, 4)


def arguments(parser):
    for option in ("--epochs", "--pretrain-epochs"):
        parser.add_argument(
            option, type=int, help=f"pyrovae train's {option} (default: the CLI's, the README's)"
        )
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")


def main(args, session):
    budget = {"--epochs": args.epochs, "--pretrain-epochs": args.pretrain_epochs}
    train = clustering_digits.TRAIN + [w for o, n in budget.items() if n for w in (o, str(n))]
    runs = session.folder("readme-command", "")
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(clustering_digits, "TRAIN", train):
        out = Path(tmp) / "report.json"
        clustering_digits.main(SimpleNamespace(seeds=[args.seed], runs=runs, out=out, merge=None))
        (row,) = json.loads(out.read_text())["seeds"]
    row.update(epochs=args.epochs, pretrain_epochs=args.pretrain_epochs)
    session.merge("clustering_digits.json", row, ("seed", "epochs", "pretrain_epochs"))
