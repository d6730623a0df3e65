"""Fuzz the ``pyrovae`` command line and its run folders, as an adversary would (issue 34).

Two kinds of case, each run as ``python -m pyrovae ...`` with a timeout, in its own folder
``ROOT/jobs/<kind>-<i>`` (the working directory, with ``--out`` its ``out``):

* ``cli``: a random set of extreme-but-valid flags for ``train`` (huge and tiny numbers, part
  specs as YAML mappings, nested config files), then, when training succeeded, ``evaluate``
  or ``sample`` on its folder;
* ``folder``: a copy of a real run folder, damaged one way (symlinks inside it, as ``--out``
  and as ``.lock`` towards a victim file outside, inconsistent checkpoint fields, tensors of
  the wrong shape or dtype in the model or optimizer state, NaN weights, flipped bytes,
  truncated files, ``config: 5``, ``history: {}``, malformed RNG state), then ``evaluate``,
  ``sample`` and ``train --resume`` on it.

Counted per run: tracebacks (stderr holds ``Traceback``), hangs, unfinished runs, interpreter
crashes (a negative exit code, or 134), and writes outside the out folder. A hang is no
progress, not a long run: the runs print their progress (a line per epoch, a heartbeat within
long epochs, the starts' steps), and a run whose stdout and stderr have not grown for
``--timeout`` seconds of its CPU time, or 10 × that of wall-clock time (a loaded machine slows
a run without hanging it), is killed and counted as hung. A run still progressing after
``--cap`` seconds of CPU time (default 20 × ``--timeout``), or 10 × that of wall-clock time,
is killed and counted as unfinished (so that a fuzz ends; valid but slow by configuration,
or a loop that prints), apart from the hangs. Writes outside the out folder are found by: a
victim file's content and mtime, the job folder outside ``out`` (and outside a symlinked
``out``'s target), and a snapshot of the whole ``ROOT`` (the temp dir's parent: HOME points
into it) minus the job folders. The JSON summary holds the command, the counts, and every
failing run with its command line, grouped by the last line of its error, and every unfinished
run with its command line; each case's record (with each run's CPU time and its longest CPU
time without new output, ``silent_cpu_seconds``) is also written, as it ends, to the
summary's name with ``.jsonl``.

    python tools/fuzz.py --jobs 2 --limit 30 --summary fuzz.json   # a quick sample
    python tools/fuzz.py --cli 1000 --folders 200 --jobs 8          # the issue's Done-when
    python tools/fuzz.py --cases cli-99 --cap 7200                  # one case again, longer

Each run is a child forked from this process (a fork server): it imports ``pyrovae``, torch,
Pyro and the libraries the runs load once, in the runs' environment, and each child then
becomes ``python -m pyrovae ARGV`` (working directory, environment, stdin, stdout and stderr,
exit status and traceback as the interpreter gives them), which saves the 5-20 s that a new
interpreter spends importing torch. The fuzz runs no DataLoader workers nor torchrun, so no
case needs a fresh interpreter. Called from a process that already ran models (a test), the
children inherit its global state (Pyro's parameter store, torch defaults).

Not shipped with the package: it drives the ``pyrovae`` that ``PYTHONPATH`` selects.
"""

import argparse
import atexit
import concurrent.futures
import contextlib
import faulthandler
import importlib
import json
import math
import os
import random
import resource
import runpy
import select
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

