"""``fit``: stochastic variational inference for any pyrovae model (or model/guide object).

Each step minimises the negative ELBO of a mini-batch divided by its size, so the loss is the
per-example negative ELBO whatever the batch size, with ``torch.optim.Adam`` on the model's
parameters and any ``pyro.param`` sites its model and guide create (an ``AutoGuide``'s too).
By default the ELBO is ``Trace_ELBO``, or ``TraceEnum_ELBO(max_plate_nesting=1)`` for a model
with enumerated sites; any Pyro ELBO object may be passed.

The loop is short: everything else — KL warm-up, early stopping, test scoring, progress,
checkpoints, loggers — is a hook (:mod:`pyrovae.infer.callbacks`). Under ``torchrun`` the same
loop runs data-parallel (:mod:`pyrovae.infer.distributed`); every step passes the numerical
guard (:mod:`pyrovae.infer.guard`, inside :mod:`pyrovae.infer.step`) before the parameters
move, and checkpoints let a killed run resume exactly.
"""

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pyro
import torch

from .. import checks, sampling
from ..data import Data, as_split
from . import checkpoint as ckpt
from . import device as devices
from . import run_folder
from .callbacks import (
    Checkpoint,
    EarlyStopping,
    KLWarmup,
    Progress,
    TestScore,
    check_finite,
    scale_latents,
)
from .distributed import Context
from .distributed import setup as distributed_setup
from .objectives import make_elbo, objective_name
from .options import Options
from .step import adam, make_step, named_parameters, trainable_parameters

CHECKPOINT = "checkpoint.pt"
__all__ = ["Options", "TrainState", "default_elbo", "fit", "scale_latents"]


def default_elbo(model, num_particles=1):
    """``TraceEnum_ELBO`` for models with enumerated sites, else ``Trace_ELBO``."""
    return make_elbo("trace", model, num_particles)


def as_data(data):
    """``Data`` as is; a tensor, an array or a map-style ``Dataset`` becomes training rows with
    no validation or test set."""
    if isinstance(data, Data):
        return data
    if isinstance(data, torch.utils.data.DataLoader):
        raise ValueError(
            "pass the DataLoader's .dataset: fit draws its own batches (seeded by seed and "
            "epoch, so that a resumed run repeats exactly)"
        )
    try:
        split = as_split(data if hasattr(data, "__getitem__") else torch.as_tensor(data))
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"data must be a pyrovae.data.Data, a tensor or an array of rows (N, D) or a "
            f"map-style Dataset, got {type(data).__name__}; wrap other data with "
            "pyrovae.data.from_arrays"
        ) from None
    return Data(split)


