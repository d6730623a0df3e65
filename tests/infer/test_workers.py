"""Worker processes for Dataset inputs: the same batches, losses and parameters as one process."""

import pyro
import pytest
import torch
from torch.utils.data import TensorDataset

import pyrovae
from pyrovae.data import Data
from pyrovae.infer.callbacks import Callback


class Losses(Callback):
    def __init__(self):
        self.losses = []

    def on_step_end(self, state):
        self.losses.append(state.loss)


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2)])
def test_workers_read_the_batches_of_one_process(digits, binarize, rank, world_size):
    data = Data(TensorDataset(digits.train.x, digits.train.y), binarize=binarize)
    for epoch in (0, 2):
        alone = list(data.batches(100, epoch, 5, rank, world_size, labels=True))
        workers = list(data.batches(100, epoch, 5, rank, world_size, labels=True, num_workers=2))
        assert len(alone) == len(workers) == -(-1150 // (100 * world_size))
        assert all(torch.equal(a, b) for a, b in zip(alone, workers, strict=True))


def _fit(digits, num_workers, **options):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model = pyrovae.VAE(64, 2, hidden=(16,))
    data = Data(TensorDataset(digits.train.x), digits.valid.x, binarize="dynamic")
    losses = Losses()
    history = pyrovae.fit(
        model,
        data,
        epochs=2,
        batch_size=100,
        progress=False,
        num_workers=num_workers,
        callbacks=[losses],
        **options,
    )
    history.pop("seconds")
    return model, history, losses.losses


def test_two_workers_train_bit_for_bit_as_one_process(digits, tmp_path):
    model_0, history_0, losses_0 = _fit(digits, 0)
    model_2, history_2, losses_2 = _fit(digits, 2)
    assert len(losses_0) == 24 and losses_0 == losses_2 and history_0 == history_2
    state_0, state_2 = model_0.state_dict(), model_2.state_dict()
    assert all(torch.equal(state_0[k], state_2[k]) for k in state_0)


def test_num_workers_must_be_a_count(digits):
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0, got -1"):
        _fit(digits, -1)
