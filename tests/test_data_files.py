"""The user's own files as Data: .npy, .npz, .csv (with a header or without), .pt and a folder
of images, each read back against numpy's, PIL's or torch's own readers; one-line errors for
files that cannot be used; a readable repr."""

import numpy as np
import pytest
import torch
from PIL import Image

from pyrovae import data
from pyrovae.data import load_file

N, D = 40, 5


def rows(n=N, d=D, seed=0):
    """Rows whose first value is the row's number, so that every split can be checked."""
    x = np.random.default_rng(seed).random((n, d)).astype(np.float32)
    x[:, 0] = np.arange(n)
    return x


def all_rows(d):
    """The rows of every split, back in the order of the file (by their first value)."""
    x = torch.cat([d.train.x, d.valid.x, d.test.x])
    return x[x[:, 0].argsort()]


def check_splits(d, x, y=None):
    """Fixed 28 / 4 / 8 splits holding every row once, each with its own label."""
    assert (len(d.train), len(d.valid), len(d.test)) == (28, 4, 8)
    np.testing.assert_array_equal(all_rows(d).numpy(), x)
    if y is not None:
        for split in (d.train, d.valid, d.test):
            np.testing.assert_array_equal(split.y.numpy(), y[split.x[:, 0].long().numpy()])


def test_npy_rows_and_a_label_column(tmp_path):
    x = rows()
    np.save(tmp_path / "x.npy", x)
    d = load_file(tmp_path / "x.npy")
    check_splits(d, x)
    assert d.name == "x.npy" and d.input_shape == (D,) and d.train.y is None
    again = load_file(tmp_path / "x.npy")  # the same permutation every time
    assert torch.equal(again.train.x, d.train.x) and torch.equal(again.test.x, d.test.x)
    y = np.arange(N) % 3
    np.save(tmp_path / "xy.npy", np.column_stack([x, y]).astype(np.float32))
    check_splits(load_file(tmp_path / "xy.npy", labels=-1), x, y)
    check_splits(load_file(tmp_path / "xy.npy", labels="5"), x, y)


def test_npz_by_key_and_by_default(tmp_path):
    x, y = rows(), np.arange(N) % 4
    np.savez(tmp_path / "a.npz", images=x, classes=y)
    check_splits(load_file(tmp_path / "a.npz", labels="classes"), x, y)
    check_splits(load_file(tmp_path / "a.npz", key="images", labels="classes"), x, y)
    np.savez(tmp_path / "b.npz", other=y.astype(np.float32), rows=x)
    check_splits(load_file(tmp_path / "b.npz", key="rows"), x)


@pytest.mark.parametrize("header", [True, False])
def test_csv_with_or_without_a_header_matches_numpy(tmp_path, header):
    x, y = rows(), np.arange(N) % 2
    table = np.column_stack([x[:, :2], y, x[:, 2:]])
    path = tmp_path / "t.csv"
    names = "id,a,label,b,c,d" if header else ""
    np.savetxt(path, table, delimiter=",", header=names, comments="", fmt="%.9g")
    reference = np.loadtxt(path, delimiter=",", skiprows=int(header), dtype=np.float32)
    d = load_file(path, labels="label" if header else 2)
    check_splits(d, np.delete(reference, 2, axis=1), y)
    for index in (2, "2", -4, "-4"):  # the same column by index, as from a command line too
        check_splits(load_file(path, labels=index), np.delete(reference, 2, axis=1), y)


def test_pt_tensor_and_dict(tmp_path):
    x, y = torch.from_numpy(rows()), torch.arange(N) % 5
    torch.save(x, tmp_path / "x.pt")
    check_splits(load_file(tmp_path / "x.pt"), x.numpy())
    torch.save({"x": x, "y": y}, tmp_path / "xy.pt")
    check_splits(load_file(tmp_path / "xy.pt", labels="y"), x.numpy(), y.numpy())


@pytest.mark.parametrize("mode, channels", [("L", 1), ("RGB", 3), ("RGBA", 4)])
def test_a_folder_of_images_keeps_c_h_w(tmp_path, mode, channels):
    rng = np.random.default_rng(0)
    shape = (6, 4) if channels == 1 else (6, 4, channels)
    pixels = rng.integers(0, 256, size=(12, *shape), dtype=np.uint8)
    for i, p in enumerate(pixels):
        Image.fromarray(p, mode).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "notes.txt").write_text("not an image")  # other files are left alone
    d = load_file(tmp_path)
    assert d.input_shape == (channels, 6, 4)
    assert d.image_shape == ((6, 4) if channels == 1 else (channels, 6, 4))
    x = torch.cat([d.train.x, d.valid.x, d.test.x]).numpy()
    expected = pixels.reshape(12, 6, 4, channels).transpose(0, 3, 1, 2).reshape(12, -1) / 255
    order = [np.flatnonzero(np.all(np.isclose(expected, r), axis=1))[0] for r in x]
    assert sorted(order) == list(range(12))  # every image once, its pixels / 255


