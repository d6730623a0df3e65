"""Every code block of README.md runs as written.

* Python blocks run top to bottom in one namespace, in a fresh folder, as a reader pasting them
  one after another would; every ``pyrovae.fit`` call is capped at one epoch (the only
  change). A block whose first line is ``# needs MNIST`` or ``# needs a GPU`` runs on its own,
  and is skipped (saying why) only when ``../shared/data/MNIST/raw`` or CUDA is absent.
* Bash blocks: every ``pyrovae`` command (also after ``torchrun ... -m``) goes through the CLI's
  own parser, and a ``train`` command's options through the config resolution and the model
  builder (an unknown flag, part name or option fails); the commands on the offline digits run,
  in order, with ``--epochs 1``. ``make`` lines are dry-run (``make -n``); ``pip install`` and
  ``tensorboard`` are not run (README.md says so).
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

import pyrovae
from pyrovae import cli
from pyrovae.runs import config as cfg

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
MNIST_ROOT = ROOT.parent / "shared" / "data"
NOT_RUN = {"pip", "tensorboard"}  # README.md: "tests/test_readme.py ... does not run"
MY_YAML = "latent_dim: 2\nhidden: [64]\n"  # the --config file of the CLI block

pytestmark = pytest.mark.slow


def code_blocks(language):
    """``(line number, code)`` of each fenced block of ``language`` in README.md."""
    text = README.read_text()
    found = []
    for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.M | re.S):
        found.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
    return found


def needs(code):
    """``"MNIST"``, ``"a GPU"`` or ``None``: what the block's ``# needs ...`` line asks for."""
    first = code.lstrip().splitlines()[0]
    match = re.match(r"# needs (MNIST|a GPU)\b", first)
    return match.group(1) if match else None


def missing(resource):
    if resource == "MNIST" and not (MNIST_ROOT / "MNIST" / "raw").is_dir():
        return f"MNIST is not in {MNIST_ROOT}/MNIST/raw"
    if resource == "a GPU" and not torch.cuda.is_available():
        return "no CUDA device"
    return None


@pytest.fixture
def one_epoch(monkeypatch, tmp_path):
    """A fresh working folder and ``pyrovae.fit`` capped at one epoch."""
    fit = pyrovae.fit

    def capped(*args, **kwargs):
        kwargs["epochs"] = 1
        return fit(*args, **kwargs)

    monkeypatch.setattr(pyrovae, "fit", capped)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYROVAE_DATA", str(MNIST_ROOT))
    return tmp_path


def run_block(line, code, namespace):
    exec(compile(code, f"README.md, code block at line {line}", "exec"), namespace)


def test_readme_has_blocks_of_both_kinds():
    assert len(code_blocks("python")) >= 6 and len(code_blocks("bash")) >= 5
    text = README.read_text()
    assert not re.search(r"^```(?!python|bash|\n)", text, re.M), "a block of another language"


def test_python_blocks_run_in_order(one_epoch):
    namespace = {"__name__": "__readme__"}
    ran = 0
    for line, code in code_blocks("python"):
        if needs(code) is None:
            run_block(line, code, namespace)
            ran += 1
    assert ran >= 6
    assert (one_epoch / "runs" / "mine" / "checkpoint.pt").is_file()


@pytest.mark.parametrize(
    "line, code", [b for b in code_blocks("python") if needs(b[1])], ids=lambda v: str(v)[:8]
)
def test_python_block_that_needs_mnist_or_a_gpu(line, code, one_epoch):
    reason = missing(needs(code))
    if reason:
        pytest.skip(f"README.md line {line} needs {needs(code)}: {reason}")
    run_block(line, code, {"__name__": "__readme__"})


def shell_commands():
    """``(line, argv)`` of every command of the bash blocks (continuations joined, comments and
    leading ``VAR=value`` assignments dropped)."""
    commands = []
    for start, code in code_blocks("bash"):
        joined = code.replace("\\\n", " ")
        for offset, text in enumerate(joined.splitlines()):
            argv = shlex.split(text, comments=True)
            while argv and re.match(r"^[A-Z_]+=", argv[0]):
                argv = argv[1:]
            if argv:
                commands.append((start + offset, argv))
    return commands


def pyrovae_argv(argv):
    """The arguments after ``pyrovae`` / ``torchrun ... -m pyrovae``, or ``None``."""
    if argv[0] == "pyrovae":
        return argv[1:]
    if argv[0] == "torchrun":
        at = argv.index("-m")
        assert argv[at + 1] == "pyrovae", argv
        return argv[at + 2 :]
    return None


def test_every_shell_command_is_checked():
    for line, argv in shell_commands():
        assert pyrovae_argv(argv) is not None or argv[0] in NOT_RUN | {"make"}, (
            f"README.md line {line}: {argv[0]} is neither checked by this test nor said not to run"
        )


def check_train_options(args):
    """The config resolution and model building that ``pyrovae train`` does before reading
    data (the input shape: MNIST's, or the digits')."""
    flags = {k: v for k, v in vars(args).items() if k in cfg.DEFAULTS}
    config = cfg.resolve(cfg.read_file(args.config) if args.config else {}, flags)
    shape = (1, 28, 28) if config["dataset"] in ("mnist", "fashion-mnist") else (1, 8, 8)
    cfg.build_model(config, shape)
    return config


@pytest.mark.parametrize(
    "line, argv",
    [c for c in shell_commands() if pyrovae_argv(c[1]) is not None],
    ids=lambda v: str(v)[:40],
)
def test_pyrovae_command_parses(line, argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text(MY_YAML)
    try:
        args = cli.parser().parse_args(pyrovae_argv(argv))
    except SystemExit as exit:
        pytest.fail(f"README.md line {line}: the CLI refuses {argv} (exit {exit.code})")
    if args.command == "train":
        check_train_options(args)


def test_digits_commands_run_for_one_epoch(tmp_path, monkeypatch, capsys):
    """The ``pyrovae`` commands on the digits (no GPU, no torchrun), in README order, each train
    for one epoch; ``evaluate`` and ``sample`` read the runs trained before them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text(MY_YAML)
    trained, ran = set(), []
    for line, argv in shell_commands():
        if argv[0] != "pyrovae":
            continue
        args = cli.parser().parse_args(argv[1:])
        if args.command == "train":
            config = check_train_options(args)
            if config["dataset"] != "digits" or args.device not in (None, "cpu"):
                continue
            extra = ["--epochs", "1", "--quiet"]
            if "mixture" in str(config["prior"]):
                extra += ["--pretrain-epochs", "1"]
            trained.add(config["out"])
        elif args.out not in trained:
            continue
        else:
            extra = []
        assert cli.main(argv[1:] + extra) == 0, f"README.md line {line}: {argv} failed"
        ran.append(argv[1])
    assert ran.count("train") >= 6 and "evaluate" in ran and "sample" in ran
    assert (tmp_path / "samples.png").stat().st_size > 100
    capsys.readouterr()


def test_make_targets_exist():
    for line, argv in shell_commands():
        if argv[0] == "make":
            done = subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True)
            assert done.returncode == 0, f"README.md line {line}: {done.stderr.decode()}"
