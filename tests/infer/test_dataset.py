"""fit and evaluate on a map-style Dataset: the same batches, numbers and resume as the same
rows given as tensors. Run as a script (``python tests/infer/test_dataset.py OUT``) it trains from a
Dataset into OUT, for the SIGKILL test."""

import json
import sys
from pathlib import Path

import pyro
import pytest
import torch
from torch.utils.data import TensorDataset

import pyrovae
from pyrovae.data import Data, Split

OPTIONS = {"epochs": 4, "batch_size": 10, "warmup_epochs": 2, "progress": False}


def _data(as_dataset):
    d = pyrovae.data.load("digits")
    if as_dataset:  # (x, y) pairs for training, bare rows ((x,)) for validation and test
        parts = [TensorDataset(d.train.x, d.train.y), TensorDataset(d.valid.x), d.test.x]
        return Data(*parts, image_shape=(8, 8))
    return Data(Split(d.train.x, d.train.y), Split(d.valid.x), Split(d.test.x), image_shape=(8, 8))


def _run(out, as_dataset, resume=False):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model = pyrovae.VAE(64, 2, hidden=(128, 64), likelihood="gaussian")
    history = pyrovae.fit(model, _data(as_dataset), out=out, resume=resume, **OPTIONS)
    history.pop("seconds")
    return model, history


def _same_parameters(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_dataset_gives_the_same_batches_as_its_rows():
    tensors, dataset = _data(False), _data(True)
    for epoch in (0, 3):
        a = list(tensors.batches(100, epoch, seed=5, rank=1, world_size=2))
        b = list(dataset.batches(100, epoch, seed=5, rank=1, world_size=2))
        assert len(a) == len(b) == 6 and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert dataset.input_dim == 64 and torch.equal(dataset.train.y, tensors.train.y)
    # dynamic binarisation: each rank's rows of the same global draw
    x = tensors.train.x
    a = Data(x, binarize="dynamic").batches(100, 2, seed=5, rank=1, world_size=2)
    b = Data(TensorDataset(x), binarize="dynamic").batches(100, 2, seed=5, rank=1, world_size=2)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.slow
def test_a_dataset_run_equals_the_tensor_run_also_after_sigkill_and_resume(
    tmp_path, killed_after_first_checkpoint
):
    model, history = _run(None, as_dataset=False)
    # a Dataset run killed mid-training in another process, then resumed here
    out = tmp_path / "killed"
    killed_after_first_checkpoint([__file__, str(out)], out)
    resumed, resumed_history = _run(out, as_dataset=True, resume=True)
    assert resumed_history == history
    assert _same_parameters(resumed, model)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["train_elbo"] == history["train_elbo"]
    # evaluate reads a Dataset's test rows as well, with the same numbers
    a = pyrovae.evaluate(model, _data(False), num_samples=20)
    b = pyrovae.evaluate(model, _data(True), num_samples=20)
    assert a == b


def test_a_dataloader_is_refused_with_what_to_pass():
    loader = torch.utils.data.DataLoader(TensorDataset(torch.rand(8, 4)))
    with pytest.raises(ValueError, match="pass the DataLoader's .dataset"):
        pyrovae.fit(pyrovae.VAE(4, 2), loader, progress=False)


def test_items_must_be_rows_or_pairs():
    bad = [(torch.rand(4), 0, "extra")] * 5
    with pytest.raises(ValueError, match=r"a Dataset item must be a row, \(x,\) or \(x, y\)"):
        pyrovae.fit(pyrovae.VAE(4, 2), bad, progress=False)


if __name__ == "__main__":
    _run(Path(sys.argv[1]), as_dataset=True)


class _NoWholeRead(TensorDataset):
    """A Dataset that may be read a batch at a time only (as one larger than memory)."""

    def __getitems__(self, index):
        if len(index) > 10_000:  # fit checks the rows in chunks of 10,000
            raise AssertionError("read more than a batch at once")
        return [self[i] for i in index]


def test_a_vae_with_nothing_to_start_never_reads_all_training_rows():
    rows = torch.rand(20_001, 6).round()
    dataset = _NoWholeRead(rows)
    with pytest.raises(AssertionError, match="more than a batch"):
        _ = Data(pyrovae.data.as_split(dataset)).train.x  # the whole read fit must not do
    history = pyrovae.fit(pyrovae.VAE(6, 2, hidden=(8,)), dataset, epochs=1, batch_size=5000)
    assert len(history["epoch"]) == 1
