"""What every benchmark shares: its data, its run folders and its results with their provenance.

A benchmark module (see :mod:`benchmarks`) gets a :class:`Session` from the runner. The session
knows the form (``quick``: the digits or generated data, seconds, results outside the tree;
``full``: the published protocol, results under ``benchmarks/results/<benchmark>/``), names
the run folders (``<runs>/<benchmark>/<tag>/<row>``, so that the same command resumes a run
that was cut off) and writes every result with where it came from: the commit (and whether the
tree had uncommitted changes), the versions, the machine, the command, the seed and the time.
"""

import datetime
import fcntl
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyro
import torch

import pyrovae

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
RUNS = "~/pyrovae-runs/benchmarks"


def commit():
    """``{"commit": sha, "dirty": bool}`` of the checkout holding this file (``None`` where
    git cannot tell, e.g. an unpacked archive). ``dirty``: tracked files changed outside
    ``benchmarks/results/``, which other runs may be writing to meanwhile."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--"]
            + [".", ":(exclude)benchmarks/results"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha, "dirty": bool(changes.strip())}


def provenance(seed):
    """The metadata block of one result: commit, versions, machine, command, seed, time. The
    commit is the one this process started from (read when the harness was imported), so a
    long run that finishes after later commits names the code it ran."""
    return {
        **STARTED_AT,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "numpy": np.__version__,
            "pyrovae": getattr(pyrovae, "__version__", None),
            "scikit-learn": _version("scikit-learn"),
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "seed": seed,
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


STARTED_AT = commit()


class Session:
    """One benchmark's invocation by the runner.

    :param str name: the benchmark's name in the registry (its results folder).
    :param bool quick: the quick form (digits or generated data; results under the run folder).
    :param str runs: the root of the run folders.
    :param data_root: where MNIST's files are (``None``: ``$PYROVAE_DATA``).
    """

    def __init__(self, name, quick, runs=RUNS, data_root=None):
        self.name, self.quick = name, quick
        self.runs = Path(runs).expanduser()
        self.data_root = data_root or os.environ.get("PYROVAE_DATA")
        self.seed = 0

    @property
    def results(self):
        """The folder of this benchmark's results: ``benchmarks/results/<name>/`` for the full
        form, ``<runs>/quick/<name>/`` for the quick form (never in the tree)."""
        return self.runs / "quick" / self.name if self.quick else RESULTS / self.name

    def folder(self, tag, row):
        """The run folder of one row under one protocol: ``<runs>/<name>[-quick]/<tag>/<row>``.
        The same command gets the same folder, so a run that was cut off resumes there."""
        name = f"{self.name}-quick" if self.quick else self.name
        return self.runs / name / tag / row

    def load(self, name="mnist", **kwargs):
        """A data set by name: MNIST (or Fashion-MNIST) from ``data_root`` in the full form;
        scikit-learn's 8×8 digits in the quick form whatever ``name`` says."""
        if self.quick or name == "digits":
            return pyrovae.data.load("digits", **kwargs)
        return pyrovae.data.load(name, root=self.data_root, **kwargs)

    def record(self, row):
        """``row`` with its provenance under ``"meta"``."""
        return {**row, "meta": provenance(self.seed)}

    def write(self, filename, report):
        """Write ``report`` (a dict) with its provenance as ``<results>/<filename>``; returns
        the path."""
        path = self.results / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, {**report, "meta": provenance(self.seed)})
        return path

    def merge(self, filename, row, key):
        """Put ``row`` (with its provenance) into ``<results>/<filename>``'s ``entries`` in
        place of the entry with the same values at ``key`` (field names), under a lock, so that
        several runs of one benchmark may finish at once; returns all the entries."""
        path = self.results / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        row = self.record(row)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            report = json.loads(path.read_text()) if path.exists() else {"entries": []}
            same = [row.get(k) for k in key]
            rows = [e for e in report["entries"] if [e.get(k) for k in key] != same]
            rows.append(row)
            rows.sort(key=lambda e: [str(e.get(k)) for k in key])
            report["entries"] = rows
            _write_atomically(path, report)
        path.with_suffix(".lock").unlink(missing_ok=True)
        return rows


def _write_atomically(path, obj):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)
