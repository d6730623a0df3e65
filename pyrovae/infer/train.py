"""``fit``: stochastic variational inference for any pyrovae model (or model/guide object).

Each step minimises the negative ELBO of a mini-batch divided by its size, so the loss is the
per-example negative ELBO whatever the batch size, with ``torch.optim.Adam`` on the model's
parameters and any ``pyro.param`` sites its model and guide create. By default the ELBO is
``Trace_ELBO``, or ``TraceEnum_ELBO(max_plate_nesting=1)`` for a model with enumerated sites;
any Pyro ELBO object may be passed.

Under ``torchrun`` the same loop runs data-parallel (:mod:`pyrovae.infer.distributed`); every
step passes the numerical guard (:mod:`pyrovae.infer.guard`) before the parameters move, and
checkpoints (:mod:`pyrovae.infer.checkpoint`) let a killed run resume exactly.
"""

import contextlib
import copy
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pyro
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from pyro.poutine.messenger import Messenger
from tqdm.auto import tqdm

from .. import checks
from ..checks import device_dtype
from ..data import Data, Split
from . import checkpoint as ckpt
from .distributed import Context
from .distributed import setup as distributed_setup
from .guard import NonFiniteError
from .step import adam, make_step, named_parameters, trainable_parameters

CHECKPOINT, METRICS = "checkpoint.pt", "metrics.json"


class scale_latents(Messenger):
    """Like ``poutine.scale``, but only on latent (unobserved) sample sites.

    Applied to both model and guide it multiplies the KL part of the ELBO by ``beta``:
    E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z)) — the KL warm-up of Sønderby et al. 2016.
    """

    def __init__(self, beta=1.0):
        super().__init__()
        self.beta = beta

    def _process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"] and self.beta != 1.0:
            msg["scale"] = msg["scale"] * self.beta


def default_elbo(model, num_particles=1):
    """``TraceEnum_ELBO`` for models with enumerated sites, else ``Trace_ELBO``."""
    kwargs = {"num_particles": num_particles, "vectorize_particles": num_particles > 1}
    if getattr(model, "has_enumerated_sites", False):
        return TraceEnum_ELBO(max_plate_nesting=1, **kwargs)
    return Trace_ELBO(max_plate_nesting=1, **kwargs)


def as_data(data):
    """``Data`` as is; a tensor or array becomes training rows with no validation or test set."""
    if isinstance(data, Data):
        return data
    try:
        return Data(Split(torch.as_tensor(data)))
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"data must be a pyrovae.data.Data, a tensor or an array of rows (N, D), got "
            f"{type(data).__name__}; wrap other data with pyrovae.data.from_arrays"
        ) from None


def fit(
    model,
    data,
    *,
    epochs=10,
    batch_size=128,
    lr=1e-3,
    seed=0,
    elbo=None,
    num_particles=1,
    warmup_epochs=0,
    patience=None,
    out=None,
    resume=False,
    overwrite=False,
    initialize=True,
    distributed=None,
    detect_anomaly=False,
    progress=True,
):
    """Train ``model`` (an object with ``model(x)`` and ``guide(x)``) by SVI on ``data``.

    :param data: :class:`pyrovae.data.Data` (training, validation and test rows) or a tensor of
        training rows ``(N, D)``.
    :param int epochs, batch_size: passes over the training rows and rows per step (per
        process: with W processes a step takes a global batch of ``batch_size × W`` rows).
    :param float lr: Adam's learning rate. Adam runs fused (one kernel for all parameters)
        where PyTorch has the fused kernels for the model's device and dtype (CPU, CUDA, MPS,
        XPU), else with ``foreach`` updates (:func:`pyrovae.infer.step.adam`); a checkpoint
        written by plain ``Adam`` resumes with it.
    :param int seed: seeds torch, numpy and random; with the same seed a run repeats exactly.
    :param elbo: a Pyro ELBO object; the default is chosen by :func:`default_elbo`.
    :param float warmup_epochs: KL warm-up: β grows linearly from 0 to 1 over this many epochs
        (per step), scaling every latent site of model and guide (:class:`scale_latents`).
    :param int patience: early stopping: stop when the validation ELBO has not improved for this
        many epochs, and keep the parameters of the best epoch.
    :param out: folder for ``checkpoint.pt`` (every epoch, atomically) and ``metrics.json``.
    :param bool resume: continue from ``out/checkpoint.pt`` if it exists; the result equals that
        of an uninterrupted run with the same seed (and number of processes).
    :param bool overwrite: allow starting afresh over an existing checkpoint.
    :param bool initialize: when the model has an ``initialize(x, seed)`` method (the Gaussian
        mixture's k-means++ start), call it on the training rows before the first step; never on
        a resume, which restores the trained parameters instead. (Every rank calls it alike;
        rank 0's result is then broadcast.)
    :param distributed: data-parallel training over the processes of ``torchrun``
        (:mod:`pyrovae.infer.distributed`): ``None`` detects it from the environment, ``True``
        requires it, ``False`` trains alone. Only rank 0 writes files.
    :param bool detect_anomaly: train with Pyro's argument validation and ``torch.autograd``'s
        anomaly detection (slow; to find the operation behind a NaN).
    :param bool progress: show a progress bar and a line per epoch (rank 0 only).
    :returns: the history, a dict of per-epoch lists: ``epoch``, ``train_elbo`` (the β-weighted
        objective averaged over the epoch's rows), ``valid_elbo``, ``test_elbo`` (single-sample
        ELBO per example on those splits), ``beta``, ``seconds``.
    :raises NonFiniteError: when a loss or gradient is NaN or infinite; the message names the
        step, the sample site and the likely cause, and no checkpoint is written after it.

    Pyro's validation (shape and argument checks) runs on one pass before training, with the
    caller's setting (on by default): mismatched model/guide sites and invalid distribution
    arguments fail there. The training steps run without it (unless ``detect_anomaly``), which
    saves about a tenth of a step's time; the numerical guard (:mod:`pyrovae.infer.guard`)
    still stops training at the first non-finite loss or gradient.
    """
    options = Options(
        epochs,
        batch_size,
        lr,
        seed,
        elbo,
        num_particles,
        warmup_epochs,
        patience,
        initialize,
        detect_anomaly,
        progress,
    )
    data = as_data(data)
    check = getattr(model, "check_data", None)
    for split in (data.train, data.valid, data.test):
        if check is not None and split is not None:
            check(split.x)
    if patience is not None and data.valid is None:
        raise ValueError("early stopping (patience) needs a validation split in the data")
    device, dtype = device_dtype(model)
    ctx = distributed_setup(distributed, device)
    try:
        path = Path(out) / CHECKPOINT if out is not None else None
        start = ctx.from_main(lambda: open_run(path, model, resume, overwrite, ctx.world_size))
        return _train(model, data, ctx, start, path, options)
    finally:
        ctx.close()