def _bad_csv(text):
    return _save("bad.csv", text, lambda path, value: path.write_text(value))


def _save(name, value, saver):
    def make(path):
        saver(path / name, value)
        return path / name

    return make


def _image_folder(sizes):
    def make(path):
        for i, (mode, size) in enumerate(sizes):
            Image.new(mode, size).save(path / f"{i}.png")
        return path

    return make


BAD = {
    "empty csv": (_bad_csv(""), {}, "bad.csv is empty; give one row"),
    "header only": (_bad_csv("a,b\n"), {}, "has a header line but no rows"),
    "ragged": (_bad_csv("1,2,3\n4,5\n"), {}, "line 2 has 2 values, the first line 3"),
    "non-numeric": (_bad_csv("1,2\n3,x\n"), {}, r"line 2, column 2: 'x' is not a number"),
    "nan in csv": (_bad_csv("1,2\n3,nan\n4,5\n6,7\n"), {}, "NaN or inf; clean or drop"),
    "nan in npy": (
        _save("x.npy", np.full((5, 2), np.nan, np.float32), np.save),
        {},
        "x.npy: data contain NaN",
    ),
    "integers": (
        _save("x.npy", np.ones((5, 2), np.uint8), np.save),
        {},
        "must be floating point, got torch.uint8; scale them to",
    ),
    "no such column": (_bad_csv("a,b\n1,2\n"), {"labels": "c"}, "no column 'c'; its columns: a, b"),
    "fractional labels": (
        _save("x.npy", np.full((5, 2), 0.5, np.float32), np.save),
        {"labels": 1},
        "labels must be whole numbers",
    ),
    "ambiguous npz": (
        lambda p: np.savez(p / "a.npz", u=rows(), v=rows()) or p / "a.npz",
        {},
        "holds arrays 'u', 'v' besides the labels; name the data with key=NAME",
    ),
    "missing key": (
        lambda p: np.savez(p / "a.npz", u=rows()) or p / "a.npz",
        {"key": "x"},
        "has no array 'x'; its arrays: 'u'",
    ),
    "object npy": (
        lambda p: np.save(p / "o.npy", np.array([{"a": 1}]), allow_pickle=True) or p / "o.npy",
        {},
        "is not a .npy array of numbers",
    ),
    "pt of other things": (
        _save("x.pt", [1, 2], lambda path, value: torch.save(value, path)),
        {},
        "holds a list, not a tensor or a dict of tensors",
    ),
    "unknown suffix": (_save("x.txt", "1,2", lambda p, v: p.write_text(v)), {}, "'.txt'; give"),
    "mixed image sizes": (
        _image_folder([("RGB", (4, 4)), ("RGB", (4, 5))]),
        {},
        r"mixed image sizes, 0.png is \(3, 4, 4\) \(C, H, W\), 1.png is \(3, 5, 4\)",
    ),
    "mixed colour modes": (_image_folder([("L", (4, 4)), ("RGB", (4, 4))]), {}, "mixed image"),
    "no images": (lambda p: p, {}, "holds no images"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_file_that_cannot_be_used_gets_one_line_saying_what_to_do(tmp_path, case):
    make, kwargs, match = BAD[case]
    with pytest.raises(ValueError, match=match) as error:
        load_file(make(tmp_path), **kwargs)
    assert "\n" not in str(error.value)


def test_a_missing_path_says_what_to_give(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; give a .npy, .npz"):
        load_file(tmp_path / "nothing.csv")


def test_data_and_splits_have_readable_reprs():
    d = data.from_arrays(rows(), np.arange(N) % 2)
    assert repr(d) == (
        "Data(name='arrays', input_shape=(5,), binarize='none',\n"
        "    train=Split(x=(28, 5) float32, y=(28,)),\n"
        "    valid=Split(x=(4, 5) float32, y=(4,)),\n"
        "    test=Split(x=(8, 5) float32, y=(8,)),\n)"
    )
    on_disk = data.Data(torch.utils.data.TensorDataset(torch.rand(7, 3)))
    assert "train=DatasetSplit(TensorDataset, 7 rows)" in repr(on_disk)
    assert "valid=None" in repr(on_disk)