def fit(
    model,
    data,
    *,
    out=None,
    resume=False,
    overwrite=False,
    distributed=None,
    device=None,
    logger=None,
    callbacks=(),
    config=None,
    **options,
):
    """Train ``model`` (any object with ``model(x)`` and ``guide(x)``: a pyrovae model, a
    user's pair, an ``AutoGuide`` of a user's model) by SVI on ``data``.

    :param data: :class:`pyrovae.data.Data` (training, validation and test rows), a tensor of
        training rows ``(N, D)`` or a map-style ``Dataset`` of them (items ``x``, ``(x,)`` or
        ``(x, y)``, e.g. a ``TensorDataset``; read batch by batch, with the same batches as the
        same rows given as a tensor). A model that learns from labels (``uses_labels``: the
        conditional and semi-supervised VAEs) is trained as ``model(x, y)`` with each batch's
        labels ``(B,)`` (−1 for an unlabelled row); one that ``conditions_on_labels`` is
        scored on the validation and test rows with their labels too.
    :param out: folder for ``checkpoint.pt`` (every epoch, atomically) and ``metrics.json``.
    :param bool resume: continue from ``out/checkpoint.pt`` if it exists; the result equals that
        of an uninterrupted run with the same seed (and number of processes).
    :param bool overwrite: allow starting afresh over an existing checkpoint.
    :param distributed: data-parallel training over the processes of ``torchrun``
        (:mod:`pyrovae.infer.distributed`): ``None`` detects it from the environment, ``True``
        requires it, ``False`` trains alone. Only rank 0 writes files.
    :param device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"`` (:mod:`pyrovae.infer.device`):
        the model is moved there and every batch follows; ``None`` keeps the model where it is.
        Under ``torchrun``, ``"cuda"`` is each rank's own GPU and the ranks talk over NCCL.
    :param logger: a :class:`~pyrovae.infer.loggers.Logger` (e.g.
        :class:`~pyrovae.infer.loggers.TensorBoardLogger`) or a list of them.
    :param callbacks: more :class:`~pyrovae.infer.callbacks.Callback` objects for the loop.
    :param dict config: entries to add to ``out/config.yaml`` (how the data were made, e.g.
        ``{"dataset": "mnist", "binarize": "dynamic"}``). On a fresh start with ``out``, ``fit``
        writes ``config.yaml``: the model's name, ``input_dim`` and options and the training
        options, every value used (:mod:`pyrovae.run`), so that ``pyrovae.load(out)`` rebuilds
        the model; for a model it cannot rebuild from names (a user's class) it warns instead.
    :param options: the training options, by keyword: ``epochs``, ``batch_size``, ``lr``,
        ``seed``, ``elbo``, ``num_particles``, ``warmup_epochs``, ``patience``, ``score_test``,
        ``initialize``, ``labelled_per_batch``, ``detect_anomaly``, ``progress``, ``jit``,
        ``precision`` (see
        :class:`Options`). The optimiser
        is ``torch.optim.Adam(fused=True)`` where PyTorch has fused kernels for the model's
        device and dtype (CPU, CUDA, MPS, XPU), else ``Adam(foreach=True)``.
    :returns: the history, a dict of per-epoch lists: ``epoch``, ``train_elbo`` (the β-weighted
        objective averaged over the epoch's rows; for ``elbo="iwae"``/``"renyi"`` that bound is
        in ``train_iwae_bound``/``train_renyi_bound`` instead and ``train_elbo`` is ``None``),
        ``valid_elbo``, ``test_elbo`` (single-sample ELBO per example on those splits, whatever
        the training objective; ``None`` where not scored: by default only the last
        entry, for the returned parameters), ``beta``, ``seconds``.
    :raises NonFiniteError: when a loss or gradient is NaN or infinite; the message names the
        step, the sample site and the likely cause, and no checkpoint is written after it.

    Parameters (the model's, any ``pyro.param`` site's) are found by one traced loss on the
    first real batch, so guides whose parameters take the batch's shape (an ``AutoNormal`` over
    local latents, trained full-batch) get the right ones. Pyro's validation (shape and
    argument checks) runs on that pass, with the caller's setting (on by default): mismatched
    model/guide sites and invalid distribution arguments fail there. The training steps run
    without it (unless ``detect_anomaly``), which saves about a tenth of a step's time; the
    numerical guard still stops training at the first non-finite loss or gradient.
    """
    o = Options.of(options)
    data = as_data(data)
    check = getattr(model, "check_data", None)
    for split in (data.train, data.valid, data.test):
        if check is not None and split is not None:
            for chunk in split.chunks(10_000):
                check(chunk)
    _check_labels(model, data)
    if o.labelled_per_batch and not getattr(model, "uses_labels", False):
        raise ValueError(
            f"labelled_per_batch is for models that learn from labels (the semi-supervised "
            f"VAE); {type(model).__name__} does not: leave it unset"
        )
    if o.patience is not None and (data.valid is None or not _amortized(model)):
        raise ValueError(
            "early stopping (patience) needs a validation split in the data"
            if data.valid is None
            else "early stopping (patience) needs validation scores, which a non-amortised "
            "guide cannot give: leave patience unset"
        )
    elbo = make_elbo(o.elbo, model, o.num_particles, o.alpha)
    if device is not None:
        model.to(devices.resolve(device))
    ctx = distributed_setup(distributed, checks.device_dtype(model)[0])
    finished = False
    try:
        path = Path(out) / CHECKPOINT if out is not None else None
        owner = contextlib.ExitStack()  # rank 0 owns the folder (run_folder.owned) till the end

        def first():
            if path is not None:
                owner.enter_context(run_folder.owned(path.parent))
            return open_run(path, model, resume, overwrite, ctx.world_size)

        with owner:
            start = ctx.from_main(first)
            hooks = _callbacks(o, path, logger, callbacks)
            state = TrainState(model, data, ctx, o, elbo)
            with _describing(path, model, o, config, ctx):
                history = _train(state, hooks, start)
        finished = True
        return history
    finally:
        ctx.close(finished)


def _describing(path, model, o, extra, ctx):
    """Checkpoints in ``path``'s folder carry the run's resolved config and are followed by
    ``config.yaml`` (:mod:`pyrovae.infer.run_folder`); a model that cannot be rebuilt from
    names gets a warning instead."""
    if path is None:
        return contextlib.nullcontext()
    from ..run import run_config

    config, reason = run_config(model, o, extra)
    if config is None:
        if ctx.is_main:
            warnings.warn(
                f"{path.parent / 'config.yaml'} not written: {reason}, so pyrovae.load cannot "
                "rebuild it; build the model yourself and load the weights with "
                f"model.load_state_dict(torch.load('{path}')['model'])",
                stacklevel=3,
            )
        return contextlib.nullcontext()
    return run_folder.describing(path.parent, config)