def _train(model, data, ctx, start, path, o):
    """The SVI loop of :func:`fit` with :class:`Options` ``o``, on this process's share of
    every global batch."""
    pyro.set_rng_seed(o.seed)
    elbo = o.elbo or default_elbo(model, o.num_particles)
    warmup = scale_latents()  # a handler on the stack costs time at every site: only if needed
    model_fn, guide_fn = model.model, model.guide
    if o.warmup_epochs:
        model_fn, guide_fn = warmup(model_fn), warmup(guide_fn)
    device, dtype = device_dtype(model)
    if o.initialize and start is None and hasattr(model, "initialize"):  # e.g. GMM: k-means++
        model.initialize(data.train.x.to(device, dtype), o.seed)
    params = trainable_parameters(
        model, elbo, model_fn, guide_fn, data.train.x[:2].to(device, dtype)
    )
    ctx.broadcast(params)
    step_fn = make_step(elbo, model, model_fn, guide_fn, named_parameters(model, params), ctx)
    optimizer = adam(params, o.lr)

    history = {k: [] for k in ("epoch", "train_elbo", "valid_elbo", "test_elbo", "beta", "seconds")}
    best = {"elbo": -math.inf, "epoch": None, "state": None, "wait": 0}
    first_epoch = 0
    pyro.set_rng_seed(ctx.seed(o.seed))  # each rank its own sampling noise
    if start is not None:
        ckpt.restore(start, model, optimizer, ctx.rank)
        history, best, first_epoch = start["history"], start["best"], start["epoch"]
        if o.patience is not None and best["wait"] >= o.patience:
            first_epoch = o.epochs  # the run had stopped early: nothing is left to train
        if ctx.is_main:  # a run killed between checkpoint and metrics catches up here
            _write_json(path.parent / METRICS, history)

    rows_per_step = o.batch_size * ctx.world_size
    steps_per_epoch = math.ceil(len(data.train) / rows_per_step)
    for epoch in range(first_epoch, o.epochs):
        tic = time.perf_counter()
        total, count = 0.0, 0
        bar = tqdm(
            data.batches(o.batch_size, epoch, o.seed, ctx.rank, ctx.world_size),
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{o.epochs}",
            disable=not (o.progress and ctx.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        with _anomaly_detection(o.detect_anomaly):  # validation was done by trainable_parameters
            for step, x in enumerate(bar):
                global_step = epoch * steps_per_epoch + step + 1
                warmup.beta = min(1.0, global_step / (o.warmup_epochs * steps_per_epoch or 1))
                rows = min(rows_per_step, len(data.train) - step * rows_per_step)
                total += step_fn(x.to(device, dtype), rows, optimizer, (epoch + 1, step + 1))
                count += len(x)
                bar.set_postfix(elbo=f"{-total / max(count, 1):.3f}", refresh=False)
        total, count = ctx.sum(total, count)
        history["epoch"].append(epoch + 1)
        history["train_elbo"].append(-total / count)
        history["beta"].append(warmup.beta)
        warmup.beta = 1.0
        for name, split in (("valid", data.valid), ("test", data.test)):
            score = split is not None
            value = elbo_per_example(elbo, model, split.x, o.batch_size, ctx) if score else None
            history[f"{name}_elbo"].append(value)
        history["seconds"].append(time.perf_counter() - tic)
        _check_metrics(history)
        stop = _early_stopping(best, history, o.patience, model)
        if o.progress and ctx.is_main:
            tqdm.write(_summary(history))
        if path is not None:
            _save(path, ctx, model, optimizer, epoch + 1, history, best)
        if stop:
            break
    if o.patience is not None and best["state"] is not None:
        model.load_state_dict(best["state"])
    return history


@dataclass(frozen=True)
class Options:
    """The training options of :func:`fit`, checked when made."""

    epochs: int
    batch_size: int
    lr: float
    seed: int
    elbo: object
    num_particles: int
    warmup_epochs: float
    patience: int | None
    initialize: bool
    detect_anomaly: bool
    progress: bool

    def __post_init__(self):
        checks.training_options(vars(self))


def open_run(path, model, resume, overwrite, world_size=1):
    """The checkpoint at ``path`` to resume (or ``None`` for a fresh start), after checking
    that it may be used; creates the folder and removes temporary files a killed save left
    behind. :func:`fit` runs it on rank 0 only."""
    if path is None:
        return None
    start = None
    if path.exists():
        if resume:
            start = ckpt.load(path, model)
            written_by = start.get("world_size", 1)
            if written_by != world_size:
                how = f"torchrun --nproc-per-node {written_by}" if written_by > 1 else "no torchrun"
                raise ValueError(
                    f"{path} was written by {written_by} process(es) and continues exactly only "
                    f"with as many (here {world_size}): resume with {how}"
                )
        elif not overwrite:
            raise FileExistsError(
                f"{path} exists; resume it (resume=True, --resume), pick another out folder, "
                "or pass overwrite=True (--overwrite) to start afresh"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt.remove_partial(path)
    return start


def _save(path, ctx, model, optimizer, epoch, history, best):
    """Checkpoint and metrics, written by rank 0 with every rank's RNG state."""
    extra = {"best": best, "world_size": ctx.world_size}
    rngs = ctx.gather(ckpt.rng_state())
    if ctx.active:
        extra["rng_by_rank"] = rngs
    if ctx.is_main:
        ckpt.save(path, model, optimizer, epoch, history, extra)
        _write_json(path.parent / METRICS, history)


def _check_metrics(history):
    """Refuse to record (and checkpoint) an epoch whose ELBOs are not finite."""
    for key in ("train_elbo", "valid_elbo", "test_elbo"):
        value = history[key][-1]
        if value is not None and not math.isfinite(value):
            raise NonFiniteError(
                f"the {key.replace('_', ' ')} of epoch {history['epoch'][-1]} is {value}; the "
                "parameters give a non-finite ELBO on these rows: check their range, lower lr, "
                "or rerun with --detect-anomaly; the last checkpoint is kept"
            )


@contextlib.contextmanager
def _anomaly_detection(enabled):
    """Pyro's argument validation and autograd's anomaly detection, both on or both off for
    the training steps in the ``with`` block (off, the numerical guard reports instead)."""
    with pyro.validation_enabled(enabled), torch.autograd.set_detect_anomaly(enabled):
        yield


@torch.no_grad()
def elbo_per_example(elbo, model, x, batch_size=1000, ctx=None):
    """Mean ELBO per example of the rows ``x`` (one sample from the guide per row); with a
    distributed :class:`~pyrovae.infer.distributed.Context` each rank scores every W-th row
    and the sums are added up."""
    device, dtype = device_dtype(model)
    ctx = ctx or Context()
    total = 0.0
    for chunk in torch.split(x[ctx.rank :: ctx.world_size], batch_size):
        total -= elbo.loss(model.model, model.guide, chunk.to(device, dtype))
    (total,) = ctx.sum(total)
    return total / x.shape[0]


def _early_stopping(best, history, patience, model):
    """Track the best validation ELBO; True when ``patience`` epochs passed without a gain."""
    if patience is None:
        return False
    value = history["valid_elbo"][-1]
    if value > best["elbo"]:
        best.update(elbo=value, epoch=history["epoch"][-1], wait=0)
        best["state"] = copy.deepcopy(model.state_dict())
        return False
    best["wait"] += 1
    return best["wait"] >= patience


def _summary(history):
    parts = [f"epoch {history['epoch'][-1]}", f"train elbo {history['train_elbo'][-1]:.3f}"]
    for name in ("valid", "test"):
        if history[f"{name}_elbo"][-1] is not None:
            parts.append(f"{name} elbo {history[f'{name}_elbo'][-1]:.3f}")
    return "  ".join(parts) + f"  ({history['seconds'][-1]:.1f}s)"


def _write_json(path, obj):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
