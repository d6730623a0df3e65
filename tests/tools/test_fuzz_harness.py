"""tools/fuzz.py: its detectors against a stand-in program that misbehaves in each counted way,
and a quick fuzz of the real command line (slow)."""

import json
import os
import runpy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import fuzz  # noqa: E402

MISBEHAVE = """
import ctypes, os, sys, time
what = sys.argv[1]
if what == "traceback":
    raise RuntimeError("boom")
if what == "exit 3":
    sys.exit(3)
if what == "exit text":
    sys.exit("said why")
if what == "hang":
    while True:
        pass
if what == "wait":
    time.sleep(60)
if what in ("progress", "forever"):  # a line every 0.2 s of CPU: for 3 s of CPU, or forever
    start = mark = time.process_time()
    while what == "forever" or time.process_time() - start < 3:
        if time.process_time() - mark >= 0.2:
            mark = time.process_time()
            print("step", flush=True)
if what == "abort":
    os.abort()
if what == "segfault":
    ctypes.string_at(0)
if what == "victim":
    open("victim.txt", "w").write("pid")
if what == "beside":
    open("stray.txt", "w").write("x")
if what == "home":
    open(os.path.join(os.environ["HOME"], "stray"), "w").write("x")
if what == "inside":
    os.makedirs("out", exist_ok=True)
    open("out/fine.txt", "w").write("x")
print("done")
"""


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    script = tmp_path / "misbehave.py"
    script.write_text(MISBEHAVE)  # run in each forked child as ``python script.py ARGV``
    monkeypatch.setattr(fuzz, "PROGRAM", lambda: runpy.run_path(str(script), run_name="__main__"))
    root = tmp_path / "root"
    for sub in ("home", "cache", "tmp", "jobs"):
        (root / sub).mkdir(parents=True)
    return root


def test_each_kind_of_failure_is_counted_and_a_write_inside_out_is_not(stand_in):
    whats = ["traceback", "exit 3", "exit text", "hang", "wait", "abort", "segfault", "victim"]
    whats += ["beside", "home", "inside", "progress"]
    cwd, env = os.getcwd(), dict(os.environ)
    cases = [{"kind": "cli", "name": w, "files": {}, "runs": [[w]]} for w in whats]
    watched = [stand_in / "jobs", stand_in / "cache", stand_in / "tmp"]
    before = fuzz.snapshot(stand_in, watched)
    done = [fuzz.run_case(c, stand_in, {}, timeout=1) for c in cases]
    forever = {"kind": "cli", "name": "forever", "files": {}, "runs": [["forever"]]}
    done.append(fuzz.run_case(forever, stand_in, {}, timeout=1, cap=3))
    summary = fuzz.summarize(done, "test", before, fuzz.snapshot(stand_in, watched), 0.0)
    assert (os.getcwd(), dict(os.environ)) == (cwd, env)  # the runs were children
    by_name = {c["name"]: c["results"][0] for c in done}
    assert by_name["traceback"]["traceback"] and by_name["traceback"]["rc"] == 1
    assert "RuntimeError: boom" in by_name["traceback"]["stderr_tail"]
    assert by_name["exit 3"]["rc"] == 3 and not by_name["exit 3"]["traceback"]
    assert by_name["exit text"]["rc"] == 1 and by_name["exit text"]["stderr_tail"] == "said why\n"
    # silent: killed after 1 s of CPU time without output, or 10 s of wall-clock time
    assert by_name["hang"]["hang"] and by_name["hang"]["rc"] is None
    assert 1 < by_name["hang"]["silent_cpu_seconds"] <= by_name["hang"]["cpu_seconds"] < 2
    assert not by_name["hang"]["crash"] and not by_name["hang"]["unfinished"]
    assert by_name["wait"]["hang"] and by_name["wait"]["rc"] is None
    assert 10 <= by_name["wait"]["seconds"] < 12 and by_name["wait"]["cpu_seconds"] < 1
    # 3 s of CPU time printing all along: not hung with a 1 s timeout; past a 3 s cap: unfinished
    progress = by_name["progress"]
    assert (progress["rc"], progress["hang"], progress["unfinished"]) == (0, False, False)
    assert progress["cpu_seconds"] > 3 and progress["silent_cpu_seconds"] < 0.8
    forever = by_name["forever"]
    assert (forever["rc"], forever["hang"], forever["unfinished"]) == (None, False, True)
    assert 2.9 < forever["cpu_seconds"] < 4.5 and not forever["crash"]
    assert by_name["abort"]["crash"] and by_name["abort"]["rc"] == -6
    assert by_name["segfault"]["crash"] and by_name["segfault"]["rc"] == -11
    assert by_name["victim"]["outside_writes"] == ["victim.txt", "victim.txt (content or mtime)"]
    assert by_name["beside"]["outside_writes"] == ["stray.txt"]
    assert by_name["inside"]["outside_writes"] == [] and by_name["inside"]["rc"] == 0
    counts = summary["counts"]
    assert (counts["tracebacks"], counts["hangs"], counts["crashes"]) == (1, 2, 2)
    assert counts["unfinished"] == 1 and [u["case"] for u in summary["unfinished"]] == ["forever"]
    assert summary["unfinished"][0]["command"] == "python -m pyrovae forever"
    assert counts["outside_writes"] == 2 and counts["root_writes"] == 1  # home/stray
    assert summary["root_writes"] == ["home/stray"]
    assert summary["distinct_failures"] == 7