HUGE_REALS = ["1e-45", "1e-30", "1e-15", "1e-3", "1", "1e5", "1e20", "3e38", "1e39", "1e300"]
PART_SPECS = {
    "--prior": [
        "normal",
        "vamp",
        "mixture",
        "{name: vamp, num_components: 500}",
        "{name: mixture, num_components: 1}",
        "{name: mixture, num_components: 300}",
        "hyperspherical_uniform",
    ],
    "--posterior": [
        "normal",
        "iaf",
        "planar",
        "von_mises_fisher",
        "{name: iaf, num_flows: 12}",
        "{name: planar, num_flows: 40}",
        "{name: normal, min_scale: 1e-30}",
        "{name: iaf, hidden: [200000]}",
    ],
    "--likelihood": [
        "bernoulli",
        "gaussian",
        "{name: gaussian, scale: 1e-30}",
        "{name: gaussian, scale: 1e30}",
        "{name: gaussian, scale: learned}",
        "continuous_bernoulli",
    ],
    "--encoder": [
        "mlp",
        "{name: mlp, hidden: [1]}",
        "{name: mlp, hidden: [100000]}",
        "{name: conv, kernel_size: 7}",
        "{name: conv, kernel_size: 101}",
        "{name: conv, channels: [1, 1, 1, 1, 1, 1, 1]}",
    ],
    "--decoder": ["mlp", "{name: mlp, hidden: [1, 1, 1]}", "{name: conv, kernel_size: 5}"],
}
FLAGS = {
    "--model": ["vae", "gmm", "llgae", "ssvae"],
    "--latent-dim": ["1", "2", "3", "10", "63", "200", "1000"],
    "--hidden": ["1", "2,2", "100000", "3,3,3,3,3,3,3,3,3,3", "1000,1000"],
    "--activation": ["relu", "tanh", "elu", "gelu", "silu", "softplus", "leaky_relu"],
    "--num-components": ["1", "2", "50", "1150"],
    "--covariance": ["diag", "full"],
    "--reg-covar": ["0", "1e-30", "1e-6", "1e30"],
    "--noise": ["learned", "1e-30", "1e-15", "1e15", "1e30"],
    "--guide": ["amortized", "iterative", "exact"],
    "--num-labels": ["10", "1000"],
    "--batch-size": ["1", "2", "7", "100", "100000"],
    "--lr": HUGE_REALS,
    "--seed": ["0", "4294967295", "12345"],
    "--warmup-epochs": ["0", "1e-30", "5"],
    "--patience": ["1", "1000"],
    "--num-particles": ["1", "2", "50", "20000"],
    "--elbo": ["trace", "meanfield", "iwae", "renyi"],
    "--alpha": ["0", "1e-30", "0.99", "1e30"],
    "--beta": ["0", "1e-30", "1e30"],
    "--num-samples": ["1", "2", "1000000000"],
    "--score-test": ["end", "epoch", "never"],
    "--pretrain-epochs": ["0", "1"],
    "--binarize": ["none", "static", "dynamic"],
    "--input-dim": ["64", "1,8,8"],
    **PART_SPECS,
}
CONFIG_KEYS = ["prior", "posterior", "hidden", "encoder", "likelihood"]


def nested(rng, depth, leaf):
    for _ in range(depth):
        leaf = {"name": "mixture", "options": [leaf]} if rng.random() < 0.5 else [leaf]
    return leaf


def cli_case(rng, i):
    """``train`` with a random flag set (sometimes a config file), and a follow-up."""
    argv = ["train", "--out", "out", "--epochs", rng.choice(["1", "2"])]
    for flag in rng.sample(sorted(FLAGS), rng.randint(0, 6)):
        argv += [flag, rng.choice(FLAGS[flag])]
    files = {}
    if rng.random() < 0.15:
        key = rng.choice(CONFIG_KEYS)
        value = nested(rng, rng.choice([2, 8, 40, 400]), rng.choice([1, "normal", 1e39]))
        if rng.random() < 0.3:
            value = [rng.choice([1, 2, 64])] * rng.choice([50, 20_000, 200_001])
            key = "hidden"
        files["config.yaml"] = json.dumps({key: value})  # JSON is YAML
        argv += ["--config", "config.yaml"]
    follow = rng.choice(["evaluate", "sample", None])
    if follow == "evaluate":
        n = rng.choice(["1", "2", "100000000"])
        follow = ["evaluate", "out", "--num-samples", n, "--batch-size", rng.choice(["1", "7"])]
    elif follow == "sample":
        n = rng.choice(["1", "64", "100000000"])
        follow = ["sample", "out", "-n", n, "-o", "out/fuzz.png", "--seed", "4294967295"]
    runs = [argv] + ([follow] if follow else [])
    return {"kind": "cli", "name": f"cli-{i}", "files": files, "runs": runs}


