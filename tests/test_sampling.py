"""Batches that deal labelled rows into every batch (semi-supervised training)."""

import math

import pytest
import torch

from pyrovae import sampling
from pyrovae.data import Data, Split


def _labelled_data(n=103, n_labelled=7):
    """Rows whose single value is their index; the first rows of every 15 labelled."""
    x = torch.arange(n, dtype=torch.float64)[:, None] / n
    y = torch.full((n,), -1)
    y[torch.arange(n_labelled) * 15] = torch.arange(n_labelled) % 3
    return Data(Split(x, y)), y


def _index(batch, n=103):
    return (batch[:, 0] * n).round().long()


def test_every_batch_holds_the_labelled_rows_first_and_every_unlabelled_row_comes_once():
    data, y = _labelled_data()
    batches = list(data.batches(10, epoch=2, seed=1, labels=True, labelled_per_batch=3))
    unlabelled = (y < 0).nonzero()[:, 0]
    assert len(batches) == math.ceil(len(unlabelled) / 7)  # one pass over unlabelled rows
    assert [len(b) for b in batches] == sampling.batch_sizes(y, len(y), 10, 3)
    seen = []
    for b in batches:
        rows, labels = _index(b), b[:, -1].long()
        assert (labels[:3] >= 0).all() and (labels[3:] < 0).all()
        assert torch.equal(labels, y[rows])  # each row keeps its own label
        seen += rows[3:].tolist()
    assert sorted(seen) == unlabelled.tolist()


def test_labelled_rows_recur_evenly_and_the_epoch_repeats_per_seed():
    data, y = _labelled_data()
    batches = list(data.batches(10, epoch=0, seed=4, labels=True, labelled_per_batch=3))
    visits = torch.bincount(torch.cat([_index(b)[:3] for b in batches]), minlength=len(y))
    labelled = y >= 0
    assert (visits[~labelled] == 0).all()
    # 14 batches × 3 places over 7 rows, reshuffled at every pass: 6 visits each
    assert (visits[labelled] == len(batches) * 3 // 7).all()
    again = list(data.batches(10, epoch=0, seed=4, labels=True, labelled_per_batch=3))
    other = list(data.batches(10, epoch=1, seed=4, labels=True, labelled_per_batch=3))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(batches, other, strict=False))


def test_ranks_share_each_global_batch_with_as_many_labelled_rows_each():
    data, _ = _labelled_data()
    whole = list(data.batches(8, 0, 3, labels=True, labelled_per_batch=2))
    shards = [list(data.batches(4, 0, 3, r, 2, labels=True, labelled_per_batch=1)) for r in (0, 1)]
    for batch, a, b in zip(whole, *shards, strict=True):
        assert (a[:1, -1] >= 0).all() and (b[:1, -1] >= 0).all()
        assert (a[1:, -1] < 0).all() and (b[1:, -1] < 0).all()
        assert torch.equal(torch.cat([a, b]).sort(0).values, batch.sort(0).values)


def test_plain_batches_are_unchanged_by_the_option_at_zero():
    data, _ = _labelled_data()
    plain = list(data.batches(10, 0, 5, labels=True))
    zero = list(data.batches(10, 0, 5, labels=True, labelled_per_batch=0))
    assert all(torch.equal(a, b) for a, b in zip(plain, zero, strict=True))
    assert sampling.batch_sizes(None, 103, 10, 0) == [len(b) for b in plain]


@pytest.mark.parametrize(
    "n, size, expected",
    [
        (133, 128, [133]),  # 5 rows left: they join the only batch
        (426, 128, [128, 128, 170]),  # 42 < 64: joined
        (448, 128, [128, 128, 128, 64]),  # 64 = half a batch: kept
        (256, 128, [128, 128]),
        (100, 128, [100]),
        (5, 4, [5]),
    ],
)
def test_a_last_batch_under_half_a_batch_joins_the_one_before(n, size, expected):
    data = Data(Split(torch.arange(n, dtype=torch.float64)[:, None]))
    batches = list(data.batches(size, epoch=1, seed=2))
    assert [len(b) for b in batches] == expected == sampling.batch_sizes(None, n, size, 0)
    assert sorted(torch.cat(batches)[:, 0].long().tolist()) == list(range(n))  # each row once
    shards = [list(data.batches(size // 2, 1, 2, r, 2)) for r in (0, 1)]  # two processes
    for batch, a, b in zip(batches, *shards, strict=True):
        assert torch.equal(torch.cat([a, b]).sort(0).values, batch.sort(0).values)


@pytest.mark.parametrize("value", [-1, 2.5, True])
def test_fit_refuses_a_bad_labelled_per_batch(value):
    import pyrovae
    from pyrovae.models import SemiSupervisedVAE

    data, _ = _labelled_data()
    with pytest.raises(ValueError, match="labelled_per_batch must be an integer >= 0"):
        pyrovae.fit(SemiSupervisedVAE(1, 2, 3), data, labelled_per_batch=value, progress=False)
