"""The row indices of each training batch of an epoch: plain shuffling, or batches that mix a
fixed number of labelled rows with unlabelled ones (for semi-supervised training).

With few labels among many rows (100 among 50,000), plain shuffling puts a labelled row in
one batch out of 500 on average: the labelled rows then act on the parameters almost never,
and a semi-supervised model's classifier learns little from them. :func:`mixed_batches`
instead deals the labelled rows, reshuffled at every pass, ``labelled_per_batch`` at a time
into every batch, so that an epoch (one pass over the unlabelled rows) visits each labelled
row about ``steps × labelled_per_batch / N_labelled`` times.
"""

import math
from collections.abc import Sequence

import torch


def plain_batches(n: int, size: int, gen: torch.Generator) -> Sequence[torch.Tensor]:
    """Index tensors of the global batches of ``size`` rows among ``n``: in order when one
    batch holds them all, else a permutation drawn from ``gen``, cut into batches of ``size``
    (:func:`batch_sizes`: a last batch shorter than half of ``size`` joins the one before)."""
    order = torch.arange(n) if size >= n else torch.randperm(n, generator=gen)
    return torch.split(order, batch_sizes(None, n, size, 0)) if n else ()


def mixed_batches(
    y: torch.Tensor, size: int, labelled: int, gen: torch.Generator
) -> list[torch.Tensor]:
    """Index tensors of global batches of ``size`` rows each made of ``labelled`` rows with a
    label (``y >= 0``) followed by ``size − labelled`` rows without (``y == −1``).

    The unlabelled rows are shuffled and cut into batches (the last may be short); the
    labelled rows, reshuffled at every pass through them, fill the first ``labelled`` places
    of every batch. ``y`` must hold both kinds, and ``0 < labelled < size``.
    """
    known = (y >= 0).nonzero()[:, 0]
    unknown = (y < 0).nonzero()[:, 0]
    unlabelled_order = unknown[torch.randperm(len(unknown), generator=gen)]
    parts = torch.split(unlabelled_order, size - labelled)
    passes = math.ceil(len(parts) * labelled / len(known))
    stream = torch.cat([known[torch.randperm(len(known), generator=gen)] for _ in range(passes)])
    return [
        torch.cat([stream[i * labelled : (i + 1) * labelled], part]) for i, part in enumerate(parts)
    ]


def batch_sizes(y: torch.Tensor | None, n: int, size: int, labelled: int) -> list[int]:
    """The number of rows of each global batch that :func:`plain_batches` (``labelled`` = 0)
    or :func:`mixed_batches` gives: a list, one entry per step of the epoch.

    Plain batches hold ``size`` rows, but a last batch of fewer than ``size / 2`` rows joins
    the one before (so that one holds between ``size`` and ``1.5 size``): every row still
    counts once an epoch, and no step is taken on a few rows. Each step's loss is its batch's
    mean, so a batch of 3 rows would move Adam as far as one of 128 on a gradient of
    ~√(128/3) ≈ 6.5 times the noise (Adam's step barely depends on the gradient's scale).
    At lr 10⁻², batches of 128, 100 epochs, such steps took a Gaussian mixture started at
    EM's optimum 0.02–0.06 nats per row below it on wine (133 training rows: a last batch of
    5) and 0.013–0.016 on breast cancer (426: 42), seeds 0–2; joined, it stays within 0.002
    (benchmarks/gmm_vs_sklearn_uci.py). Mixed batches keep their last one as it is (its
    labelled rows make it at least ``labelled`` long)."""
    if not labelled:
        sizes = [min(size, n - start) for start in range(0, n, size)]
        if len(sizes) > 1 and 2 * sizes[-1] < size:
            sizes[-2:] = [sizes[-2] + sizes[-1]]
        return sizes
    if y is None:
        raise ValueError("batches that mix labelled rows need labels y; got None")
    n_unlabelled = int((y < 0).sum())
    per = size - labelled
    return [labelled + min(per, n_unlabelled - start) for start in range(0, n_unlabelled, per)]