# -- run folders -------------------------------------------------------------------------------

BASES = {  # the run folders that the damaged ones copy
    "vae": ["--hidden", "8"],
    "gmm": ["--model", "gmm", "--num-components", "3"],
}


def _load(path):
    import torch

    return torch.load(path / "checkpoint.pt", weights_only=True)


def _save(path, state):
    import torch

    torch.save(state, path / "checkpoint.pt")


def _edit(fn):
    def mutate(out, victim, rng):
        state = _load(out)
        fn(state, rng)
        _save(out, state)

    return mutate


def _tensor_edit(where, how):
    """Change one tensor of the model (``where="model"``) or of Adam's state (``"optimizer"``)."""

    def fn(state, rng):
        import torch

        if where == "model":
            table = state["model"]
        else:
            table = next(iter(state["optimizer"]["state"].values()))
        key = rng.choice(sorted(k for k, v in table.items() if torch.is_tensor(v)))
        t = table[key]
        table[key] = {
            "shape": lambda: torch.zeros(2, 2),
            "shape+1": lambda: torch.zeros(*(s + 1 for s in t.shape)) if t.dim() else t[None],
            "float64": lambda: t.double(),
            "int": lambda: t.long(),
            "nan": lambda: t.float().fill_(float("nan")),
            "inf": lambda: t.float().fill_(float("inf")),
            "huge": lambda: t.float().fill_(3e38),
            "empty": lambda: torch.zeros(0),
        }[how]()

    return _edit(fn)


def _field(key, value):
    def fn(state, rng):
        state[key] = value() if callable(value) else value

    return _edit(fn)


def _drop(key):
    def fn(state, rng):
        state.pop(key, None)

    return _edit(fn)


def _rng_edit(state, rng):
    import torch

    state["rng"] = rng.choice(
        [
            {"torch": torch.zeros(3, dtype=torch.uint8), "numpy": {}, "random": (1, 2)},
            {"torch": torch.zeros(5056), "numpy": {"state": 5}, "random": "x"},
            5,
            {},
        ]
    )


def _flip(count):
    def mutate(out, victim, rng):
        data = bytearray((out / "checkpoint.pt").read_bytes())
        for _ in range(count):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        (out / "checkpoint.pt").write_bytes(bytes(data))

    return mutate


def _truncate(name):
    def mutate(out, victim, rng):
        data = (out / name).read_bytes()
        (out / name).write_bytes(data[: rng.randrange(len(data))])

    return mutate


def _write(name, text):
    def mutate(out, victim, rng):
        (out / name).unlink(missing_ok=True)
        (out / name).write_text(text)

    return mutate


def _link_to_victim(name):
    def mutate(out, victim, rng):
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(victim)

    return mutate


def _out_is_a_link(out, victim, rng):
    target = out.parent / "elsewhere"
    shutil.move(out, target)
    out.symlink_to(target, target_is_directory=True)


def _out_is_a_loop(out, victim, rng):
    shutil.rmtree(out)
    out.symlink_to(out.parent / "out2")
    (out.parent / "out2").symlink_to(out)


