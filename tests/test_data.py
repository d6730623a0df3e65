import struct

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from pyrovae import data


def test_digits_split_is_fixed_disjoint_and_complete():
    a, b = data.load("digits"), data.load("digits")
    assert (len(a.train), len(a.valid), len(a.test)) == (1150, 288, 359)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)
    rows = torch.cat([a.train.x, a.valid.x, a.test.x])
    reference = torch.as_tensor(load_digits().data / 16.0, dtype=torch.float32)
    # every image appears exactly once across the three splits
    assert torch.equal(rows[rows.sum(1).argsort(stable=True)].sum(0), reference.sum(0))
    assert len(rows) == len(reference) and rows.min() == 0 and rows.max() == 1
    assert a.image_shape == (8, 8)


def test_dynamic_binarization_redraws_per_epoch_and_repeats_per_seed():
    d = data.load("digits", binarize="dynamic")
    e0 = torch.cat(list(d.batches(100, epoch=0, seed=1)))
    e0_again = torch.cat(list(d.batches(100, epoch=0, seed=1)))
    e1 = torch.cat(list(d.batches(100, epoch=1, seed=1)))
    assert torch.equal(e0, e0_again)
    assert not torch.equal(e0.sort(0).values, e1.sort(0).values)
    assert set(e0.unique().tolist()) == {0.0, 1.0}
    # a fresh Bernoulli draw: the mean pixel matches the grey levels
    assert abs(e0.mean().item() - d.train.x.mean().item()) < 0.01
    # test rows are binarized once, identically on every load
    assert torch.equal(d.test.x, data.load("digits", binarize="dynamic").test.x)
    assert set(d.test.x.unique().tolist()) == {0.0, 1.0}


def test_static_binarization_is_one_fixed_draw():
    d = data.load("digits", binarize="static")
    batches = torch.cat(list(d.batches(2000, epoch=0, seed=0)))
    assert torch.equal(batches.sort(0).values, d.train.x.sort(0).values)


def test_batches_cover_every_row_once_and_shard_across_ranks():
    d = data.from_arrays(torch.arange(40.0).reshape(20, 2) / 40, test_fraction=0, valid_fraction=0)
    rows = torch.cat(list(d.batches(6, epoch=0, seed=0)))
    assert sorted(rows[:, 0].tolist()) == sorted(d.train.x[:, 0].tolist())
    shards = [torch.cat(list(d.batches(3, 0, 0, rank=r, world_size=2))) for r in range(2)]
    assert torch.equal(torch.cat(shards).sort(0).values, rows.sort(0).values)


