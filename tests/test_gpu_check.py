"""``python -m benchmarks gpu_check --quick`` (the dry run): the GPU check's code runs on the
CPU, quickly, and writes every section of its JSON with the harness's provenance."""

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [sys.executable, "-m", "benchmarks", "gpu_check", "--quick", "--runs", str(tmp_path)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 60.0  # CPU seconds of it and its subprocesses (wall time waits on the load)
    report = json.loads((tmp_path / "quick" / "gpu_check" / "gpu_check_dry_run.json").read_text())
    assert report["dry_run"] is True
    assert report["meta"]["command"] == f"python -m benchmarks gpu_check --quick --runs {tmp_path}"
    for section in ("cuda_tests", "fit_vs_torch", "sphere", "torchrun"):
        assert "error" not in report[section], report[section]
    assert report["cuda_tests"]["exit_code"] == 0
    arms = {"torch", "torch-bf16", "fit", "fit-jit", "fit-bf16", "fit-jit-bf16"}
    batches = {k: v for k, v in report["fit_vs_torch"].items() if k.startswith("batch-")}
    assert set(batches) == {"batch-16", "batch-64"}
    for batch in batches.values():
        assert set(batch) == arms
        assert all(batch[a]["epoch_seconds_median"] > 0 and batch[a]["n"] == 2 for a in arms)
    assert set(report["sphere"]) == {"nvae", "svae", "nvae-jit", "svae-jit", "section_seconds"}
    run = report["torchrun"]
    assert run["exit_code"] == 0 and run["backend"] == "gloo" and run["world_size"] == 1
    assert run["train_elbo"] < 0
