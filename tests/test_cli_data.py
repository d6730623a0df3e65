"""``pyrovae train --data`` on the user's own files (.npy, .npz, .csv with and without a
header, .pt, a folder of PNG images), then ``evaluate`` and ``sample`` on the run, each checked
against the same file read in Python (:func:`pyrovae.data.load_file`); ``--logger`` and
``--num-workers`` from flags and from a config file, neither recorded in ``config.yaml`` nor
held against a resume."""

import csv
import json
import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import pyrovae
from pyrovae import cli
from pyrovae.data import load_file

N = 150  # rows written to each file
TINY = ["--epochs", "1", "--hidden", "16", "--batch-size", "50", "--quiet", "--num-samples", "2"]


@pytest.fixture(scope="module")
def rows():
    """The first N digits as float32 rows in [0, 1] and their labels."""
    d = pyrovae.data.load("digits")
    return d.train.x[:N].numpy(), d.train.y[:N].numpy()


def _npy(path, x, y):
    np.save(path / "x.npy", np.column_stack([x, y]).astype(np.float32))
    return path / "x.npy", ["--labels", "64"], {"labels": 64}


def _npz(path, x, y):
    np.savez(path / "x.npz", pixels=x, digit=y, note=np.zeros(3))
    flags = ["--labels", "digit", "--data-key", "pixels"]
    return path / "x.npz", flags, {"labels": "digit", "key": "pixels"}


