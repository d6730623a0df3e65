"""The bad-input catalogue ``docs/errors.md``: one test case per entry, and the lists agree.

Command-line cases run ``pyrovae.cli.main`` in this process and check: exit code 2, one line on
stderr matching the catalogue, and not a byte written, changed or removed under the test's
folder. Python cases check the ``ValueError`` and that ``fit`` wrote nothing.
"""

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

import pyrovae
from pyrovae import cli
from pyrovae.data import Data
from pyrovae.infer import checkpoint as ckpt
from pyrovae.models import VAE, ConditionalVAE
from pyrovae.runs import budget
from pyrovae.runs import config as cfg

CATALOGUE = Path(__file__).parents[1] / "docs" / "errors.md"
RUN = ["--hidden", "16", "--latent-dim", "2"]  # the options of the prepared run


def train(*flags, out="{out}"):
    return ["train", "--quiet", "--out", out, *flags]


def _truncate(run):
    path = run / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:100])


def _foreign(run):
    torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt")


class _Payload:
    """Unpickling it would create the folder ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _pickle_payload(run):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["history"] = _Payload(run.parent / "marker")
    torch.save(state, run / "checkpoint.pt")


def _drop_fields(run):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["optimizer"], state["rng"]
    torch.save(ckpt.sealed(state), run / "checkpoint.pt")  # a consistent checksum


def _no_config(run):
    """A run whose model fit could not describe (a user's class): only the checkpoint."""
    (run / "config.yaml").unlink()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["config"]
    torch.save(ckpt.sealed(state), run / "checkpoint.pt")  # a consistent checksum


def _idx_files(run, first):
    """MNIST's four IDX files under ``inputs/mnist``: valid headers and lengths (zeros), except
    the training images, which get the bytes ``first``."""
    raw = run.parent / "inputs" / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, magic, dims in (
        ("train-labels-idx1-ubyte", 2049, [60000]),
        ("t10k-images-idx3-ubyte", 2051, [10000, 28, 28]),
        ("t10k-labels-idx1-ubyte", 2049, [10000]),
    ):
        header = b"".join(v.to_bytes(4, "big") for v in (magic, *dims))
        (raw / name).write_bytes(header + bytes(int(np.prod(dims))))
    (raw / "train-images-idx3-ubyte").write_bytes(first)


def _python_data(run):
    """A run written by fit on rows given in Python: its config names no dataset."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["config"]["dataset"]
    torch.save(ckpt.sealed(state), run / "checkpoint.pt")  # a consistent checksum


def _input(name, write):
    """A prepare step that writes the file ``inputs/name`` with ``write(path)``."""

    def prepare(run):
        write(run.parent / "inputs" / name)

    return prepare


def _text(name, text):
    return _input(name, lambda path: path.write_text(text))


def _images(*sizes):
    def write(folder):
        folder.mkdir()
        for i, size in enumerate(sizes):
            Image.new("RGB", size).save(folder / f"{i}.png")

    return _input("images", write)


def _rows_run(run):
    """The run as if trained on a .csv of plain rows (no image shape) by ``--data``."""
    rows = run.parent / "inputs" / "rows.csv"
    np.savetxt(rows, np.random.default_rng(0).random((20, 64)), delimiter=",")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["config"]["dataset"]
    state["config"]["data"] = str(rows)
    torch.save(ckpt.sealed(state), run / "checkpoint.pt")  # a consistent checksum


def _two_processes(run):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["world_size"] = 2
    torch.save(ckpt.sealed(state), run / "checkpoint.pt")  # a consistent checksum


def _resealed(change):
    """A prepare step: ``change(state)`` applied to the run's checkpoint, saved with a
    consistent checksum (a well-formed file whose content is wrong)."""

    def prepare(run):
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        change(state)
        torch.save(ckpt.sealed(state), run / "checkpoint.pt")

    return prepare


def _first_moment_of_shape_2x2(state):
    entry = next(iter(state["optimizer"]["state"].values()))
    entry["exp_avg"] = torch.zeros(2, 2)


def _nan_weight(state):
    next(iter(state["model"].values()))[0] = float("nan")


def _nan_bytes(run):
    """NaN written over the first value of a weight, in the file's bytes."""
    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    weight = max(state["model"].values(), key=torch.numel)
    data = bytearray(path.read_bytes())
    at = data.find(weight.reshape(-1)[:4].numpy().tobytes())
    data[at : at + 4] = np.float32(np.nan).tobytes()
    path.write_bytes(bytes(data))


def _link(name, target="afile"):
    """A symbolic link ``RUN/name`` to ``inputs/target`` (a file outside the run)."""

    def prepare(run):
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(run.parent / "inputs" / target)

    return prepare


def _link_loop(run):
    (run / "loop").symlink_to(run / "loop")


# id: (argv, config file text or None, expected message, prepare(run folder) or None)
CLI = {
    "num-labels-model": (
        train("--num-labels", "100"),
        None,
        r"num_labels keeps only some training labels, for the semi-supervised VAE; use "
        r"--model ssvae",
        None,
    ),
    "condition-on-model": (
        train("--model", "gmm", "--num-components", "3", "--condition-on", "label"),
        None,
        r"model 'gmm' cannot condition on labels; use model vae \(it becomes cvae\)",
        None,
    ),
    "flag-unknown": (
        train("--num-epochs", "3"),
        None,
        r"unrecognized arguments: --num-epochs",
        None,
    ),
    "key-unknown": (train("--config", "{cfg}"), "epoch: 3", r"unknown config key\(s\) epoch", None),
    "config-missing": (
        train("--config", "{inputs}/no.yaml"),
        None,
        r"no.yaml does not exist",
        None,
    ),
    "config-not-yaml": (train("--config", "{cfg}"), "epochs: [3", r"not valid YAML at line", None),
    "config-not-mapping": (train("--config", "{cfg}"), "- 3", r"must hold a mapping", None),
    "config-key-type": (train("--config", "{cfg}"), "1: 3", r"key 1 is not a name", None),
    "model-unknown": (train("--model", "foo"), None, r"unknown model 'foo'; known models", None),
    "model-type": (train("--config", "{cfg}"), "model: 3", r"model must be a name", None),
    "model-option-foreign": (
        train("--num-components", "3"),
        None,
        r"num_components: not an option of model 'vae' \(its options: latent_dim",
        None,
    ),
    "dataset-unknown": (
        train("--dataset", "cifar"),
        None,
        r"unknown dataset 'cifar'; known datasets: digits",
        None,
    ),
    "data-root-type": (train("--config", "{cfg}"), "data_root: [1]", r"data_root must be", None),
    "data-root-empty": (
        train("--dataset", "mnist", "--data-root", "{inputs}/empty"),
        None,
        r"mnist: could not find train-images-idx3-ubyte.*a --data-root is only read",
        None,
    ),
    "binarize-unknown": (train("--binarize", "yes"), None, r"binarize must be one of none", None),
    "latent-dim-range": (train("--latent-dim", "0"), None, r"latent_dim must be a positive", None),
    "latent-dim-type": (
        train("--config", "{cfg}"),
        "latent_dim: 2.5",
        r"latent_dim must be a positive integer, got 2.5",
        None,
    ),
    "int-flag-type": (train("--epochs", "ten"), None, r"--epochs: invalid int value: 'ten'", None),
    "hidden-format": (train("--hidden", "256,x"), None, r"expected integers like 256,128", None),
    "hidden-range": (
        train("--config", "{cfg}"),
        "hidden: [256, 0]",
        r"hidden must be a non-empty list of positive integers",
        None,
    ),
    "activation-unknown": (
        train("--activation", "swish"),
        None,
        r"activation must be one of",
        None,
    ),
    "prior-unknown": (train("--prior", "foo"), None, r"unknown prior 'foo'; known priors: ", None),
    "prior-type": (
        train("--config", "{cfg}"),
        "prior: 3",
        r"prior must be a name or a mapping",
        None,
    ),
    "posterior-unknown": (train("--posterior", "foo"), None, r"unknown posterior 'foo'", None),
    "likelihood-unknown": (train("--likelihood", "foo"), None, r"unknown likelihood 'foo'", None),
    "encoder-unknown": (
        train("--config", "{cfg}"),
        "encoder: {name: foo}",
        r"unknown encoder",
        None,
    ),
    "decoder-unknown": (train("--config", "{cfg}"), "decoder: foo", r"unknown decoder 'foo'", None),
    "part-no-name": (
        train("--likelihood", "{scale: 1}"),
        None,
        r"likelihood must be a name or a mapping",
        None,
    ),
    "part-option-unknown": (
        train("--likelihood", "{name: gaussian, sigma: 1}"),
        None,
        r"unknown option\(s\) sigma for likelihood 'gaussian'; valid options: scale, init_scale",
        None,
    ),
    "part-option-range": (
        train("--likelihood", "{name: gaussian, scale: -1}"),
        None,
        r"scale must be a positive number or 'learned'",
        None,
    ),
    "part-mismatch": (
        train("--prior", "hyperspherical_uniform"),
        None,
        r"prior 'hyperspherical_uniform' lives on the sphere but posterior 'normal' on R\^d",
        None,
    ),
    "noise-foreign": (train("--noise", "0.1"), None, r"noise: not an option of model 'vae'", None),
    "covariance-type": (train("--config", "{cfg}"), "covariance: 3", r"covariance must be", None),
    "guide-type": (
        train("--config", "{cfg}"),
        "guide: 3",
        r"guide must be a name or a mapping",
        None,
    ),
    "epochs-range": (
        train("--epochs", "0"),
        None,
        r"epochs must be a positive integer, got 0",
        None,
    ),
    "epochs-type": (
        train("--config", "{cfg}"),
        "epochs: ten",
        r"epochs must be .* got 'ten'",
        None,
    ),
    "batch-size-range": (train("--batch-size", "-5"), None, r"batch_size must be a positive", None),
    "lr-range": (train("--lr", "0"), None, r"lr must be a positive number, got 0.0", None),
    "lr-nan": (train("--lr", "nan"), None, r"lr must be a positive number, got nan", None),
    "lr-type": (
        train("--config", "{cfg}"),
        "lr: fast",
        r"lr must be a positive number, got 'fast'",
        None,
    ),
    "seed-range": (train("--seed", "-1"), None, r"seed must be an integer in \[0, 2\*\*32\)", None),
    "seed-type": (train("--config", "{cfg}"), "seed: 1.5", r"seed must be an integer in", None),
    "warmup-range": (
        train("--warmup-epochs", "-1"),
        None,
        r"warmup_epochs must be a number >= 0",
        None,
    ),
    "warmup-inf": (train("--warmup-epochs", "inf"), None, r"warmup_epochs must .* got inf", None),
    "patience-range": (
        train("--patience", "0"),
        None,
        r"patience must be a positive integer",
        None,
    ),
    "num-particles-range": (train("--num-particles", "0"), None, r"num_particles must be", None),
    "num-samples-range": (
        train("--num-samples", "0"),
        None,
        r"num_samples must be a positive",
        None,
    ),
    "out-type": (["train", "--quiet", "--config", "{cfg}"], "out: 5", r"out must be a name", None),
    "out-is-file": (train(out="{inputs}/afile"), None, r"afile is a file; give a folder", None),
    "run-exists": (
        train(*RUN, out="{run}"),
        None,
        r"checkpoint.pt exists; resume it .*--resume.*--overwrite",
        None,
    ),
    "checkpoint-other-model": (
        train("--resume", "--hidden", "16", "--latent-dim", "3", out="{run}"),
        None,
        r"checkpoint .* was written by a different model \(VAE; first differences",
        _no_config,
    ),
    "resume-changed": (
        train("--resume", "--lr", "0.01", "--seed", "3", "--epochs", "5", out="{run}"),
        None,
        r"--resume would change lr 0.01 \(the run's: 0.001\), seed 3 \(the run's: 0\): the "
        r"result would differ",
        None,
    ),
    "resume-epochs-below": (
        train("--resume", "--epochs", "1", out="{run}"),
        None,
        r"epochs 1 is below the 2 epochs this run has already trained; resume with --epochs 2",
        None,
    ),
    "resume-and-overwrite": (
        train("--resume", "--overwrite", out="{run}"),
        None,
        r"give --resume or --overwrite, not both",
        None,
    ),
    "checkpoint-truncated": (
        train("--resume", *RUN, out="{run}"),
        None,
        r"cannot read checkpoint .* it is truncated or not a pyrovae checkpoint",
        _truncate,
    ),
    "checkpoint-foreign": (
        train("--resume", *RUN, out="{run}"),
        None,
        r"is not a pyrovae checkpoint",
        _foreign,
    ),
    "checkpoint-pickle": (
        ["evaluate", "{run}"],
        None,
        r"holds a pickled (posix|nt).mkdir, not only tensors .* refused unloaded",
        _pickle_payload,
    ),
    "checkpoint-fields": (
        train("--resume", *RUN, out="{run}"),
        None,
        r"checkpoint .* lacks optimizer, rng: it was not written whole by pyrovae",
        _drop_fields,
    ),
    "checkpoint-world-size": (
        train("--resume", *RUN, out="{run}"),
        None,
        r"written by 2 process\(es\) .* resume with torchrun --nproc-per-node 2",
        _two_processes,
    ),
    "evaluate-no-run": (["evaluate", "{inputs}/empty"], None, r"holds no trained run", None),
    "evaluate-python-data": (
        ["evaluate", "{run}"],
        None,
        r"was trained by fit on data given in Python, which the command line cannot load",
        _python_data,
    ),
    "train-device": (
        train("--device", "tpu"),
        None,
        r"argument --device: expected one of cpu, cuda, mps, auto",
        None,
    ),
    "train-input-dim": (
        train("--input-dim", "10"),
        None,
        r"input_dim \[10\] does not match the digits rows \(64 values",
        None,
    ),
    "evaluate-num-samples": (
        ["evaluate", "{run}", "--num-samples", "0"],
        None,
        r"argument --num-samples: expected a positive integer",
        None,
    ),
    "sample-n": (["sample", "{run}", "-n", "0"], None, r"argument -n: expected a positive", None),
    "sample-folder": (
        ["sample", "{run}", "-o", "{inputs}/none/x.png"],
        None,
        r"the folder of -o .*none/x.png does not exist; create it first",
        None,
    ),
    "sample-not-png": (
        ["sample", "{run}", "-o", "{inputs}/x.txt"],
        None,
        r"pictures are written as PNG; give a path ending in .png",
        None,
    ),
    "evaluate-seed": (
        ["evaluate", "{run}", "--seed", "-1"],
        None,
        r"argument --seed: expected an integer in \[0, 2\*\*32\)",
        None,
    ),
    "model-needs-option": (
        train("--model", "gmm"),
        None,
        r"model 'gmm' needs num_components: give --num-components",
        None,
    ),
    "part-sets-shape": (
        train("--encoder", "{name: mlp, input_dim: 5}"),
        None,
        r"input_dim: set by the model, not an option of encoder 'mlp'",
        None,
    ),
    "part-not-yaml": (
        train("--prior", "{"),
        None,
        r"argument --prior: expected \{name: ..., option: value\}: the mapping is not valid YAML",
        None,
    ),
    "part-trailing-text": (
        train("--prior", "{name: normal}x"),
        None,
        r"argument --prior: expected .* the mapping is not valid YAML at line 1",
        None,
    ),
    "part-hidden-empty": (
        train("--encoder", "{name: mlp, hidden: []}"),
        None,
        r"hidden must be a non-empty list of positive integers, got \[\]",
        None,
    ),
    "part-hidden-inf": (
        train("--encoder", "{name: mlp, hidden: [.inf]}"),
        None,
        r"hidden must be a non-empty list of positive integers, got \[inf\]",
        None,
    ),
    "part-option-type": (
        train("--likelihood", "{name: gaussian, init_scale: abc}"),
        None,
        r"init_scale must be a positive number, got 'abc'",
        None,
    ),
    "config-duplicate-key": (
        train("--config", "{cfg}"),
        "lr: 1e-3\nepochs: 2\nlr: 1e-2",
        r"key 'lr' appears twice \(lines 1 and 3\); keep one",
        None,
    ),
    "noise-range": (
        train("--model", "llgae", "--num-components", "2", "--noise", "-1"),
        None,
        r"noise must be a positive number or 'learned', got -1.0",
        None,
    ),
    "noise-type": (
        train("--model", "llgae", "--num-components", "2", "--noise", "abc"),
        None,
        r"argument --noise: expected a number or 'learned', got 'abc'",
        None,
    ),
    "idx-corrupt": (
        train("--dataset", "mnist", "--data-root", "{inputs}/mnist"),
        None,
        r"train-images-idx3-ubyte is not a valid IDX file \(its magic number is 0x.*corrupt",
        lambda run: _idx_files(run, bytes(range(256)) * 4),
    ),
    "idx-truncated": (
        train("--dataset", "mnist", "--data-root", "{inputs}/mnist"),
        None,
        r"not a valid IDX file \(its header announces 47040016 bytes \(60000 x 28 x 28\), it "
        r"has 16",
        lambda run: _idx_files(run, b"".join(v.to_bytes(4, "big") for v in (2051, 60000, 28, 28))),
    ),
    "idx-empty": (
        train("--dataset", "mnist", "--data-root", "{inputs}/mnist"),
        None,
        r"not a valid IDX file \(it has 0 bytes, fewer than an IDX header\)",
        lambda run: _idx_files(run, b""),
    ),
    "latent-dim-memory": (
        train("--latent-dim", "1e8"),
        None,
        r"training this model \(3.86e\+10 parameters\) would need about 926 GB, more than the "
        r"16 GB of memory free here; choose a smaller latent_dim",
        None,
    ),
    "size-overflow": (
        train("--latent-dim", "1e23"),
        None,
        r"a size of this model is too large for a tensor dimension: choose a smaller latent_dim",
        None,
    ),
    "hidden-memory": (
        train("--hidden", "100000000"),
        None,
        r"training this model \(1.36e\+10 parameters\) would need about 326 GB",
        None,
    ),
    "num-components-memory": (
        train("--model", "gmm", "--num-components", "100000000"),
        None,
        r"training this model \(1.29e\+10 parameters\) would need about 310 GB",
        None,
    ),
    "step-memory": (
        train("--num-particles", "20000"),
        None,
        r"a training step \(100 rows × 20000 particles, ~7.5e\+03 bytes each\) beside the model "
        r"would need about 30 GB, more than the 16 GB of memory free here; lower batch_size or "
        r"num_particles",
        None,
    ),
    "step-time": (
        train("--hidden", "15000,15000", "--batch-size", "1150"),
        None,
        r"a training step \(1150 rows × 1 particles, ~3.12e\+12 floating-point operations\) would "
        r"take at least 5.2 minutes here, at this machine's 1e\+10 per second for a matrix "
        r"product; the most accepted is 60 s; lower batch_size",
        None,
    ),
    "step-stopped": (
        train(
            "--prior",
            "vamp",
            "--latent-dim",
            "200",
            "--elbo",
            "renyi",
            "--posterior",
            "{name: iaf, num_flows: 12}",
        ),
        None,
        r"a training step \(100 rows × 1 particles\) would take more than 60 s here, at this "
        r"machine's 1e\+10 per second for a matrix product \(measuring stopped: its first 2 rows "
        r"alone pass that\)",
        None,
    ),  # fmt: skip
    "epochs-bound": (
        train("--epochs", "1e23"),
        None,
        r"training would evaluate the model on 1.15e\+26 \(row, particle\) pairs .* would not end",
        None,
    ),
    "evaluate-num-samples-bound": (
        ["evaluate", "{run}", "--num-samples", "1e8"],
        None,
        r"evaluation would score 3.59e\+10 \(row, sample\) pairs .* --num-samples 27855153 or",
        None,
    ),
    "sample-n-memory": (
        ["sample", "{run}", "-n", "1e8", "-o", "{inputs}/s.png"],
        None,
        r"a grid of 100000000 samples would need about 5.35e\+03 GB, more than the 16 GB",
        None,
    ),
    "num-components-range": (
        train("--num-components", "0"),
        None,
        r"num_components must be a positive integer",
        None,
    ),
    "elbo-unknown": (
        train("--elbo", "elbo"),
        None,
        r"unknown elbo 'elbo'; known objectives: trace, meanfield, iwae, renyi",
        None,
    ),
    "alpha-foreign": (
        train("--elbo", "iwae", "--alpha", "0.5"),
        None,
        r"alpha is an option of elbo 'renyi', not of elbo 'iwae'",
        None,
    ),
    "alpha-range": (
        train("--elbo", "renyi", "--alpha", "1"),
        None,
        r"alpha must be a number >= 0 other than 1 \(alpha = 1 is the ELBO",
        None,
    ),
    "beta-range": (train("--beta", "-1"), None, r"beta must be a number >= 0", None),
    "elbo-enumerated": (
        train("--prior", "mixture", "--elbo", "meanfield"),
        None,
        r"elbo 'meanfield' cannot sum out the model's enumerated discrete site",
        None,
    ),
    "elbo-two-plates": (
        train("--model", "ssvae", "--num-labels", "100", "--elbo", "iwae"),
        None,
        r"elbo 'iwae' weights the samples of each row of one data plate; this model's labelled "
        r"and unlabelled rows are two plates \(the semi-supervised VAE\): use elbo 'trace'",
        None,
    ),
    "vamp-planar": (
        train("--prior", "vamp", "--posterior", "planar"),
        None,
        r"posterior 'planar' can be evaluated only at its own samples .* 'normal' or 'iaf'",
        None,
    ),
    "run-link": (
        train("--resume", "--hidden", "16", "--latent-dim", "2", "--epochs", "3", out="{run}"),
        None,
        r"run/.lock is a symbolic link; pyrovae follows no link in a run folder: remove it",
        _link(".lock"),
    ),
    "run-link-read": (
        ["evaluate", "{run}"],
        None,
        r"run/checkpoint.pt is a symbolic link; pyrovae follows no link in a run folder",
        _link("checkpoint.pt"),
    ),
    "out-link-loop": (
        train(out="{run}/loop"),
        None,
        r"--out .*/loop is a loop of symbolic links; give a folder",
        _link_loop,
    ),
    "out-root": (train(out="/"), None, r"--out / is a file system's root; give a folder", None),
    "out-not-a-run": (
        train(out="{inputs}"),
        None,
        r"--out .*inputs holds 2 other file\(s\) and is not a pyrovae run",
        None,
    ),
    "out-too-long": (
        train(out="{out}/" + "a" * 300),
        None,
        r"--out .* cannot be made \(File name too long\); give another folder",
        None,
    ),
    "checkpoint-optimizer-shape": (
        train("--resume", "--hidden", "16", "--latent-dim", "2", "--epochs", "3", out="{run}"),
        None,
        r"the checkpoint's optimizer state exp_avg of parameter \d+ is \(2, 2\) float32, not "
        r"\(\d+(, \d+)?\) float32",
        _resealed(_first_moment_of_shape_2x2),
    ),
    "checkpoint-inconsistent": (
        ["evaluate", "{run}"],
        None,
        r"checkpoint .* has fields of the wrong type \(history: not the per-epoch lists of 2 ",
        _resealed(lambda state: state.update(history={})),
    ),
    "checkpoint-corrupt": (
        ["evaluate", "{run}"],
        None,
        r"run/checkpoint.pt is corrupt: checksum mismatch",
        _nan_bytes,
    ),
    "checkpoint-non-finite": (
        ["sample", "{run}", "-o", "{out}.png"],
        None,
        r"checkpoint .* holds non-finite weights \(model ",
        _resealed(_nan_weight),
    ),
    "config-not-a-file": (
        train("--config", "/dev/null"),
        None,
        r"config file /dev/null is not a regular file",
        None,
    ),
    "config-stray-file": (
        train("--config", "{cfg}"),
        "root:$6$salt$hash:19000:0:99999:7:::\nuser: $6$other\n",
        r"unknown config key\(s\) user, 1 that are not option names",
        None,
    ),
    "config-base-60": (
        train("--config", "{cfg}"),
        "lr: 1:10",
        r"lr must be a positive number, got '1:10'",
        None,
    ),
    "config-bool-number": (
        train("--config", "{cfg}"),
        "epochs: true",
        r"epochs must be a positive integer, got True",
        None,
    ),
    "data-and-dataset": (
        train("--data", "{inputs}/x.csv", "--dataset", "digits"),
        None,
        r"give --data .*x.csv or --dataset digits, not both",
        None,
    ),
    "data-labels-missing": (
        train("--data", "{inputs}/x.csv", "--condition-on", "label"),
        None,
        r"model 'cvae' learns from labels: give --labels COLUMN, the column \(or key\) of",
        None,
    ),
    "labels-without-data": (
        train("--labels", "3"),
        None,
        r"labels name a column or key of your own file: give --data PATH",
        None,
    ),
    "labels-type": (
        train("--config", "{cfg}"),
        "data: x.csv\nlabels: [1]",
        r"labels must be a column name or index, got \[1\]",
        None,
    ),
    "data-missing": (
        train("--data", "{inputs}/nothere.csv"),
        None,
        r"nothere.csv does not exist; give a .npy, .npz, .csv, .pt file or a folder of images",
        None,
    ),
    "data-kind": (
        train("--data", "{inputs}/afile"),
        None,
        r"afile: unknown kind of file ''; give a .npy, .npz, .csv, .pt file or a folder",
        None,
    ),
    "data-csv-not-number": (
        train("--data", "{inputs}/x.csv"),
        None,
        r"x.csv: line 2, column 2: 'x' is not a number; give numbers only",
        _text("x.csv", "0.1,0.2\n0.3,x\n"),
    ),
    "data-csv-ragged": (
        train("--data", "{inputs}/x.csv"),
        None,
        r"x.csv: line 2 has 1 values, the first line 2; every line needs the same columns",
        _text("x.csv", "0.1,0.2\n0.3\n"),
    ),
    "data-no-column": (
        train("--data", "{inputs}/x.csv", "--labels", "c"),
        None,
        r"x.csv has no column 'c'; its columns: a, b",
        _text("x.csv", "a,b\n0.1,0\n0.2,1\n0.3,0\n"),
    ),
    "data-labels-fractional": (
        train("--data", "{inputs}/x.csv", "--labels", "b"),
        None,
        r"x.csv: labels must be whole numbers \(class indices\), got \[0.5",
        _text("x.csv", "a,b\n0.1,0.5\n0.2,1\n0.3,0\n"),
    ),
    "data-npz-ambiguous": (
        train("--data", "{inputs}/x.npz"),
        None,
        r"x.npz holds arrays 'u', 'v' besides the labels; name the data with key=NAME",
        _input("x.npz", lambda p: np.savez(p, u=np.zeros((4, 2)), v=np.zeros((4, 2)))),
    ),
    "data-integers": (
        train("--data", "{inputs}/x.npy"),
        None,
        r"x.npy: data must be floating point, got torch.uint8; scale them to \[0, 1\] first",
        _input("x.npy", lambda p: np.save(p, np.ones((5, 2), np.uint8))),
    ),
    "data-not-probabilities": (
        train("--data", "{inputs}/x.csv"),
        None,
        r"x.csv: binarize='dynamic' draws each value v as Bernoulli\(v\), so the rows must lie "
        r"in \[0, 1\], got values in 0…16",
        _text("x.csv", "0,16\n1,2\n3,4\n5,6\n7,8\n"),
    ),
    "data-images-mixed": (
        train("--data", "{inputs}/images"),
        None,
        r"images: mixed image sizes, 0.png is \(3, 4, 4\) \(C, H, W\), 1.png is \(3, 5, 4\)",
        _images((4, 4), (4, 5)),
    ),
    "data-images-none": (
        train("--data", "{inputs}/empty"),
        None,
        r"empty holds no images \(.*\); put the images in that folder itself",
        None,
    ),
    "sample-rows": (
        ["sample", "{run}", "-o", "{inputs}/s.png"],
        None,
        r"the rows of run .* are not images \(64 values each\): give -o FILE.csv or FILE.npy",
        _rows_run,
    ),
    "condition-dim-labels": (
        train("--condition-on", "label", "--condition-dim", "3"),
        None,
        r"ConditionalVAE conditions on real vectors \(N, 3\) \(condition_dim\), but the train "
        r"rows' y has shape \(1150,\)",
        None,
    ),
    "logger-unknown": (
        train("--logger", "csv", "--logger", "comet"),
        None,
        r"logger must be one of csv, mlflow, tensorboard, wandb, got 'comet'",
        None,
    ),
    "num-workers-range": (
        train("--num-workers", "-1"),
        None,
        r"num_workers must be an integer >= 0, got -1",
        None,
    ),
    "conv-options": (
        train("--encoder", "{name: conv, kernel_size: 4}"),
        None,
        r"kernel_size must be an odd positive integer",
        None,
    ),
}


def _bernoulli_out_of_range():
    return torch.rand(10, 64) * 2


def _with_nan():
    x = torch.rand(10, 64)
    x[3, 7] = float("nan")
    return x


# id: (call(out folder), expected message)
PYTHON = {
    "labels-missing": (
        lambda out: pyrovae.fit(
            ConditionalVAE(64, 2, num_classes=10), torch.rand(8, 64), epochs=1, out=out
        ),
        r"ConditionalVAE learns from labels but the train rows have none; give labelled data",
    ),
    "data-shape": (
        lambda out: _fit(torch.rand(5, 8), out),
        r"data must have shape \(N, 64\), got \(5, 8\)",
    ),
    "data-1d": (
        lambda out: _fit(torch.rand(64), out),
        r"data must have shape \(N, 64\), got \(64,\)",
    ),
    "data-dtype": (
        lambda out: _fit(torch.ones(5, 64, dtype=torch.long), out),
        r"floating-point tensor, got Tensor of dtype torch.int64",
    ),
    "data-range": (
        lambda out: _fit(_bernoulli_out_of_range(), out),
        r"Bernoulli likelihood needs data in \[0, 1\]",
    ),
    "data-nan": (lambda out: _fit(_with_nan(), out), r"data contain NaN or inf \(rows \[3\]"),
    "data-empty": (lambda out: _fit(torch.empty(0, 64), out), r"the data set is empty"),
    "data-type": (lambda out: _fit("digits", out), r"data must be a pyrovae.data.Data, a tensor"),
    "arrays-integer": (
        lambda out: pyrovae.data.from_arrays(np.ones((5, 4), dtype=np.int64)),
        r"data must be floating point, got torch.int64",
    ),
    "arrays-too-few": (
        lambda out: pyrovae.data.from_arrays(np.ones((2, 4), dtype=np.float32)),
        r"N >= 3",
    ),
    "arrays-channels-last": (
        lambda out: pyrovae.data.from_arrays(np.zeros((5, 32, 32, 3), dtype=np.float32)),
        r"look channels-last \(N, H, W, C\); pass them channels-first",
    ),
    "conv-no-image": (
        lambda out: VAE(64, 2, encoder="conv"),
        r"a conv network needs images: input_dim=\(C, H, W\), got \(64,\)",
    ),
    "vamp-autoguide": (
        lambda out: VAE(64, 2, prior="vamp", guide="auto_normal"),
        r"prior 'vamp' is built from the encoder's posterior, and guide 'auto_normal' has no",
    ),
    "fit-elbo-alpha": (
        lambda out: _fit(torch.rand(8, 64), out, elbo="trace", alpha=0.5),
        r"alpha is an option of elbo 'renyi', not of elbo 'trace'",
    ),
    "fit-epochs": (
        lambda out: _fit(torch.rand(8, 64), out, epochs=0),
        r"epochs must be a positive",
    ),
    "fit-lr": (lambda out: _fit(torch.rand(8, 64), out, lr=float("inf")), r"lr must .* got inf"),
    "fit-seed": (
        lambda out: _fit(torch.rand(8, 64), out, seed=-1),
        r"seed must be an integer in \[0, 2\*\*32\)",
    ),
    "fit-patience-no-valid": (
        lambda out: _fit(torch.rand(8, 64), out, patience=3),
        r"early stopping \(patience\) needs a validation split",
    ),
    "fit-distributed-no-env": (
        lambda out: _fit(torch.rand(8, 64), out, distributed=True),
        r"needs the torchrun environment .* torchrun --nproc-per-node N",
    ),
    "fit-unknown-option": (
        lambda out: _fit(torch.rand(8, 64), out, epoch=3),
        r"unknown fit option\(s\) epoch; fit options: epochs, batch_size",
    ),
    "fit-score-test": (
        lambda out: _fit(torch.rand(8, 64), out, score_test="sometimes"),
        r"score_test must be one of end, epoch, never",
    ),
    "fit-device": (
        lambda out: _fit(torch.rand(8, 64), out, device="tpu"),
        r"device must be one of cpu, cuda, mps, auto, got 'tpu'",
    ),
    "fit-dataloader": (
        lambda out: _fit(DataLoader(TensorDataset(torch.rand(8, 64))), out),
        r"pass the DataLoader's .dataset: fit draws its own batches",
    ),
    "dataset-item": (
        lambda out: _fit([(torch.rand(64), 0, "extra")] * 5, out),
        r"a Dataset item must be a row, \(x,\) or \(x, y\); got a tuple of 3",
    ),
    "dataset-binarize": (
        lambda out: Data(TensorDataset(torch.rand(8, 64)), binarize="static"),
        r"binarize='static' draws whole splits once, which a Dataset read batch by batch",
    ),
    "vae-guide-unknown": (
        lambda out: VAE(64, 2, guide="auto_nope"),
        r"unknown guide 'auto_nope' for a VAE; known guides: amortized, auto_normal",
    ),
    "vae-autoguide-parts": (
        lambda out: VAE(64, 3, guide="auto_normal", posterior="von_mises_fisher"),
        r"guide 'auto_normal' replaces the encoder and the posterior part",
    ),
    "vae-autoguide-sphere": (
        lambda out: VAE(64, 3, guide="auto_delta", prior="hyperspherical_uniform"),
        r"guide 'auto_delta' needs a prior on R\^d, not on the sphere",
    ),
    "autoguide-encode": (
        lambda out: VAE(64, 2, guide="auto_normal").encode(torch.rand(3, 64)),
        r"this VAE's guide 'auto_normal' is not amortised: it has no encoder",
    ),
    "evaluate-not-amortized": (
        lambda out: pyrovae.evaluate(VAE(64, 2, guide="auto_normal"), torch.rand(4, 64)),
        r"the model's guide 'auto_normal' is not amortised: its posteriors belong to the "
        r"training rows",
    ),
    "fit-patience-not-amortized": (
        lambda out: pyrovae.fit(
            VAE(64, 2, guide="auto_normal"), Data(torch.rand(8, 64), torch.rand(4, 64)), patience=2
        ),
        r"early stopping \(patience\) needs validation scores, which a non-amortised guide",
    ),
}


def _fit(data, out, **options):
    return pyrovae.fit(VAE(64, 2, hidden=(16,)), data, out=out, progress=False, **options)


# ids whose cases need another live process: tested in the file named
ELSEWHERE = {
    "run-in-use": "tests/infer/test_run_folder.py",
    "checkpoint-fields-each": "tests/test_hostile_files.py",
    "checkpoint-flipped-bytes": "tests/test_hostile_files.py",
    "resume-spelling": "tests/test_hostile_config.py",
    "save-disk-full": "tests/test_hostile_config.py",
    "train-diverged": "tests/test_hostile_config.py",
    "evaluate-non-finite": "tests/test_hostile_config.py",
    "interrupted": "tests/test_hostile_config.py",
}


def _catalogue_ids():
    return re.findall(r"^\| `([a-z0-9-]+)` \|", CATALOGUE.read_text(), flags=re.MULTILINE)


def test_every_catalogue_entry_has_a_test_and_every_test_an_entry():
    ids = _catalogue_ids()
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted([*CLI, *PYTHON, *ELSEWHERE])


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory):
    """A trained run written the way ``pyrovae train`` writes it (without the pictures)."""
    run = tmp_path_factory.mktemp("prepared") / "run"
    config = cfg.resolve({}, {"hidden": [16], "latent_dim": 2, "epochs": 2, "out": str(run)})
    data = cfg.load_data(config)
    model = cfg.build_model(config, data.input_dim)
    how = {"dataset": "digits", "binarize": config["binarize"], "out": str(run)}
    pyrovae.fit(model, data, epochs=2, out=run, progress=False, config=how)
    return run