FORK_AFTER_OPENMP = """
import torch
a = torch.randn(600, 600)
print(float((a @ a).sum() + torch.randn(2_000_000).exp().sum()))
"""


def test_a_child_computes_after_its_parent_ran_torch_on_two_threads(tmp_path, monkeypatch):
    # OpenMP's thread pool does not survive a fork: without the child's one thread, the
    # parallel matrix product in the child waits forever (the parent's pool ran just before)
    import torch

    script = tmp_path / "compute.py"
    script.write_text(FORK_AFTER_OPENMP)
    monkeypatch.setattr(fuzz, "PROGRAM", lambda: runpy.run_path(str(script), run_name="__main__"))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a = torch.randn(600, 600)
        (a @ a).sum() + torch.randn(2_000_000).exp().sum()  # a parallel region in this process
        result = fuzz.run_one(["x"], tmp_path, dict(os.environ), timeout=10)
    finally:
        torch.set_num_threads(threads)
    assert (result["rc"], result["hang"]) == (0, False), result["stderr_tail"]


def test_named_cases_of_the_seeded_list_run_alone(stand_in, tmp_path):
    def fuzz_main(*cases):
        return fuzz.main(["--cli", "10", "--folders", "0", "--root", str(stand_in), "--keep",
                          "--summary", str(tmp_path / "s.json"), "--cases", *cases])  # fmt: skip

    summary = fuzz_main("cli-3", "cli-7")
    ran = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert sorted(case["name"] for case in ran) == ["cli-3", "cli-7"]
    assert summary["counts"]["cases"] == {"cli": 2}
    assert all(run["rc"] == 0 for case in ran for run in case["results"])  # the stand-in's
    with pytest.raises(SystemExit, match="no case named cli-12"):
        fuzz_main("cli-3", "cli-12")


def test_every_mutation_comes_before_any_repeats():
    import random

    rng = random.Random(0)
    order = rng.sample(sorted(fuzz.MUTATIONS), len(fuzz.MUTATIONS))
    cases = [fuzz.folder_case(rng, i, order) for i in range(len(order))]
    assert sorted(c["mutation"] for c in cases) == sorted(fuzz.MUTATIONS)


@pytest.mark.slow
def test_quick_fuzz_of_the_command_line(tmp_path):
    # 20 CLI cases and 10 damaged folders: the harness runs them all and its summary adds up
    summary = fuzz.main(
        ["--cli", "20", "--folders", "10", "--summary",
         str(tmp_path / "s.json"), "--root", str(tmp_path / "root")]
    )  # fmt: skip
    assert json.loads((tmp_path / "s.json").read_text())["counts"]["runs"] >= 40
    assert summary["counts"]["cases"] == {"cli": 20, "folder": 10}
    failing = sum(f["count"] for f in summary["failures"].values())
    counts = summary["counts"]
    assert failing <= counts["runs"]
    assert counts["root_writes"] == 0  # nothing outside the job folders
