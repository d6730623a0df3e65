"""docs/benchmarks.md is generated from benchmarks/results/ and says only what the JSON says.

Each figure the generator printed is recomputed here from the JSON (numpy, not the generator's
arithmetic); every number in a table cell must be one of those figures or a published figure
that this test holds on its own (Davidson et al. 2018, Table 1; the anchors); and the committed
page must be what the generator writes now.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import page

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# Davidson et al. 2018, Table 1: d → (N-VAE LL, N-VAE ELBO, S-VAE LL, S-VAE ELBO)
TABLE_1 = {
    2: (-135.73, -137.08, -132.50, -133.72),
    5: (-110.21, -112.98, -108.43, -111.19),
    10: (-93.84, -98.36, -93.16, -97.70),
    20: (-88.90, -94.79, -89.02, -96.15),
    40: (-88.93, -94.91, -90.87, -101.26),
}
ANCHORS = {"88.03", "1.71", "11.97", "94.46", "98.5", "93.13"}


@pytest.fixture(scope="module")
def built():
    return page.build()


def value(path, keys):
    obj = json.loads((RESULTS / path).read_text())
    for k in keys:
        obj = obj[k]
    return obj


def recompute(op, values, reference):
    if op == "value":
        return values[0]
    if op == "mean":
        return values.mean()
    if op == "sd":
        return values.std(ddof=1)
    if op.startswith("paired_"):  # the first half of the inputs minus the second, seed by seed
        a, b = np.split(values, 2)
        return (a - b).mean() if op == "paired_mean" else (a - b).std(ddof=1)
    return values.mean() - reference  # "diff"


def test_published_figures_are_the_papers():
    assert page.PUBLISHED == TABLE_1


def test_every_figure_equals_its_json(built):
    _, ledger = built
    assert ledger, "the page has no figures"
    for item in ledger:
        values = np.array([value(f, k) for f, k in item["inputs"]], dtype=float) * item["scale"]
        if item["op"] == "n":
            assert item["text"] == str(len(values))
            continue
        expected = recompute(item["op"], values, item.get("reference"))
        shown = float(item["text"])
        assert abs(shown - expected) <= 0.5 * 10 ** -item["digits"] + 1e-9, item


def test_every_number_in_a_table_is_a_figure_or_a_published_one(built):
    text, ledger = built
    figures = {item["text"] for item in ledger}
    figures |= {f"{v:.2f}" for row in TABLE_1.values() for v in row} | ANCHORS
    lines = text.splitlines()
    rows = [  # the tables' rows, not their headers (a header is followed by |---)
        ln
        for ln, after in zip(lines, [*lines[1:], ""], strict=True)
        if ln.startswith("| ") and not after.startswith("|---")
    ]
    assert len(rows) > 60
    for row in rows:
        cells = row.strip("|").split("|")[1:]  # the first cell names the row
        body = " ".join(cells).replace("n < 3, pending", "").replace("n = 0", "")
        for number in re.findall(r"(?<![\w.^])[-+]?\d+(?:\.\d+)?", body):
            assert number.lstrip("+") in figures | {f.lstrip("+") for f in figures}, (number, row)


def test_the_committed_page_is_up_to_date(built):
    text, _ = built
    assert page.PAGE.read_text() == text, "run: python -m benchmarks page"


def test_the_page_is_short(built):
    assert len(built[0].splitlines()) <= 250


def test_a_label_draw_still_training_is_not_on_the_page(monkeypatch):
    """ss_vae_mnist rewrites a seed's row after every epoch: only rows at the full 90 epochs
    count as label draws."""
    original = page.read
    path = "ss_vae_mnist/ss_vae_mnist.json"
    complete = [e for e in original(path)["entries"] if e["epochs"] == page.SS_VAE_EPOCHS]

    def with_partial_row(p):
        data = original(p)
        if p == path:
            partial = {**complete[0], "seed": 7, "epochs": 40, "accuracy": 0.5}
            data = {**data, "entries": [*data["entries"], partial]}
        return data

    def ss_vae_row(text):
        return next(line for line in text.splitlines() if line.startswith("| M2"))

    before = ss_vae_row(page.build()[0])
    monkeypatch.setattr(page, "read", with_partial_row)
    assert ss_vae_row(page.build()[0]) == before
    assert f"(n = {len(complete)})" in before