MUTATIONS = {
    "lock->victim": _link_to_victim(".lock"),
    "checkpoint->victim": _link_to_victim("checkpoint.pt"),
    "config->victim": _link_to_victim("config.yaml"),
    "metrics->victim": _link_to_victim("metrics.json"),
    "out->folder": _out_is_a_link,
    "out->loop": _out_is_a_loop,
    "config: 5": _field("config", 5),
    "config: str": _field("config", "x" * 10_000),
    "history: {}": _field("history", {}),
    "history: lists": _field("history", {"epoch": [1, 2, 3], "train_elbo": []}),
    "optimizer: {}": _field("optimizer", {}),
    "epoch: -1": _field("epoch", -1),
    "epoch: 10**30": _field("epoch", 10**30),
    "epoch: str": _field("epoch", "2"),
    "world_size: 0": _field("world_size", 0),
    "model_class: other": _field("model_class", "GaussianMixture"),
    "format: other": _field("format", "pyrovae-checkpoint-999"),
    "model: {}": _field("model", {}),
    "no model": _drop("model"),
    "no optimizer": _drop("optimizer"),
    "no rng": _drop("rng"),
    "rng malformed": _edit(_rng_edit),
    **{f"model {h}": _tensor_edit("model", h) for h in ("shape", "shape+1", "float64", "int")},
    **{f"model {h}": _tensor_edit("model", h) for h in ("nan", "inf", "huge", "empty")},
    **{f"adam {h}": _tensor_edit("optimizer", h) for h in ("shape", "shape+1", "float64", "nan")},
    "flip 1 byte": _flip(1),
    "flip 50 bytes": _flip(50),
    "truncate checkpoint": _truncate("checkpoint.pt"),
    "truncate config": _truncate("config.yaml"),
    "empty checkpoint": _write("checkpoint.pt", ""),
    "config.yaml: 5": _write("config.yaml", "5\n"),
    "config.yaml: garbage": _write("config.yaml", "{[: !!python/object:os.system\n"),
    "config.yaml: deep": _write("config.yaml", "prior: " + "[" * 5000 + "]" * 5000 + "\n"),
    "config.yaml: lr 1:10": _write("config.yaml", "lr: 1:10\nepochs: true\n"),
    "metrics.json: garbage": _write("metrics.json", "{NaN"),
}
FOLDER_COMMANDS = [
    ["evaluate", "out", "--num-samples", "2"],
    ["sample", "out", "-n", "4", "-o", "out/fuzz.png"],
    ["train", "--resume", "--out", "out", "--epochs", "3"],
]


def folder_case(rng, i, order):
    """The ``i``-th damaged folder: every mutation once (in the seeded ``order``) before any
    repeats, each on a base folder drawn at random."""
    base = rng.choice(sorted(BASES))
    mutation = order[i % len(order)]
    return {
        "kind": "folder",
        "name": f"folder-{i}",
        "base": base,
        "mutation": mutation,
        "seed": rng.randrange(2**31),
        "runs": FOLDER_COMMANDS,
    }


# -- running and watching ----------------------------------------------------------------------


def snapshot(folder, skip=()):
    """``{relative path: (size, mtime_ns, link target)}`` of everything under ``folder``
    (links not followed), leaving out the subtrees in ``skip``."""
    seen = {}
    skip = {Path(s) for s in skip}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in dirnames + filenames:
            path = here / name
            if path in skip:
                continue
            st = path.lstat()
            link = os.readlink(path) if path.is_symlink() else None
            size = st.st_size if not path.is_dir() or link else 0
            mtime = st.st_mtime_ns if not path.is_dir() or link else 0
            seen[str(path.relative_to(folder))] = (size, mtime, link)
    return seen


def environment(root):
    env = dict(os.environ)
    env.update(
        HOME=str(root / "home"),
        MPLCONFIGDIR=str(root / "cache" / "matplotlib"),
        OMP_NUM_THREADS="1",
        PYTHONFAULTHANDLER="1",
        TMPDIR=str(root / "tmp"),
    )
    return env


PRELOAD = [  # what the runs import, imported once by the parent that forks them
    "pyrovae.cli",
    "pyrovae.plots",
    "sklearn.cluster",
    "sklearn.datasets",
    "sklearn.mixture",
    "torchvision",
]


def warm_up(root):
    """Make this process the fork server: the runs' environment, then their imports. It runs
    no case itself (only the damaging of folders, with ``torch.load``/``torch.save``)."""
    os.environ.update(environment(root))  # before the imports: they read e.g. MPLCONFIGDIR
    for name in PRELOAD:
        importlib.import_module(name)


