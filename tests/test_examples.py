"""Every script in examples/ runs end to end on a few steps and writes its picture."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


def test_examples_found():
    expected = {"gaussian_vae", "custom_model", "svae", "vmf_mixture", "gmm", "clustering"}
    expected |= {"llgae", "cvae", "ss_vae"}
    assert {p.stem for p in EXAMPLES} >= expected


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(path), "-n", "2", "--out", str(tmp_path)])
    runpy.run_path(str(path), run_name="__main__")
    pictures = list(tmp_path.glob("*.png"))
    assert pictures and all(p.stat().st_size > 100 for p in pictures)
    assert "written to" in capsys.readouterr().out
