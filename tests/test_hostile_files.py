"""Crafted run folders: links, inconsistent fields, wrong shapes and dtypes, flipped bytes,
NaN weights, truncated files. Each is refused in one line (exit 2) by ``evaluate``, ``sample``
and ``train --resume``, and nothing outside the run folder is read, written or removed."""

import hashlib
import re
import shutil

import numpy as np
import pytest
import torch

import pyrovae
from pyrovae import cli
from pyrovae.infer import checkpoint as ckpt
from pyrovae.runs import config as cfg
from pyrovae.runs.lock import Lock

COMMANDS = {
    "evaluate": ["evaluate", "{run}"],
    "sample": ["sample", "{run}", "-o", "{tmp}/s.png"],
    "resume": ["train", "--resume", "--quiet", "--hidden", "16", "--epochs", "3", "--out", "{run}"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch run as ``pyrovae train`` writes it (without the pictures)."""
    run = tmp_path_factory.mktemp("hostile") / "run"
    config = cfg.resolve({}, {"hidden": [16], "latent_dim": 2, "epochs": 2, "out": str(run)})
    data = cfg.load_data(config)
    how = {"dataset": "digits", "binarize": config["binarize"], "out": str(run)}
    model = cfg.build_model(config, data.input_dim)
    pyrovae.fit(model, data, epochs=2, out=run, progress=False, config=how)
    return run


@pytest.fixture
def run(trained, tmp_path):
    return shutil.copytree(trained, tmp_path / "run")


def _main(argv, run, tmp_path, capsys):
    code = cli.main([a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err):
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def _reseal(run, change):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(ckpt.sealed(state), run / "checkpoint.pt")


def test_a_planted_lock_link_leaves_its_target_untouched(run, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("DATA\n")
    (run / ".lock").symlink_to(victim)
    for argv in (COMMANDS["resume"], ["train", "--quiet", "--epochs", "1", "--out", "{run}"]):
        code, _, err = _main(argv, run, tmp_path, capsys)
        assert code == 2 and ".lock is a symbolic link" in _one_line(err)
    with pytest.raises(ValueError, match="is a symbolic link"):
        Lock(run).acquire()  # fit(out=...) takes the same lock
    assert victim.read_text() == "DATA\n"
    assert (run / ".lock").is_symlink()  # not removed either


@pytest.mark.parametrize("name", ["checkpoint.pt", "config.yaml", "metrics.json", "samples.png"])
def test_a_link_among_the_run_files_is_refused_before_anything_is_written(
    name, run, tmp_path, capsys
):
    victim = tmp_path / "victim"
    victim.write_bytes((run / "checkpoint.pt").read_bytes() if name == "checkpoint.pt" else b"x")
    before = victim.read_bytes()
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(victim)
    code, _, err = _main(COMMANDS["resume"], run, tmp_path, capsys)
    assert code == 2 and f"{name} is a symbolic link" in _one_line(err)
    assert victim.read_bytes() == before
    if name == "checkpoint.pt":  # read by evaluate: not through the link
        code, _, err = _main(COMMANDS["evaluate"], run, tmp_path, capsys)
        assert code == 2 and f"{name} is a symbolic link" in _one_line(err)


def test_home_folder_and_its_parents_are_never_run_folders(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    code, _, err = _main(["train", "--quiet", "--out", str(home)], None, tmp_path, capsys)
    assert code == 2 and "is the home folder" in _one_line(err)
    assert list(home.iterdir()) == []


def test_a_long_name_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "OUT" / "deeper" / ("a" * 300)
    code, _, err = _main(["train", "--quiet", "--out", str(out)], None, tmp_path, capsys)
    assert code == 2 and "File name too long" in _one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_a_data_root_is_only_read(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    argv = ["train", "--quiet", "--dataset", "mnist", "--data-root", str(root), "--out", "{tmp}/o"]
    code, _, err = _main(argv, None, tmp_path, capsys)
    assert code == 2 and "a --data-root is only read" in _one_line(err)
    assert list(root.iterdir()) == [] and not (tmp_path / "o").exists()


def _torch_state(state):
    state["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)


def _numpy_keys(state):
    state["rng"]["numpy"]["keys"] = torch.zeros(5, dtype=torch.int64)


def _random_state(state):
    state["rng"]["random"] = (3, (1, 2), None)


def _double_weight(state):
    name = next(iter(state["model"]))
    state["model"][name] = state["model"][name].double()


def _inf_weight(state):
    next(iter(state["model"].values())).view(-1)[0] = float("inf")


def _world_size(state):
    state["world_size"] = 0


def _ranks(state):
    state["world_size"] = 2
    state["rng_by_rank"] = [state["rng"]] * 3


FIELDS = {
    "config": (lambda s: s.update(config=5), r"config: not a mapping of option names"),
    "history": (lambda s: s.update(history={}), r"history: not the per-epoch lists of 2 epoch"),
    "history-short": (
        lambda s: s["history"]["train_elbo"].pop(),
        r"history: not the per-epoch lists",
    ),
    "optimizer": (lambda s: s.update(optimizer={}), r"optimizer: not an optimizer's state_dict"),
    "rng-torch": (_torch_state, r"rng: torch: not a uint8 tensor of shape"),
    "rng-numpy": (_numpy_keys, r"rng: numpy: not an MT19937 state"),
    "rng-random": (_random_state, r"rng: random: not a version-3 Mersenne Twister state"),
    "world-size": (_world_size, r"world_size: not a positive integer"),
    "ranks": (_ranks, r"rng_by_rank: not one RNG state per process"),
    "dtype": (_double_weight, r"written by a different model .*float64"),
    "inf-weight": (_inf_weight, r"holds non-finite weights \(model "),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("field", list(FIELDS))
def test_an_inconsistent_field_is_refused_in_one_line(field, command, run, tmp_path, capsys):
    change, message = FIELDS[field]
    _reseal(run, change)
    code, out, err = _main(COMMANDS[command], run, tmp_path, capsys)
    assert code == 2, err
    assert re.search(message, _one_line(err)), err
    assert out == "" and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("key", ["exp_avg", "exp_avg_sq", "step"])
@pytest.mark.parametrize("bad", ["shape", "dtype", "type"])
def test_an_optimizer_state_that_is_not_the_optimizer_s_is_refused(key, bad, run, tmp_path, capsys):
    """A moment of the wrong shape crashed the interpreter in Adam (``free(): invalid next
    size``); each state tensor is checked against its parameter first."""

    def change(state):
        entry = state["optimizer"]["state"][0]
        value = entry[key]
        entry[key] = {
            "shape": torch.zeros(2, 2),
            "dtype": value.long() if key == "step" else value.double(),
            "type": 3,
        }[bad]

    _reseal(run, change)
    code, _, err = _main(COMMANDS["resume"], run, tmp_path, capsys)
    assert code == 2, err
    assert f"the checkpoint's optimizer state {key} of parameter 0 is" in _one_line(err)
    assert ckpt.load(run / "checkpoint.pt")["epoch"] == 2  # the file is left as it was


def test_an_optimizer_group_with_other_options_is_refused(run, tmp_path, capsys):
    _reseal(run, lambda s: s["optimizer"]["param_groups"][0].update(lr="fast"))
    code, _, err = _main(COMMANDS["resume"], run, tmp_path, capsys)
    assert code == 2 and "the checkpoint's optimizer option lr is 'fast'" in _one_line(err)


def test_nan_bytes_over_a_weight_fail_the_checksum(run, tmp_path, capsys):
    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    weight = max(state["model"].values(), key=torch.numel)
    data = bytearray(path.read_bytes())
    at = data.find(weight.reshape(-1)[:4].numpy().tobytes())
    assert at > 0
    data[at : at + 4] = np.float32(np.nan).tobytes()
    path.write_bytes(bytes(data))
    for command in COMMANDS:
        code, _, err = _main(COMMANDS[command], run, tmp_path, capsys)
        assert code == 2 and "checkpoint.pt is corrupt: checksum mismatch" in _one_line(err)


@pytest.mark.parametrize("seed", range(12))
def test_fifty_flipped_bytes_are_refused(seed, run, tmp_path, capsys):
    path = run / "checkpoint.pt"
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8).copy()
    rng = np.random.default_rng(seed)
    at = rng.choice(len(data), 50, replace=False)
    data[at] ^= rng.integers(1, 256, 50).astype(np.uint8)
    path.write_bytes(data.tobytes())
    code, out, err = _main(COMMANDS["evaluate"], run, tmp_path, capsys)
    assert code == 2 and out == ""
    assert "is corrupt: checksum mismatch" in err or "cannot read checkpoint" in _one_line(err)


@pytest.mark.parametrize("keep", [0, 1, 100, 0.5, 0.99])
def test_a_truncated_checkpoint_is_refused(keep, run, tmp_path, capsys):
    path = run / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep])
    for command in COMMANDS:
        code, _, err = _main(COMMANDS[command], run, tmp_path, capsys)
        assert code == 2, err
        assert "cannot read checkpoint" in _one_line(err) or "is corrupt" in err


def test_the_checksum_covers_every_value_and_no_spelling(run):
    """``digest`` against hashlib over the same bytes, and it changes with any single value."""
    state = ckpt.load(run / "checkpoint.pt")
    content = {k: v for k, v in state.items() if k != "checksum"}
    assert ckpt.digest(content) == state["checksum"]
    tensor = torch.arange(3, dtype=torch.float32)
    expected = hashlib.sha256()
    expected.update(b"T" + b"torch.float32(3,)" + tensor.numpy().tobytes())
    assert ckpt.digest(tensor) == expected.hexdigest()
    weight = next(iter(content["model"].values())).view(-1)
    weight[0] = torch.nextafter(weight[0], torch.tensor(np.inf))  # one ulp
    assert ckpt.digest(content) != state["checksum"]
    weight[0] = torch.nextafter(weight[0], torch.tensor(-np.inf))
    assert ckpt.digest(content) == state["checksum"]
    content["epoch"] = 3
    assert ckpt.digest(content) != state["checksum"]


def test_a_link_deeper_in_the_run_folder_is_refused(run, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("DATA\n")
    (run / "logs").mkdir()
    (run / "logs" / "metrics.csv").symlink_to(victim)
    code, _, err = _main(COMMANDS["resume"], run, tmp_path, capsys)
    assert code == 2 and "logs/metrics.csv is a symbolic link" in _one_line(err)
    assert victim.read_text() == "DATA\n"


@pytest.fixture(scope="module")
def stopping(tmp_path_factory):
    """A 3-epoch run with early stopping (patience 5), as ``pyrovae train`` writes it."""
    run = tmp_path_factory.mktemp("stopping") / "run"
    argv = ["train", "--quiet", "--hidden", "16", "--epochs", "3", "--patience", "5"]
    assert cli.main([*argv, "--out", str(run)]) == 0
    return run


def _best_tensor(state):
    return next(iter(state["best"]["state"]))


BEST = {  # the hook's state (key "best") crafted: the change, what the one line says
    "not-a-mapping": (lambda b: b.update(best="best"), r"is a str, not a mapping of elbo"),
    "missing-key": (lambda b: b["best"].pop("wait"), r"lacks wait"),
    "extra-key": (lambda b: b["best"].update(code=1), r"has extra code"),
    "elbo-text": (lambda b: b["best"].update(elbo="-1e9"), r"has elbo a str, not epoch \d's"),
    "elbo-other": (lambda b: b["best"].update(elbo=1.0), r"has elbo 1.0, not epoch \d's"),
    "epoch": (lambda b: b["best"].update(epoch=7), r"has best epoch 7, not one of the 3"),
    "wait-negative": (lambda b: b["best"].update(wait=-1), r"has wait -1, not the \d epoch"),
    "wait-huge": (lambda b: b["best"].update(wait=10**30), r"has wait a huge integer, not"),
    "wait-tensor": (lambda b: b["best"].update(wait=torch.zeros(3)), r"has wait a Tensor, not"),
    "fresh-tensor": (
        lambda b: b["best"].update(epoch=None, wait=torch.zeros(3)),
        r"has no best epoch but an elbo, state or wait",
    ),
    "wait-float": (lambda b: b["best"].update(wait=0.5), r"has wait 0.5, not the \d epoch"),
    "state-shape": (
        lambda b: b["best"]["state"].update({_best_tensor(b): torch.zeros(2, 2)}),
        r"has a best-epoch state that holds \S+ as \(2, 2\) float32, not \(",
    ),
    "state-missing": (
        lambda b: b["best"]["state"].pop(_best_tensor(b)),
        r"has a best-epoch state that lacks tensor ",
    ),
    "state-nan": (
        lambda b: b["best"]["state"][_best_tensor(b)].view(-1).__setitem__(0, float("nan")),
        r"has a best-epoch state that holds non-finite values in ",
    ),
    "state-none": (
        lambda b: b["best"].update(state=None),
        r"has a best-epoch state that is not a mapping of names to tensors",
    ),
}


@pytest.mark.parametrize("case", list(BEST))
def test_a_crafted_early_stopping_state_is_refused_before_anything_is_restored(
    case, stopping, tmp_path, capsys
):
    run = shutil.copytree(stopping, tmp_path / "run")
    change, message = BEST[case]
    _reseal(run, change)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    argv = ["train", "--resume", "--quiet", "--epochs", "4", "--out", str(run)]
    code, out, err = _main(argv, run, tmp_path, capsys)
    assert code == 2, err
    line = _one_line(err)
    assert "the checkpoint's EarlyStopping state ('best') " in line
    assert re.search(message, line), line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written


def test_the_early_stopping_state_as_written_resumes(stopping, tmp_path, capsys):
    run = shutil.copytree(stopping, tmp_path / "run")
    argv = ["train", "--resume", "--quiet", "--epochs", "4", "--out", str(run)]
    assert _main(argv, run, tmp_path, capsys)[0] == 0
    assert ckpt.load(run / "checkpoint.pt")["epoch"] == 4