def _callbacks(o, path, logger, extra):
    """The hooks of a run, in the order they are called."""
    hooks = [KLWarmup(o.warmup_epochs, o.beta)] if o.warmup_epochs or o.beta != 1 else []
    hooks += [EarlyStopping(o.patience)] if o.patience is not None else []
    hooks += [TestScore(o.score_test), *extra]
    hooks += list(logger) if isinstance(logger, list | tuple) else [logger] if logger else []
    hooks += [Progress()] if o.progress else []
    return hooks + ([Checkpoint(path)] if path is not None else [])


@dataclass(eq=False)
class TrainState:
    """What the loop and its hooks share: the run's objects, where it stands, its history."""

    model: object
    data: Data
    ctx: Context
    options: Options
    elbo: object
    callbacks: list = field(default_factory=list)
    optimizer: torch.optim.Optimizer | None = None
    history: dict = field(default_factory=lambda: {k: [] for k in HISTORY})
    first_epoch: int = 0
    epoch: int = 0  # the current epoch, counted from 0
    step: int = 0  # the current step in the epoch, counted from 1
    steps_per_epoch: int = 0
    beta: float = 1.0
    loss: float = 0.0  # the last step's summed negative (β-weighted) ELBO on this rank
    batch_rows: int = 0
    stop: bool = False

    def __post_init__(self):
        self.model_fn, self.guide_fn = self.model.model, self.model.guide
        self.labels = {"labels": True} if getattr(self.model, "uses_labels", False) else {}
        if self.labels:  # batches carry each row's label as a last column
            mixed = labelled_per_batch(self.model, self.data, self.options)
            self.labels["labelled_per_batch"] = mixed
            self.model_fn, self.guide_fn = with_labels(self.model_fn), with_labels(self.guide_fn)
        self.device, self.dtype = checks.device_dtype(self.model)
        self.objective = objective_name(self.elbo)  # what the training loss estimates
        self.scorer = self.elbo if self.objective == "elbo" else make_elbo("trace", self.model)
        if self.objective != "elbo":
            self.history.setdefault(f"train_{self.objective}", [])

    def batch_sizes(self):
        """Rows of each global batch of an epoch (``Data.batches``'s, all ranks together)."""
        o, split = self.options, self.data.train
        mixed = self.labels.get("labelled_per_batch", 0)
        y = split.y if mixed else None
        w = self.ctx.world_size
        return sampling.batch_sizes(y, len(split), o.batch_size * w, mixed * w)

    @property
    def global_step(self):
        return self.epoch * self.steps_per_epoch + self.step

    def score(self, split):
        """ELBO per example on ``split`` (``None`` without one, or for a non-amortised guide,
        which has no posterior for other rows)."""
        if split is None or not _amortized(self.model):
            return None
        labels = getattr(self.model, "conditions_on_labels", False)
        return elbo_per_example(
            self.scorer, self.model, split, self.options.batch_size, self.ctx, labels
        )


HISTORY = ("epoch", "train_elbo", "valid_elbo", "test_elbo", "beta", "seconds")


def _amortized(model):
    return getattr(model, "amortized", True)


def _train(state, hooks, start):
    """The SVI loop of :func:`fit`, on this process's share of every global batch."""
    model, data, ctx, o = state.model, state.data, state.ctx, state.options
    state.callbacks = hooks
    pyro.set_rng_seed(o.seed)
    _call(hooks, "setup", state)
    if o.initialize and start is None and hasattr(model, "initialize"):  # e.g. GMM: k-means++
        model.initialize(data.train.x.to(state.device, state.dtype), o.seed)
    first = next(data.batches(o.batch_size, 0, o.seed, ctx.rank, ctx.world_size, **state.labels))
    params = trainable_parameters(
        model, state.elbo, state.model_fn, state.guide_fn, first.to(state.device, state.dtype)
    )
    ctx.broadcast(params)
    named = named_parameters(model, params)
    step_fn = make_step(
        state.elbo, model, state.model_fn, state.guide_fn, named, ctx, o.jit, o.precision
    )
    state.optimizer = adam(params, o.lr)
    pyro.set_rng_seed(ctx.seed(o.seed))  # each rank its own sampling noise
    if start is not None:
        _restore(state, start)
    _call(hooks, "on_train_start", state)

    sizes = state.batch_sizes()
    state.steps_per_epoch = len(sizes)
    for epoch in range(state.first_epoch, o.epochs):
        if state.stop:
            break
        state.epoch, tic, total, count = epoch, time.perf_counter(), 0.0, 0
        batches = data.batches(
            o.batch_size, epoch, o.seed, ctx.rank, ctx.world_size, **state.labels
        )
        with _anomaly_detection(o.detect_anomaly):  # validation was done on the first batch
            for step, x in enumerate(batches, 1):
                state.step, state.batch_rows = step, len(x)
                _call(hooks, "on_step_start", state)
                x = x.to(state.device, state.dtype)
                state.loss = step_fn(x, sizes[step - 1], state.optimizer, (epoch + 1, step))
                total, count = total + state.loss, count + len(x)
                _call(hooks, "on_step_end", state)
        total, count = ctx.sum(total, count)
        _record(state, -total / count, tic)
        _call(hooks, "on_epoch_end", state)
    _call(hooks, "on_train_end", state)
    return state.history