def test_from_arrays_accepts_images_and_refuses_bad_data():
    d = data.from_arrays(np.random.default_rng(0).random((10, 3, 4)), y=np.arange(10))
    assert d.input_dim == 12 and d.image_shape == (3, 4)
    with pytest.raises(ValueError, match="floating point"):
        data.from_arrays(np.ones((10, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="NaN or inf"):
        data.from_arrays(np.full((10, 4), np.inf))
    with pytest.raises(ValueError, match="labels must have shape"):
        data.from_arrays(np.ones((10, 4)), y=np.ones(3))
    with pytest.raises(ValueError, match="binarize must be one of"):
        data.from_arrays(np.ones((10, 4)), binarize="yes")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="known datasets: digits, mnist, fashion-mnist"):
        data.load("cifar")


def test_missing_mnist_files_name_the_folder_and_files(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(FileNotFoundError) as err:
        data.load("mnist", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message


def _write_idx(path, array):
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    path.write_bytes(struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes())


def test_mnist_reads_local_files_from_the_environment_root(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {
        "train": rng.integers(0, 256, (12, 28, 28)),
        "t10k": rng.integers(0, 256, (5, 28, 28)),
    }
    for split, x in images.items():
        _write_idx(raw / f"{split}-images-idx3-ubyte", x.astype(np.uint8))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(len(x), dtype=np.uint8) % 10)
    monkeypatch.setenv("PYROVAE_DATA", str(tmp_path))
    d = data.load("mnist")
    assert (len(d.train), len(d.valid), len(d.test)) == (10, 2, 5)
    expected = torch.as_tensor(images["t10k"].reshape(5, -1) / 255.0, dtype=torch.float32)
    assert torch.allclose(d.test.x, expected)
    assert d.test.y.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("side", [7, 12])
def test_affine_matches_scipy_bilinear_transform(side):
    from scipy import ndimage

    gen = torch.Generator().manual_seed(3)
    x = torch.rand(3, side * side, generator=gen, dtype=torch.float64)
    angle = torch.tensor([23.0, -8.5, 90.0], dtype=torch.float64)
    shift = torch.tensor([[1.3, -0.7], [0.0, 2.0], [-2.5, 0.4]], dtype=torch.float64)
    out = data.affine(x, angle, shift)
    centre = np.full(2, (side - 1) / 2)
    for row, a, (right, down) in zip(
        range(3), np.deg2rad(angle.numpy()), shift.numpy(), strict=True
    ):
        # in (row, column) index order, output[o] = input[M (o - c - t) + c]: M turns back by a
        m = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        offset = centre - m @ (centre + np.array([down, right]))
        expected = ndimage.affine_transform(
            x[row].reshape(side, side).numpy(), m, offset, order=1, mode="grid-constant"
        )
        assert out[row].reshape(side, side).numpy() == pytest.approx(expected, abs=1e-12)


def test_affine_turns_counter_clockwise_and_moves_right_and_down():
    x = torch.zeros(1, 49)
    x[0, 2 * 7 + 5] = 1.0  # row 2, column 5
    turned = data.affine(x, torch.tensor([90.0]), torch.zeros(1, 2)).reshape(7, 7)
    assert turned == pytest.approx(torch.rot90(x.reshape(7, 7), 1, (0, 1)), abs=1e-6)
    moved = data.affine(x, torch.tensor([0.0]), torch.tensor([[1.0, 2.0]])).reshape(7, 7)
    assert (moved > 0.5).nonzero().tolist() == [[4, 6]]
    with pytest.raises(ValueError, match="not square images"):
        data.affine(torch.zeros(1, 10), torch.zeros(1), torch.zeros(1, 2))


def test_random_affine_draws_within_its_ranges_per_row_and_per_generator():
    side, n = 21, 400
    x = torch.zeros(n, side * side)
    x[:, (side // 2) * side + side // 2] = 1.0  # the centre pixel: it moves by the shift alone
    moved = data.random_affine(
        x, degrees=0.0, shift=0.1, generator=torch.Generator().manual_seed(0)
    )
    grid = torch.arange(side, dtype=x.dtype)
    images = moved.reshape(n, side, side)
    down = (images.sum(2) * grid).sum(1) - side // 2  # centre of mass, pixels
    right = (images.sum(1) * grid).sum(1) - side // 2
    limit = 0.1 * side
    for offsets in (right, down):
        assert offsets.abs().max() <= limit + 1e-5
        # uniform on (−limit, limit): mean 0, variance limit² / 3
        assert offsets.mean().abs() < 4 * limit / (3 * n) ** 0.5
        assert offsets.var().item() == pytest.approx(limit**2 / 3, rel=0.2)
    x = torch.zeros(n, side * side)
    x[:, (side // 2) * side + side // 2 + 8] = 1.0  # 8 pixels right of the centre: it turns
    turned = data.random_affine(
        x, degrees=10.0, shift=0.0, generator=torch.Generator().manual_seed(1)
    )
    images = turned.reshape(n, side, side)
    up = side // 2 - (images.sum(2) * grid).sum(1)
    right = (images.sum(1) * grid).sum(1) - side // 2
    angles = torch.rad2deg(torch.atan2(up, right))  # counter-clockwise, on screen
    assert angles.abs().max() <= 10.5
    assert angles.var().item() == pytest.approx(10.0**2 / 3, rel=0.2)
    again = data.random_affine(
        x, degrees=10.0, shift=0.0, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(turned, again)
    assert torch.equal(data.random_affine(x[:3], degrees=0.0, shift=0.0), x[:3])
