"""tools/figures.py (``make figures``): summaries over seeds, the range check, the clustering
figures read from their benchmark's JSON, and the quick figures in their README ranges."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location("figures", ROOT / "tools" / "figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)


def test_summary_is_the_mean_and_sample_sd():
    values = [1.0, 2.5, 4.5]
    s = figures.summary(values)
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["sd"] == pytest.approx(np.std(values, ddof=1))
    assert (s["n"], s["min"], s["max"]) == (3, 1.0, 4.5)


def test_a_seed_outside_its_range_fails_its_figure(monkeypatch, capsys, tmp_path):
    values = {0: 1.0, 1: 5.0}
    fake = ("fake", lambda seed, work: {"v": values[seed]}, (0, 1), {"v": (0.0, 2.0)}, True)
    monkeypatch.setitem(figures.FIGURES, "fake", fake)
    result = figures.run_figure("fake", (0, 1))
    assert result["failures"] == ["fake.v: [5.0] outside (0.0, 2.0)"]
    assert result["summary"]["v"]["mean"] == 3.0
    monkeypatch.setattr(figures, "CLUSTERING_JSON", ROOT / "no such file")
    assert figures.main(["--only", "fake", "--out", str(tmp_path / "figures.json")]) == 1
    assert "fake.v: [5.0] outside" in capsys.readouterr().err


def test_clustering_claims_are_checked_from_the_json(tmp_path):
    def row(seed, accuracy, nmi, epochs=None):
        return {"seed": seed, "accuracy": accuracy, "nmi": nmi, "epochs": epochs,
                "pretrain_epochs": None,
                "kmeans_raw_pixels": {"accuracy": 0.78, "nmi": 0.75}}  # fmt: skip

    def write(*rows):
        path.write_text(json.dumps({"entries": list(rows)}))

    path = tmp_path / "clustering.json"
    write(row(0, 0.92, 0.80), row(1, 0.78, 0.79), row(2, 0.10, 0.10, epochs=2))  # quick: left
    good = figures.clustering_from_json(path)
    assert good["failures"] == []
    assert good["summary"]["accuracy"]["mean"] == pytest.approx(0.85)
    write(row(0, 0.80, 0.80), row(1, 0.85, 0.70))
    bad = figures.clustering_from_json(path)
    write(row(0, 0.93, 0.80), row(1, 0.77, 0.79))
    assert figures.clustering_from_json(path)["failures"] == ["clustering: no seed below 0.78"]
    assert bad["failures"] == [
        "clustering: mean accuracy at least 0.85",
        "clustering: mean NMI above k-means's 0.750",
        "clustering: NMI above k-means's at every seed",
    ]
    assert figures.clustering_from_json(tmp_path / "absent.json") is None


@pytest.mark.slow
def test_quick_figures_stay_in_their_ranges(monkeypatch, tmp_path):
    """``make figures-quick``: seed 0 of the fast figures (the GMM command, scikit-learn's GMM
    and k-means, the 23,000-row memory-mapped run), each inside the range README.md states."""
    monkeypatch.setattr(figures, "CLUSTERING_JSON", ROOT / "no such file")
    out = tmp_path / "figures.json"
    assert figures.main(["--quick", "--out", str(out)]) == 0
    ran = json.loads(out.read_text())["figures"]
    assert set(ran) == {name for name, spec in figures.FIGURES.items() if spec[4]}
    assert all([row["seed"] for row in r["per_seed"]] == [0] for r in ran.values())