@pytest.fixture
def offline(monkeypatch):
    """torchvision's download as it goes without a network: the folder made, then an error."""

    def download(self):
        Path(self.raw_folder).mkdir(parents=True, exist_ok=True)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", download)


def _fill(arg, places):
    for name, path in places.items():
        arg = arg.replace(f"{{{name}}}", str(path))
    return arg


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.is_file() and p.read_bytes() for p in folder.rglob("*")}


@pytest.mark.parametrize("case", list(CLI))
def test_cli_refuses_bad_input_in_one_line_with_exit_code_2(
    case, prepared_run, offline, tmp_path, capsys, monkeypatch
):
    argv, text, message, prepare = CLI[case]
    monkeypatch.setattr(budget, "memory_bytes", lambda device=None: 16e9)
    monkeypatch.setattr(budget, "flops_per_second", lambda device: 1e10)
    monkeypatch.delenv("PYROVAE_DATA", raising=False)
    inputs = tmp_path / "inputs"
    (inputs / "empty").mkdir(parents=True)
    (inputs / "afile").write_text("not a folder")
    if text is not None:
        (inputs / "config.yaml").write_text(text)
    shutil.copytree(prepared_run, tmp_path / "run")
    if prepare is not None:
        prepare(tmp_path / "run")
    places = {"out": tmp_path / "out", "run": tmp_path / "run", "inputs": inputs}
    places["cfg"] = inputs / "config.yaml"
    before = _snapshot(tmp_path)
    try:
        code = cli.main([_fill(arg, places) for arg in argv])
    except SystemExit as exit:  # argparse
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", list(PYTHON))
def test_python_api_refuses_bad_input_and_writes_nothing(case, tmp_path):
    call, message = PYTHON[case]
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "out")
    assert not (tmp_path / "out").exists()
