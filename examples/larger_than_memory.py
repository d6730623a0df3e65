"""
Training from a data set larger than memory
===========================================

Train from a data set larger than the memory the process may use.

The rows live in a ``numpy.memmap`` on disk (here the digits' training images repeated, as
float32); a map-style ``Dataset`` hands ``pyrovae.fit`` one batch of rows at a time
(``__getitems__``), so the process's own memory stays constant whatever the file's size. The
limit is real: ``resource.setrlimit(RLIMIT_DATA)`` caps the process's private memory
(Linux), which a file on disk read through a mapping does not count against. A callback prints
the private (``RssAnon``) and file-backed (``RssFile``, page cache the kernel may drop)
resident memory after each epoch.

Run it with::

    python examples/larger_than_memory.py -n 1 --rows 4400000 --limit-mb 1000 --batch-size 1000

(a 1,074 MB file; measured once, on earlier code: private memory 447 MB after the epoch, as
with 23,000 rows, 447 to 448 MB for each of seeds 0-2; README.md § Data sets larger than
memory.) A cap much below 1,000 MB stops torch itself, whose private address space is about
that size.
"""

import argparse
import resource
from pathlib import Path

import numpy as np
import pyro
import torch
from torch.utils.data import Dataset

import pyrovae
from pyrovae import data, plots
from pyrovae.infer.callbacks import Callback


class MemmapRows(Dataset):
    """Rows ``(D,)`` of a float32 ``(N, D)`` file, read on demand."""

    def __init__(self, path, num_rows, dim):
        self.x = np.memmap(path, dtype=np.float32, mode="r", shape=(num_rows, dim))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return torch.from_numpy(np.array(self.x[i]))

    def __getitems__(self, index):  # one read per batch, in the order asked
        return list(torch.from_numpy(self.x[np.asarray(index)]))


class MemoryReport(Callback):
    def on_epoch_end(self, state):
        status = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
        anon, file = (int(status[k].split()[0]) // 1024 for k in ("RssAnon", "RssFile"))
        print(f"epoch {state.epoch + 1}: private memory {anon} MB, file pages {file} MB")


def write_rows(path, rows, num_rows):
    """``num_rows`` rows on disk: ``rows`` repeated, written a block at a time."""
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(num_rows, rows.shape[1]))
    for start in range(0, num_rows, len(rows)):
        out[start : start + len(rows)] = rows[: num_rows - start]
    out.flush()
    return path


def main(args):
    pyro.set_rng_seed(args.seed)
    digits = data.load("digits", binarize="static")  # the same 0/1 rows in every copy
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_rows(out / "rows.f32", digits.train.x.numpy(), args.rows)
    size_mb = path.stat().st_size / 2**20
    if args.limit_mb:
        limit = args.limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        cap = f"private memory capped at {args.limit_mb} MB"
    else:
        cap = "private memory not capped (--limit-mb caps it)"
    print(f"{args.rows:,} rows, {size_mb:.1f} MB on disk; {cap}")
    train = MemmapRows(path, args.rows, digits.input_dim)
    rows = data.Data(train, digits.valid.x, digits.test.x, image_shape=(8, 8))
    vae = pyrovae.VAE(digits.input_dim, 2, hidden=(128,))
    history = pyrovae.fit(
        vae,
        rows,
        epochs=args.num_epochs,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        callbacks=[MemoryReport()],
    )
    print(f"test ELBO {history['test_elbo'][-1]:.2f} nats per image")
    print("seconds per epoch:", " ".join(f"{s:.2f}" for s in history["seconds"]))
    picture = plots.sample_grid(vae, 64, digits.image_shape, out / "samples.png")
    path.unlink()
    print(f"samples written to {picture}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Train from a memory-mapped file")
    parser.add_argument("-n", "--num-epochs", default=2, type=int)
    parser.add_argument("--rows", default=23_000, type=int, help="rows in the file")
    parser.add_argument("--limit-mb", default=0, type=int, help="cap on private memory (0: none)")
    parser.add_argument("--batch-size", default=1000, type=int)
    parser.add_argument("--num-workers", default=0, type=int, help="processes reading rows")
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--out", default="runs/memmap")
    main(parser.parse_args())
