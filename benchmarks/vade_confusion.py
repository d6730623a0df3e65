"""Which digits each component of a VaDE run holds: the component × digit table on all 70,000
MNIST images, from the run's last checkpoint (``RUN_DIR/vade/checkpoint.pt`` as
``vade_mnist.py`` leaves it).

Rows: components, in the order of the digit the Hungarian matching gives them; entry (k, d):
how many images of digit d have argmax_c p(c | z) = k at the posterior mode. The diagonal is
what the accuracy counts. Prints the table, writes it to ``--out`` as JSON.

    python benchmarks/vade_confusion.py --data-root ../shared/data ~/pyrovae-runs/vade-all70k-s1
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from vade_mnist import build, everything

import pyrovae
from pyrovae.infer.checkpoint import load
from pyrovae.infer.clustering import matched_table


def table(model, x, y):
    """The (K, 10) component × digit counts of images ``x`` with labels ``y``, row d the
    component the Hungarian matching gives digit d (every component holding some image)."""
    with torch.no_grad():
        pred = torch.cat([model.cluster(b)[1] for b in torch.split(x, 2000)]).numpy()
    counts, rows, cols = matched_table(pred, y)
    return counts[rows[np.argsort(cols)]]


def main(args, session):
    torch.set_num_threads(1)
    model = build(argparse.Namespace(seed=0))
    state = load(Path(args.run_dir).expanduser() / "vade" / "checkpoint.pt", model)
    model.load_state_dict(state["model"])
    images = everything(pyrovae.data.load("mnist", root=args.data_root))
    counts = table(model, images.x, images.y)
    print(f"after {state['epoch']} VaDE epochs; accuracy {np.trace(counts) / counts.sum():.4f}")
    print("component of digit | " + " ".join(f"{d:>5}" for d in range(10)))
    for d, row in enumerate(counts):
        print(f"{d:>18} | " + " ".join(f"{n:>5}" for n in row))
    if args.out:
        Path(args.out).write_text(
            json.dumps({"run_dir": args.run_dir, "epochs": state["epoch"],
                        "counts": counts.tolist()}, indent=1)
        )  # fmt: skip


def arguments(parser):
    parser.add_argument("run_dir", help="a vade_mnist.py --run-dir")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=None, help="JSON: the table and the epochs run")