def _call(hooks, name, state):
    for hook in hooks:
        getattr(hook, name)(state)


def _record(state, train_elbo, tic):
    """The epoch's row of the history: training and validation ELBO, β, seconds."""
    h = state.history
    h["epoch"].append(state.epoch + 1)
    h["train_elbo"].append(train_elbo if state.objective == "elbo" else None)
    if state.objective != "elbo":
        h[f"train_{state.objective}"].append(train_elbo)
    h["beta"].append(state.beta)
    h["valid_elbo"].append(state.score(state.data.valid))
    h["test_elbo"].append(None)
    h["seconds"].append(time.perf_counter() - tic)
    for key in (f"train_{state.objective}", "valid_elbo"):
        check_finite(h, key)


def _restore(state, start):
    """Put a resumed run's numbers back: parameters, optimizer, RNG, history, hook states."""
    ckpt.restore(start, state.model, state.optimizer, state.ctx.rank)
    state.history, state.first_epoch = start["history"], start["epoch"]
    for hook in state.callbacks:
        if hasattr(hook, "state_key") and hook.state_key in start:
            hook.load_state_dict(start[hook.state_key])


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


@contextlib.contextmanager
def _anomaly_detection(enabled):
    """Pyro's argument validation and autograd's anomaly detection, both on or both off for
    the training steps in the ``with`` block (off, the numerical guard reports instead)."""
    with pyro.validation_enabled(enabled), torch.autograd.set_detect_anomaly(enabled):
        yield


def with_labels(fn):
    """``fn(x, y)`` as a function of one tensor: rows ``(B, D + 1)`` whose last column holds
    the labels (what ``Data.batches(..., labels=True)`` yields). A labelled batch thus passes
    as one tensor through the step, the guard and the distributed wrapper."""

    def unpacked(xy):
        return fn(xy[:, :-1], xy[:, -1].long())

    return unpacked


def labelled_per_batch(model, data, o):
    """L of :meth:`pyrovae.data.Data.batches`: the ``labelled_per_batch`` option, by default
    the model's ``labelled_per_batch(batch_size)`` (the semi-supervised VAE's), else 0; 0 as
    well when the training rows are all labelled or all unlabelled (nothing to mix)."""
    chosen = o.labelled_per_batch
    if chosen is None:
        default = getattr(model, "labelled_per_batch", None)
        chosen = default(o.batch_size) if default is not None else 0
    if chosen >= o.batch_size:
        raise ValueError(
            f"labelled_per_batch must be smaller than batch_size ({o.batch_size}) so that "
            f"every batch keeps unlabelled rows, got {chosen}"
        )
    known = data.train.y >= 0 if chosen else None
    return chosen if chosen and known.any() and not known.all() else 0


def _check_labels(model, data):
    """Refuse data without the labels a model learns from (or is scored with)."""
    needs = {"train": getattr(model, "uses_labels", False)}
    if getattr(model, "conditions_on_labels", False):
        needs.update(valid=True, test=True)
    for name, needed in needs.items():
        split = getattr(data, name)
        if needed and split is not None and split.y is None:
            raise ValueError(
                f"{type(model).__name__} learns from labels but the {name} rows have none; "
                "give labelled data, e.g. pyrovae.data.from_arrays(x, y) or a named data set"
            )


@torch.no_grad()
def elbo_per_example(elbo, model, rows, batch_size=1000, ctx=None, labels=False):
    """Mean ELBO per example of ``rows`` (a tensor ``(N, D)``, a split or a ``Dataset``; one
    sample from the guide per row), given the rows' labels when ``labels``; with a distributed
    :class:`~pyrovae.infer.distributed.Context` each rank scores every W-th row and the sums
    are added up."""
    device, dtype = checks.device_dtype(model)
    ctx, split = ctx or Context(), as_split(rows)
    total = 0.0
    for index in torch.split(torch.arange(ctx.rank, len(split), ctx.world_size), batch_size):
        x, y = split.rows(index)
        given = (y.to(device),) if labels else ()
        total -= elbo.loss(model.model, model.guide, x.to(device, dtype), *given)
    (total,) = ctx.sum(total)
    return total / len(split)