def run_pyrovae():
    """What the child of each run executes: ``python -m pyrovae`` with ``sys.argv``."""
    runpy.run_module("pyrovae", run_name="__main__", alter_sys=True)


PROGRAM = run_pyrovae
WALL_FACTOR = 10  # wall-clock limits = this × the CPU-time ones (a run that waits, not computes)
CAP_FACTOR = 20  # the default --cap = this × --timeout
POLL = 0.5  # seconds between two looks at a running child
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """The user + system CPU time of the live process ``pid`` so far (``/proc/PID/stat``'s
    utime and stime, in clock ticks; the fields after the command name, which may hold
    spaces and parentheses, so counted from its last ``)``)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _exit_code(code):
    """The exit status the interpreter gives ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _child(argv, cwd, env, cap, stdout, stderr):
    """The forked child of one run: it becomes ``python -m pyrovae ARGV`` started in ``cwd``
    with ``env`` (stdin ``/dev/null``, fd 1 and 2 into the files ``stdout`` and ``stderr``),
    in a process group of its own and under a CPU-time limit of ``cap`` seconds (SIGXCPU,
    should the parent's watch miss it), and never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        limit = max(1, math.ceil(cap))
        resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 5))
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        sys.stdin = open(0, closefd=False)  # new objects: a parent's thread may hold the locks
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
        faulthandler.enable()  # as PYTHONFAULTHANDLER=1 does at start
        # torch on one thread, as OMP_NUM_THREADS=1 gives at start: OpenMP's thread pool does
        # not survive a fork, so a child of a parent that ran a parallel region and that used
        # more than one thread would wait forever for the pool's lost threads
        import torch  # already imported by the parent (PRELOAD)

        torch.set_num_threads(1)
        atexit._clear()  # the parent's exit handlers are not the run's
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["-m", *argv]
        sys.path[0] = cwd  # where ``python -m`` looks first
        try:
            PROGRAM()
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException:  # an uncaught exception: the interpreter prints it, exits 1
            sys.excepthook(*sys.exc_info())
            code = 1
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # the harness's own failure, shown (as a traceback) in the run's stderr
        traceback.print_exc()
    finally:
        os._exit(code & 0xFF)  # never back into the parent's code


def run_one(argv, cwd, env, timeout, cap=None):
    """One run, in a child forked from this process (see :func:`_child`), watched every
    ``POLL`` s: its CPU time and the size of its stdout + stderr. It is hung (and killed) once
    its output has not grown for ``timeout`` s of its CPU time or ``WALL_FACTOR`` × that of
    wall-clock time; unfinished (and killed) once it passes ``cap`` s of CPU time (default
    ``CAP_FACTOR`` × ``timeout``; SIGXCPU) or ``WALL_FACTOR`` × that of wall-clock time. A crash
    is a signal (or 134) that the harness did not send. ``silent_cpu_seconds`` is the longest
    CPU time the run went without new output (up to the last look)."""
    cap = CAP_FACTOR * timeout if cap is None else cap
    tic = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(argv, str(cwd), env, cap, out.fileno(), err.fileno())
        with contextlib.suppress(OSError):  # as the child does: no window before it does
            os.setpgid(pid, pid)
        pidfd = os.pidfd_open(pid)
        verdict, size, grew_cpu, grew_wall, silent = None, 0, 0.0, tic, 0.0
        try:
            while not select.select([pidfd], [], [], POLL)[0]:
                try:
                    cpu = cpu_seconds(pid)
                except (OSError, IndexError, ValueError):  # ended between the two looks
                    continue
                now, grown = time.monotonic(), os.fstat(out.fileno()).st_size
                grown += os.fstat(err.fileno()).st_size
                if grown != size:
                    size, grew_cpu, grew_wall = grown, cpu, now
                silent = max(silent, cpu - grew_cpu)
                if cpu - grew_cpu > timeout or now - grew_wall > WALL_FACTOR * timeout:
                    verdict = "hang"
                elif cpu > cap or now - tic > WALL_FACTOR * cap:
                    verdict = "unfinished"
                if verdict:
                    break
        finally:
            os.close(pidfd)
        with contextlib.suppress(ProcessLookupError):  # the killed run, or what it left running
            os.killpg(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        err.seek(0)
        text = err.read().decode(errors="replace")
    rc = None if verdict else os.waitstatus_to_exitcode(status)  # None: stopped by the harness
    if rc == -signal.SIGXCPU:  # the cap's own limit, between two looks
        verdict, rc = "unfinished", None
    return {
        "argv": argv,
        "rc": rc,
        "seconds": round(time.monotonic() - tic, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "silent_cpu_seconds": round(silent, 2),
        "hang": verdict == "hang",
        "unfinished": verdict == "unfinished",
        "traceback": "Traceback" in text,
        "crash": verdict is None and (rc < 0 or rc == 134),
        "stderr_tail": text[-600:],
    }


def run_case(case, root, bases, timeout, cap=None):
    job = root / "jobs" / case["name"]
    job.mkdir(parents=True)
    victim = job / "victim.txt"
    victim.write_text("DATA\n")
    out = job / "out"
    skip = [out, job / "elsewhere"]
    for name, text in case.get("files", {}).items():
        (job / name).write_text(text)
    if case["kind"] == "folder":
        shutil.copytree(bases[case["base"]], out, symlinks=True)
        MUTATIONS[case["mutation"]](out, victim, random.Random(case["seed"]))
    env = environment(root)
    results = []
    for argv in case["runs"]:
        before, stat = snapshot(job, skip), victim.stat()
        result = run_one(argv, job, env, timeout, cap)
        after = snapshot(job, skip)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if victim.read_text() != "DATA\n" or victim.stat().st_mtime_ns != stat.st_mtime_ns:
            changed.append("victim.txt (content or mtime)")
        result["outside_writes"] = changed
        results.append(result)
        if case["kind"] == "cli" and result["rc"] != 0:
            break  # no folder to evaluate or sample
    return {k: v for k, v in case.items() if k != "runs"} | {"results": results}


def make_bases(root, timeout):
    bases = {}
    for name, flags in BASES.items():
        folder = root / "bases" / name
        folder.parent.mkdir(parents=True, exist_ok=True)
        argv = ["train", "--epochs", "2", "--out", str(folder), *flags]
        result = run_one(argv, folder.parent, environment(root), timeout * 3)
        if result["rc"] != 0:
            raise SystemExit(f"could not make the base run folder {name}: {result['stderr_tail']}")
        bases[name] = folder
    return bases


def signature(result):
    lines = [line for line in result["stderr_tail"].strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last[:160]


def summarize(cases, command, root_before, root_after, seconds):
    runs = [(case, r) for case in cases for r in case["results"]]
    counts = {
        "cases": Counter(case["kind"] for case in cases),
        "runs": len(runs),
        "tracebacks": sum(r["traceback"] for _, r in runs),
        "hangs": sum(r["hang"] for _, r in runs),
        "unfinished": sum(r["unfinished"] for _, r in runs),
        "crashes": sum(r["crash"] for _, r in runs),
        "outside_writes": sum(bool(r["outside_writes"]) for _, r in runs),
    }
    root_changes = sorted(
        k for k in set(root_before) | set(root_after) if root_before.get(k) != root_after.get(k)
    )
    counts["root_writes"] = len(root_changes)
    failures = defaultdict(list)
    for case, r in runs:
        kinds = [k for k in ("traceback", "hang", "crash") if r[k]]
        kinds += ["outside_write"] if r["outside_writes"] else []
        if kinds:
            what = case.get("mutation") or "cli"
            key = f"{'+'.join(kinds)} | {r['argv'][0]} | {signature(r)}"
            failures[key].append(
                {
                    "case": case["name"],
                    "mutation": what,
                    "base": case.get("base"),
                    "command": "python -m pyrovae " + shlex.join(r["argv"]),
                    "rc": r["rc"],
                    "outside_writes": r["outside_writes"][:5],
                }
            )
    return {
        "command": command,
        "python": sys.executable,
        "seconds": round(seconds, 1),
        "counts": counts,
        "root_writes": root_changes[:50],
        "unfinished": [  # progressing at --cap: slow by configuration, or a loop that prints
            {
                "case": case["name"],
                "command": "python -m pyrovae " + shlex.join(r["argv"]),
                "cpu_seconds": r["cpu_seconds"],
                "silent_cpu_seconds": r["silent_cpu_seconds"],
            }
            for case, r in runs
            if r["unfinished"]
        ],
        "distinct_failures": len(failures),
        "failures": {
            k: {"count": len(v), "first": v[0], "all": v[:20]} for k, v in failures.items()
        },
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cli", type=int, default=1000, help="CLI cases (default 1000)")
    p.add_argument("--folders", type=int, default=200, help="damaged run folders (default 200)")
    p.add_argument("--limit", type=int, help="at most N cases of each kind (a quick run)")
    p.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    p.add_argument(
        "--timeout", type=float, default=60.0,
        help="CPU seconds without new output that make a run hung (default 60)",
    )  # fmt: skip
    p.add_argument(
        "--cap", type=float,
        help=f"CPU seconds after which a run still progressing is stopped and counted unfinished "
        f"(default {CAP_FACTOR} × --timeout)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", type=Path, help="work folder (default: a new temp folder)")
    p.add_argument("--summary", type=Path, default=Path("fuzz-summary.json"))
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument(
        "--cases", nargs="+", metavar="NAME", help="run only these cases of the seeded list "
        "(e.g. cli-99 folder-7: a failure reproduced, or an unfinished run with a longer --cap)"
    )  # fmt: skip
    args = p.parse_args(argv)
    root = (args.root or Path(tempfile.mkdtemp(prefix="pyrovae-fuzz-"))).resolve()
    for sub in ("home", "cache", "tmp", "jobs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    saved = dict(os.environ)
    try:
        warm_up(root)
        return _fuzz(args, argv, root)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _fuzz(args, argv, root):
    n_cli, n_folders = args.cli, args.folders
    if args.limit is not None:
        n_cli, n_folders = min(n_cli, args.limit), min(n_folders, args.limit)
    tic = time.perf_counter()
    rng = random.Random(args.seed)
    cases = [cli_case(rng, i) for i in range(n_cli)]
    order = rng.sample(sorted(MUTATIONS), len(MUTATIONS))
    cases += [folder_case(rng, i, order) for i in range(n_folders)]
    if args.cases:
        unknown = set(args.cases) - {c["name"] for c in cases}
        if unknown:
            raise SystemExit(f"no case named {', '.join(sorted(unknown))} in this seed's list")
        cases = [c for c in cases if c["name"] in args.cases]
    bases = make_bases(root, args.timeout) if any(c["kind"] == "folder" for c in cases) else {}
    watched = [root / "jobs", root / "cache", root / "tmp", root / "bases"]
    root_before = snapshot(root, watched)
    done = []
    log = args.summary.with_suffix(".jsonl").open("w")  # each case as it ends
    with log, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_case, c, root, bases, args.timeout, args.cap) for c in cases]
        for k, future in enumerate(concurrent.futures.as_completed(futures), 1):
            done.append(future.result())
            log.write(json.dumps(done[-1], default=str) + "\n")
            log.flush()
            ran = done[-1]["results"]
            bad = any(r["traceback"] or r["hang"] or r["crash"] for r in ran)
            verdict = "FAIL" if bad else "unfinished" if any(r["unfinished"] for r in ran) else "ok"
            print(f"{k}/{len(cases)} {done[-1]['name']} {verdict}", flush=True)
    root_after = snapshot(root, watched)
    command = "python tools/fuzz.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    summary = summarize(done, command, root_before, root_after, time.perf_counter() - tic)
    args.summary.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(json.dumps(summary["counts"], default=str))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return summary


if __name__ == "__main__":
    main()
