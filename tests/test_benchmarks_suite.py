"""The benchmark suite's own parts: the registry, the provenance every result carries, and the
authors' training rules that ``davidson_table`` adds through ``fit``'s callbacks (checked
against a transcription of their loop, ``utils/training_utils.py`` of
``trdavidson/increasing-expressivity-s-vae``)."""

import argparse
import importlib
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pyrovae
from benchmarks import BENCHMARKS, harness
from benchmarks.davidson import AuthorsEarlyStopping, EpochWarmup, random_split

BENCH_EXTRA = {"power_spherical", "pythae", "pyroved"}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_parses_its_two_forms(name):
    try:
        module = importlib.import_module(BENCHMARKS[name])
    except ModuleNotFoundError as error:  # a peer of the bench extra, not installed here
        if error.name not in BENCH_EXTRA:
            raise
        pytest.skip(f"needs the bench extra: pip install -e '.[bench]' ({error.name})")
    assert module.SEEDS and callable(module.main)
    parser = argparse.ArgumentParser()
    module.arguments(parser)
    for words in (module.QUICK, module.FULL):
        assert hasattr(parser.parse_args(words), "seed")


def test_provenance_names_the_commit_versions_machine_command_seed_and_time():
    meta = harness.provenance(seed=3)
    head = subprocess.run(
        ["git", "-C", str(harness.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert meta["commit"] == head and isinstance(meta["dirty"], bool)
    assert meta["versions"]["torch"] == torch.__version__
    assert set(meta["versions"]) >= {"python", "torch", "pyro", "numpy"}
    assert meta["machine"]["cpu_count"] >= 1 and meta["machine"]["torch_threads"] >= 1
    assert meta["command"].startswith("python -m benchmarks") and meta["seed"] == 3
    assert meta["time"][:2] == "20"


def test_dirty_means_code_changed_not_results_being_written(tmp_path, monkeypatch):
    def git(*words):
        subprocess.run(["git", "-C", str(tmp_path), *words], check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    result, code = tmp_path / "benchmarks" / "results" / "r.json", tmp_path / "model.py"
    result.write_text("{}")
    code.write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    monkeypatch.setattr(harness, "ROOT", tmp_path)
    assert harness.commit()["dirty"] is False
    result.write_text('{"rows": [1]}')  # another run's rows arriving
    assert harness.commit()["dirty"] is False
    code.write_text("x = 2\n")
    assert harness.commit()["dirty"] is True


def authors_loop(losses, burn_in, look_ahead, min_improv):
    """Their ``train``: (epochs run, best epoch), epochs counted from 0."""
    best_loss, best_epoch = 1e10, 0
    for e, val_loss in enumerate(losses):
        if (e + 1) > burn_in:
            if best_loss > (val_loss + min_improv):
                best_loss, best_epoch = val_loss, e
            if (e - best_epoch) > look_ahead:
                return e + 1, best_epoch
    return len(losses), best_epoch


@pytest.mark.parametrize("seed", range(20))
def test_authors_early_stopping_stops_and_keeps_the_epoch_theirs_does(seed):
    rng = np.random.default_rng(seed)
    # a validation ELBO that rises, then wanders by about the size of min_delta
    elbo = -100 + 5 * (1 - np.exp(-np.arange(200) / 30)) + rng.normal(0, 0.02, 200).cumsum()
    burn_in, patience, min_delta = 20, 10, 1e-2
    hook = AuthorsEarlyStopping(patience, min_delta, burn_in)
    model = torch.nn.Linear(1, 1)
    state = SimpleNamespace(history={"epoch": [], "valid_elbo": []}, model=model, stop=False)
    for e, value in enumerate(elbo):
        with torch.no_grad():
            model.weight.fill_(float(e))  # the parameters say which epoch they are from
        state.history["epoch"].append(e + 1)
        state.history["valid_elbo"].append(float(value))
        hook.on_epoch_end(state)
        if state.stop:
            break
    hook.on_train_end(state)
    run, best = authors_loop(-elbo, burn_in, patience, min_delta)
    assert (len(state.history["epoch"]), hook.best["epoch"] - 1) == (run, best)
    assert model.weight.item() == best


def test_epoch_warmup_steps_beta_once_per_epoch():
    hook = EpochWarmup(4)
    state = SimpleNamespace(epoch=0, beta=None)
    betas = []
    for epoch in range(7):
        for _ in range(3):  # three steps an epoch: β must not move within one
            state.epoch = epoch
            hook.on_step_start(state)
            betas.append(state.beta)
    assert betas == [b for b in (0, 0.25, 0.5, 0.75, 1, 1, 1) for _ in range(3)]


def test_random_split_redraws_the_validation_rows_and_keeps_the_test_rows():
    grey = pyrovae.data.load("digits")
    binary = pyrovae.data.load("digits", binarize="dynamic")
    n = len(grey.valid)  # the same size as load's, so the test rows are drawn alike
    a, b = random_split(grey, n, seed=1), random_split(grey, n, seed=2)
    pooled = torch.cat([grey.train.x, grey.valid.x])
    for seed, split in ((1, a), (2, b)):
        assert len(split.valid) == n and len(split.train) == len(pooled) - n
        grey_split = random_split(grey, n, seed=seed, binarize="none")  # the same rows, unbinarised
        assert torch.equal(grey_split.train.x, split.train.x)
        rows = torch.cat([grey_split.train.x, grey_split.valid.x])
        assert torch.equal(rows.sort(0).values, pooled.sort(0).values)
        assert torch.equal(split.test.x, binary.test.x)
        assert set(split.valid.x.unique().tolist()) == {0.0, 1.0}  # binarised once
    assert not torch.equal(a.train.x, b.train.x)
    assert torch.equal(random_split(grey, n, seed=1).valid.x, a.valid.x)


def test_the_page_reads_the_results_file_the_full_form_writes():
    from benchmarks import davidson_table, page

    parser = argparse.ArgumentParser()
    davidson_table.arguments(parser)
    assert davidson_table.tag(parser.parse_args(davidson_table.FULL)) == page.AUTHORS_TAG


def test_the_page_reads_the_files_vade_mnists_full_form_writes():
    from benchmarks import page, vade_mnist

    parser = argparse.ArgumentParser()
    vade_mnist.arguments(parser)
    full = parser.parse_args(vade_mnist.FULL)
    plain = parser.parse_args([*vade_mnist.FULL, "--no-augment"])
    assert (vade_mnist.tag(full), vade_mnist.tag(plain)) == (
        page.VADE_TAGS["augment"],
        page.VADE_TAGS["plain"],
    )


def test_merge_replaces_the_row_with_the_same_key_and_keeps_the_others(tmp_path):
    session = harness.Session("example", quick=True, runs=tmp_path)
    assert tmp_path in session.results.parents  # the quick form writes outside the tree
    session.merge("r.json", {"row": "a", "seed": 0, "x": 1.0}, ("row", "seed"))
    session.merge("r.json", {"row": "a", "seed": 1, "x": 2.0}, ("row", "seed"))
    rows = session.merge("r.json", {"row": "a", "seed": 0, "x": 3.0}, ("row", "seed"))
    assert [(r["seed"], r["x"]) for r in rows] == [(0, 3.0), (1, 2.0)]
    assert all(r["meta"]["command"].startswith("python -m benchmarks") for r in rows)
    assert session.folder("tag", "row-s0") == tmp_path / "example-quick" / "tag" / "row-s0"


def test_no_benchmark_imports_another_or_edits_sys_path():
    """Shared code lives in modules that are not benchmarks (harness, davidson, vade, ...)."""
    import ast

    registered = set(BENCHMARKS.values())
    for path in sorted((harness.ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        assert "sys.path" not in ast.unparse(tree), f"{path.name} edits sys.path"
        if f"benchmarks.{path.stem}" not in registered:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [f"benchmarks.{node.module or a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not set(names) & registered, f"{path.name} imports the benchmark {names}"
