"""Checkpoints are read with ``weights_only=True``: RNG states survive as tensors and plain
values, and a file carrying a pickled callable is refused without running it."""

import os
import random

import numpy as np
import pytest
import torch

import pyrovae
from pyrovae import cli
from pyrovae.infer import checkpoint as ckpt
from pyrovae.runs import config as cfg
from pyrovae.runs import folder


class Payload:
    """Unpickling this object calls ``os.mkdir(marker)``: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt") / "run"
    config = cfg.resolve({}, {"hidden": [16], "latent_dim": 2, "epochs": 1, "out": str(run)})
    data = cfg.load_data(config)
    pyrovae.fit(cfg.build_model(config, data.input_dim), data, epochs=1, out=run, progress=False)
    folder.write_atomically(run / "config.yaml", folder.config_text(config))
    return run


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    np.random.seed(3)  # noqa: NPY002 (the global state a checkpoint keeps)
    np.random.randn()  # noqa: NPY002  (an odd number of normals leaves a cached gaussian)
    random.seed(4)
    torch.manual_seed(5)
    state = ckpt.rng_state()
    assert state["numpy"]["has_gauss"] == 1
    torch.save(state, tmp_path / "rng.pt")
    expected = (np.random.randn(3), random.random(), torch.rand(3))  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002
    random.seed(0)
    torch.manual_seed(0)
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (np.random.randn(3), random.random(), torch.rand(3))  # noqa: NPY002
    np.testing.assert_array_equal(again[0], expected[0])
    assert again[1] == expected[1]
    assert torch.equal(again[2], expected[2])


def test_the_payload_is_live_when_unpickled_without_weights_only(tmp_path):
    """The refusal below is meaningful: this file does run code under a plain unpickler."""
    marker = tmp_path / "marker"
    torch.save({"format": ckpt.FORMAT, "model": Payload(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.is_dir()


@pytest.mark.parametrize(
    "argv",
    [["evaluate", "{run}"], ["sample", "{run}", "-o", "{tmp}/s.png"], ["train", "--resume"]],
    ids=["evaluate", "sample", "resume"],
)
def test_a_pickled_callable_is_refused_and_never_run(argv, run, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_bytes((run / "config.yaml").read_bytes())
    marker = tmp_path / "marker"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"] = {"x": Payload(marker)}
    torch.save(state, folder / "checkpoint.pt")
    if argv[0] == "train":
        argv = [*argv, "--quiet", "--hidden", "16", "--epochs", "2", "--out", "{run}"]
    argv = [a.replace("{run}", str(folder)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "holds a pickled posix.mkdir" in err or "holds a pickled nt.mkdir" in err
    assert not marker.exists()
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("optimizer"), "lacks optimizer"),
        (lambda s: [s.pop("rng"), s.pop("epoch")], "lacks rng, epoch"),
        (lambda s: s.update(epoch="3"), "has fields of the wrong type"),
        (lambda s: s.update(model={"w": 3}), "has fields of the wrong type"),
        (lambda s: s["rng"].pop("numpy"), "has fields of the wrong type"),
    ],
)
def test_a_checkpoint_with_missing_or_mistyped_fields_is_refused_in_one_line(
    change, message, run, tmp_path
):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=f"{message}: it was not written whole") as info:
        ckpt.load(tmp_path / "checkpoint.pt")
    assert "\n" not in str(info.value)


def test_a_checkpoint_of_the_previous_format_is_named_as_such(run, tmp_path):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["format"] = "pyrovae-checkpoint-1"
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="format 'pyrovae-checkpoint-1': an older pyrovae's"):
        ckpt.load(tmp_path / "checkpoint.pt")