def _csv_header(path, x, y):
    with open(path / "x.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([f"p{j}" for j in range(64)] + ["label"])
        out.writerows([*map(float, r), int(k)] for r, k in zip(x, y, strict=True))
    return path / "x.csv", ["--labels", "label"], {"labels": "label"}


def _csv_plain(path, x, y):
    np.savetxt(path / "x.csv", x, delimiter=",")
    return path / "x.csv", [], {}


def _pt(path, x, y):
    torch.save(torch.as_tensor(x), path / "x.pt")
    return path / "x.pt", [], {}


def _pngs(path, x, y):
    folder = path / "images"
    folder.mkdir()
    for i, row in enumerate(x[:60]):
        grey = (row.reshape(8, 8) * 255).round().astype(np.uint8)
        rgb = np.stack([grey, 255 - grey, grey // 2], -1)  # three different channels
        Image.fromarray(rgb, "RGB").save(folder / f"{i:03d}.png")
    return folder, [], {}


KINDS = {
    "npy": _npy,
    "npz": _npz,
    "csv-header": _csv_header,
    "csv-plain": _csv_plain,
    "pt": _pt,
    "png-folder": _pngs,
}


def _main(argv, capsys):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.mark.parametrize("kind", list(KINDS))
def test_train_evaluate_and_sample_on_a_file(kind, rows, tmp_path, capsys):
    path, flags, how = KINDS[kind](tmp_path, *rows)
    run = tmp_path / "run"
    _main(["train", "--data", path, *flags, *TINY, "--out", run], capsys)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"] == str(path) and "dataset" not in config
    assert config.get("labels") == (flags[1] if flags else None)
    data = load_file(path, binarize=config["binarize"], **how)  # the rows read in Python
    assert config["input_dim"] == list(data.input_shape)
    assert (data.image_shape is not None) == (kind == "png-folder")

    result = json.loads(_main(["evaluate", run, "--num-samples", "3"], capsys))
    assert result["data"] == str(path) and result["num_examples"] == len(data.test)
    expected = pyrovae.evaluate(pyrovae.load(run), data, num_samples=3, seed=0)
    assert result["log_likelihood"] == pytest.approx(expected["log_likelihood"], rel=1e-6)

    if data.image_shape is not None:
        _main(["sample", run, "-n", "4", "-o", tmp_path / "s.png"], capsys)
        with Image.open(tmp_path / "s.png") as picture:
            assert picture.mode == "RGB" and min(picture.size) > 8
    for suffix in (".csv", ".npy"):
        _main(["sample", run, "-n", "5", "-o", tmp_path / f"s{suffix}"], capsys)
        read = np.loadtxt if suffix == ".csv" else np.load
        kw = {"delimiter": ","} if suffix == ".csv" else {}
        sampled = read(tmp_path / f"s{suffix}", **kw)
        assert sampled.shape == (5, data.input_dim)
        assert (sampled >= 0).all() and (sampled <= 1).all()  # Bernoulli means
    model = pyrovae.load(run)
    torch.manual_seed(0)  # sample's default seed
    again = model.sample(5).numpy()
    np.testing.assert_allclose(sampled, again, rtol=1e-6)


def test_the_conditional_vae_on_a_csv_with_a_label_column(rows, tmp_path, capsys):
    path, flags, how = _csv_header(tmp_path, *rows)
    run = tmp_path / "run"
    argv = ["train", "--data", path, *flags, "--condition-on", "label", *TINY, "--out", run]
    _main(argv, capsys)
    model = pyrovae.load(run)
    assert type(model).__name__ == "ConditionalVAE"
    data = load_file(path, binarize="dynamic", **how)
    result = json.loads(_main(["evaluate", run, "--num-samples", "3"], capsys))
    expected = pyrovae.evaluate(model, data, num_samples=3, seed=0)  # scored given the labels
    assert result["elbo"] == pytest.approx(expected["elbo"], rel=1e-6)
    _main(["sample", run, "-n", "10", "-o", tmp_path / "s.csv"], capsys)
    torch.manual_seed(0)
    cycled = model.sample(10).numpy()  # labels 0, 1, …, 9
    np.testing.assert_allclose(np.loadtxt(tmp_path / "s.csv", delimiter=","), cycled, rtol=1e-6)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "digits"], r"give --data .* or --dataset digits, not both"),
        (["--condition-on", "label"], r"model 'cvae' learns from labels: give --labels COLUMN"),
    ],
)
def test_data_refuses_what_it_cannot_use_in_one_line(argv, message, rows, tmp_path, capsys):
    path, _, _ = _csv_plain(tmp_path, *rows)
    assert cli.main(["train", "--data", str(path), *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "r").exists()


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


def test_loggers_and_workers_from_flags_and_a_config_file_change_nothing(tmp_path, capsys):
    base = ["train", "--epochs", "2", "--hidden", "16", "--batch-size", "200", "--quiet"]
    base += ["--num-samples", "2"]
    plain, logged = tmp_path / "plain", tmp_path / "logged"
    _main([*base, "--out", plain], capsys)
    _main([*base, "--out", logged, "--logger", "csv", "--logger", "tensorboard"], capsys)
    assert _metrics(logged) == {**_metrics(plain), "seconds": _metrics(logged)["seconds"]}
    with open(logged / "csv" / "metrics.csv") as f:
        logged_rows = list(csv.DictReader(f))
    valid = [float(r["value"]) for r in logged_rows if r["name"] == "elbo/valid"]
    assert valid == pytest.approx(_metrics(plain)["valid_elbo"])
    assert any(p.name.startswith("events") for p in (logged / "tensorboard").iterdir())
    for run in (plain, logged):  # neither is a key of the trained model
        assert not {"logger", "num_workers"} & set(
            yaml.safe_load((run / "config.yaml").read_text())
        )

    file = tmp_path / "workers.yaml"
    file.write_text("num_workers: 2\nlogger: [csv]\nepochs: 3\n")
    _main([*base[:1], "--config", file, *base[3:], "--out", plain, "--resume"], capsys)
    resumed = tmp_path / "straight"
    _main([*base[:1], "--epochs", "3", *base[3:], "--out", resumed], capsys)
    assert _metrics(plain)["valid_elbo"] == _metrics(resumed)["valid_elbo"]
    assert (plain / "csv" / "metrics.csv").exists()


def test_num_classes_fits_labels_beyond_ten(rows, tmp_path, capsys):
    x, y = rows
    path, flags, _ = _csv_header(tmp_path, x, np.arange(N) % 12)  # labels 0 … 11
    argv = ["train", "--data", path, *flags, "--condition-on", "label", *TINY]
    assert cli.main([str(a) for a in [*argv, "--out", tmp_path / "ten"]]) == 2
    assert "labels must be integers in 0…9" in capsys.readouterr().err
    _main([*argv, "--num-classes", "12", "--out", tmp_path / "twelve"], capsys)
    assert pyrovae.load(tmp_path / "twelve").num_classes == 12
