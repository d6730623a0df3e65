"""``train``: stochastic variational inference for any pyrovae model (or model/guide object),
the loop of :func:`pyrovae.fit` (:mod:`pyrovae.runs.fit`, which adds the run folder).

Each step minimises the negative ELBO of a mini-batch divided by its size, so the loss is the
per-example negative ELBO whatever the batch size, with ``torch.optim.Adam`` on the model's
parameters and any ``pyro.param`` sites its model and guide create (an ``AutoGuide``'s too).
By default the ELBO is ``Trace_ELBO``, or ``TraceEnum_ELBO(max_plate_nesting=1)`` for a model
with enumerated sites; any Pyro ELBO object may be passed.

The loop is short: everything else — KL warm-up, early stopping, test scoring, progress,
checkpoints, loggers — is a hook (:mod:`pyrovae.infer.callbacks`). Under ``torchrun`` the same
loop runs data-parallel (:mod:`pyrovae.infer.distributed`); every step passes the numerical
guard (:mod:`pyrovae.infer.guard`, inside :mod:`pyrovae.infer.step`) before the parameters
move, and checkpoints (handed to a store, e.g. the run folder) let a killed run resume
exactly. The loop knows nothing of run folders, config files or the command line; it asks the
model through :mod:`pyrovae.models.contract`.
"""

import contextlib
import operator
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
from pyro.infer import ELBO

from .. import checks, sampling
from ..data import Data, DatasetSplit, Split, as_split
from ..models import contract
from . import checkpoint as ckpt
from . import device as devices
from . import starts
from .callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    KLWarmup,
    Progress,
    Stateful,
    TestScore,
    check_finite,
    scale_latents,
)
from .distributed import Context
from .distributed import setup as distributed_setup
from .loggers import make_loggers
from .objectives import make_elbo, objective_name
from .options import Options
from .step import adam, make_step, named_parameters, trainable_parameters

__all__ = ["Options", "TrainState", "default_elbo", "scale_latents", "train"]


def default_elbo(model: object, num_particles: int = 1) -> ELBO:
    """``TraceEnum_ELBO`` for models with enumerated sites, else ``Trace_ELBO``."""
    return make_elbo("trace", model, num_particles)


def as_data(data: Any) -> Data:
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


def train(
    model: Any,
    data: Any,
    options: Options | None = None,
    *,
    store: Any = None,
    distributed: bool | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    logger: str | Callback | Sequence[str | Callback] | None = None,
    callbacks: Iterable[Callback] = (),
    run_config: Mapping[str, Any] | None = None,
) -> dict[str, list[Any]]:
    """Train ``model`` (any object with ``model(x)`` and ``guide(x)``: a pyrovae model, a
    user's pair, an ``AutoGuide`` of a user's model) by SVI on ``data``: the loop of
    :func:`pyrovae.fit`, which adds the run folder (``out``) and takes the options by keyword.

    :param data: :class:`pyrovae.data.Data` (training, validation and test rows), a tensor of
        training rows ``(N, D)`` or a map-style ``Dataset`` of them (items ``x``, ``(x,)`` or
        ``(x, y)``, e.g. a ``TensorDataset``; read batch by batch, with the same batches as the
        same rows given as a tensor). A model that learns from labels (``uses_labels``: the
        conditional and semi-supervised VAEs, :mod:`pyrovae.models.contract`) is trained as
        ``model(x, y)`` with each batch's labels ``(B,)`` (−1 for an unlabelled row); one that
        ``conditions_on_labels`` is scored on the validation and test rows with their labels too.
    :param options: the training :class:`Options` (default: all defaults).
    :param store: where checkpoints go, or ``None``: an object with ``start(model,
        world_size)`` (called on rank 0 before the first step: the checkpoint to resume, or
        ``None``), ``save(checkpoint)`` and ``save_metrics(metrics)`` (each epoch, rank 0) and
        ``release()`` (at the end), e.g. :class:`pyrovae.runs.RunFolder`.
    :param distributed: data-parallel training over the processes of ``torchrun``
        (:mod:`pyrovae.infer.distributed`): ``None`` detects it from the environment, ``True``
        requires it, ``False`` trains alone. Only rank 0 writes files.
    :param device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"`` (:mod:`pyrovae.infer.device`):
        the model is moved there and every batch follows; ``None`` keeps the model where it is.
        Under ``torchrun``, ``"cuda"`` is each rank's own GPU and the ranks talk over NCCL.
    :param int num_workers: processes that read the training rows ahead of the steps (a
        ``DataLoader`` with the run's own batches as its batch sampler, in page-locked memory
        on CUDA; :meth:`pyrovae.data.Data.batches`): for a ``Dataset`` read from disk. The
        batches, and so the result, are the same with any number; 0 reads them in this process.
    :param logger: a :class:`~pyrovae.infer.loggers.Logger` (e.g.
        :class:`~pyrovae.infer.loggers.MLflowLogger`), a name (``"tensorboard"``, ``"mlflow"``,
        ``"wandb"``, ``"csv"``: :func:`~pyrovae.infer.loggers.make_loggers`) or a list of them;
        they get the run's resolved config as parameters.
    :param callbacks: more :class:`~pyrovae.infer.callbacks.Callback` objects for the loop.
    :param dict run_config: the run's resolved config, given to the loggers as parameters
        (:func:`pyrovae.fit` passes what ``config.yaml`` holds).
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
    o = options if options is not None else Options()
    checks.nonnegative_int("num_workers", num_workers)
    logger = make_loggers(logger)
    data = as_data(data)
    if isinstance(model, contract.ChecksData):
        for split in (data.train, data.valid, data.test):
            if split is not None:
                for chunk in split.chunks(10_000):
                    model.check_data(chunk)
    _check_labels(model, data)
    if o.labelled_per_batch and not contract.uses_labels(model):
        raise ValueError(
            f"labelled_per_batch is for models that learn from labels (the semi-supervised "
            f"VAE); {type(model).__name__} does not: leave it unset"
        )
    if o.patience is not None and (data.valid is None or not contract.amortized(model)):
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
        with contextlib.ExitStack() as owner:  # rank 0 owns the store till the end
            if store is not None and ctx.is_main:
                owner.callback(store.release)
            start = ctx.from_main(lambda: store.start(model, ctx.world_size) if store else None)
            hooks = _callbacks(o, store, logger, callbacks)
            state = TrainState(model, data, ctx, o, elbo)
            state.config = dict(run_config or {})
            if num_workers:  # Data.batches's keywords (none for one process)
                pinned = state.device.type == "cuda"
                state.loading = {"num_workers": num_workers, "pin_memory": pinned}
            history = _train(state, hooks, start)
        finished = True
        return history
    finally:
        ctx.close(finished)


def _callbacks(
    o: Options, store: Any, logger: list[Callback], extra: Iterable[Callback]
) -> list[Callback]:
    """The hooks of a run, in the order they are called."""
    hooks: list[Callback] = (
        [KLWarmup(o.warmup_epochs, o.beta)] if o.warmup_epochs or o.beta != 1 else []
    )
    hooks += [EarlyStopping(o.patience)] if o.patience is not None else []
    hooks += [TestScore(o.score_test), *extra]
    hooks += logger
    hooks += [Progress()] if o.progress else []
    return hooks + ([Checkpoint(store)] if store is not None else [])


@dataclass(eq=False)
class TrainState:
    """What the loop and its hooks share: the run's objects, where it stands, its history."""

    model: Any  # a LatentVariableModel (pyrovae.models.contract), usually an nn.Module
    data: Data
    ctx: Context
    options: Options
    elbo: object
    callbacks: list[Callback] = field(default_factory=list)
    optimizer: torch.optim.Optimizer | None = None
    history: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in HISTORY})
    first_epoch: int = 0
    epoch: int = 0  # the current epoch, counted from 0
    step: int = 0  # the current step in the epoch, counted from 1
    steps_per_epoch: int = 0
    beta: float = 1.0
    loss: float = 0.0  # the last step's summed negative (β-weighted) ELBO on this rank
    batch_rows: int = 0
    stop: bool = False  # set by a hook: end training after this epoch
    stopped_because: str | None = None  # why training ended (set when it has)
    best_epoch: int | None = None  # the epoch whose parameters training returns
    loading: dict[str, Any] = field(default_factory=dict)  # Data.batches's num_workers, pin_memory
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config, for the loggers

    def __post_init__(self) -> None:
        self.model_fn, self.guide_fn = self.model.model, self.model.guide
        self.labels: dict[str, Any] = {"labels": True} if contract.uses_labels(self.model) else {}
        if self.labels:  # batches carry each row's label as a last column
            mixed = labelled_per_batch(self.model, self.data, self.options)
            self.labels["labelled_per_batch"] = mixed
            width = contract.condition_width(self.model)
            self.model_fn = with_labels(self.model_fn, width)
            self.guide_fn = with_labels(self.guide_fn, width)
        self.device, self.dtype = checks.device_dtype(self.model)
        self.objective = objective_name(self.elbo)  # what the training loss estimates
        self.scorer = self.elbo if self.objective == "elbo" else make_elbo("trace", self.model)
        if self.objective != "elbo":
            self.history.setdefault(f"train_{self.objective}", [])

    def batch_sizes(self) -> list[int]:
        """Rows of each global batch of an epoch (``Data.batches``'s, all ranks together)."""
        o, split = self.options, self.data.train
        mixed = self.labels.get("labelled_per_batch", 0)
        y = split.y if mixed else None
        w = self.ctx.world_size
        return sampling.batch_sizes(y, len(split), o.batch_size * w, mixed * w)

    @property
    def global_step(self) -> int:
        return self.epoch * self.steps_per_epoch + self.step

    def score(self, split: Split | DatasetSplit | None) -> float | None:
        """ELBO per example on ``split`` (``None`` without one, or for a non-amortised guide,
        which has no posterior for other rows)."""
        if split is None or not contract.amortized(self.model):
            return None
        labels = contract.conditions_on_labels(self.model)
        return elbo_per_example(
            self.scorer, self.model, split, self.options.batch_size, self.ctx, labels
        )


HISTORY: tuple[str, ...] = ("epoch", "train_elbo", "valid_elbo", "test_elbo", "beta", "seconds")


def _train(
    state: TrainState, hooks: list[Callback], start: dict[str, Any] | None
) -> dict[str, list[Any]]:
    """The SVI loop of :func:`fit`, on this process's share of every global batch."""
    model, data, ctx, o = state.model, state.data, state.ctx, state.options
    state.callbacks = hooks
    pyro.set_rng_seed(o.seed)
    _call(hooks, "setup", state)
    if o.initialize and start is None and starts.needed(model, len(data.train)):
        starts.start(model, data.train.x.to(state.device, state.dtype), o.seed)  # .starts
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
            o.batch_size, epoch, o.seed, ctx.rank, ctx.world_size, **state.labels, **state.loading
        )
        with _anomaly_detection(o.detect_anomaly):  # validation was done on the first batch
            for step, x in enumerate(batches, 1):
                state.step, state.batch_rows = step, len(x)
                _call(hooks, "on_step_start", state)
                x = x.to(state.device, state.dtype)
                state.loss = step_fn(x, sizes[step - 1], state.optimizer, (epoch + 1, step))
                total, count = total + state.loss, count + len(x)
                _call(hooks, "on_step_end", state)
        summed, rows = ctx.sum(total, count)
        _record(state, -summed / rows, tic)
        _call(hooks, "on_epoch_end", state)
    if state.history["epoch"]:
        state.best_epoch = state.history["epoch"][-1]
        state.stopped_because = f"the {len(state.history['epoch'])} epochs were trained"
    _call(hooks, "on_train_end", state)
    return state.history


def _call(hooks: Iterable[Callback], name: str, state: TrainState) -> None:
    call = operator.methodcaller(name, state)
    for hook in hooks:
        call(hook)


def _record(state: TrainState, train_elbo: float, tic: float) -> None:
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


def _restore(state: TrainState, start: dict[str, Any]) -> None:
    """Put a resumed run's numbers back: parameters, optimizer, RNG, history, hook states."""
    assert state.optimizer is not None  # made before the restore
    ckpt.restore(start, state.model, state.optimizer, state.ctx.rank, state.callbacks)
    state.history, state.first_epoch = start["history"], start["epoch"]
    for hook in state.callbacks:
        if isinstance(hook, Stateful) and hook.state_key in start:
            hook.load_state_dict(start[hook.state_key])


@contextlib.contextmanager
def _anomaly_detection(enabled: bool) -> Iterator[None]:
    """Pyro's argument validation and autograd's anomaly detection, both on or both off for
    the training steps in the ``with`` block (off, the numerical guard reports instead)."""
    with pyro.validation_enabled(enabled), torch.autograd.set_detect_anomaly(enabled):
        yield


def with_labels(fn: Callable[..., Any], width: int = 0) -> Callable[[torch.Tensor], Any]:
    """``fn(x, y)`` as a function of one tensor: rows ``(B, D + 1)`` whose last column holds
    the labels (what ``Data.batches(..., labels=True)`` yields), or, with ``width`` = c > 0,
    rows ``(B, D + c)`` whose last c columns hold real-valued conditions. A labelled batch
    thus passes as one tensor through the step, the guard and the distributed wrapper."""

    def unpacked(xy: torch.Tensor) -> Any:
        if width:
            return fn(xy[:, :-width], xy[:, -width:])
        return fn(xy[:, :-1], xy[:, -1].long())

    return unpacked


def labelled_per_batch(model: object, data: Data, o: Options) -> int:
    """L of :meth:`pyrovae.data.Data.batches`: the ``labelled_per_batch`` option, by default
    the model's ``labelled_per_batch(batch_size)`` (the semi-supervised VAE's), else 0; 0 as
    well when the training rows are all labelled or all unlabelled (nothing to mix)."""
    chosen = o.labelled_per_batch
    if chosen is None:
        if isinstance(model, contract.MixesLabelled):
            chosen = model.labelled_per_batch(o.batch_size)
        else:
            chosen = 0
    if chosen >= o.batch_size:
        raise ValueError(
            f"labelled_per_batch must be smaller than batch_size ({o.batch_size}) so that "
            f"every batch keeps unlabelled rows, got {chosen}"
        )
    y = data.train.y
    if not chosen or y is None:  # (a model that learns from labels has them: _check_labels)
        return 0
    known = y >= 0
    return chosen if known.any() and not known.all() else 0


def _check_labels(model: object, data: Data) -> None:
    """Refuse data without the labels a model learns from (or is scored with), or whose y
    has another shape than the model's: ``(N,)`` labels, or ``(N, c)`` real conditions."""
    needs = {"train": contract.uses_labels(model)}
    if contract.conditions_on_labels(model):
        needs.update(valid=True, test=True)
    width = contract.condition_width(model)
    for name, needed in needs.items():
        split = {"train": data.train, "valid": data.valid, "test": data.test}[name]
        y = split.y if needed and split is not None else None
        shape = None if y is None else (len(y), width) if width else (len(y),)
        if needed and split is not None and y is None:
            raise ValueError(
                f"{type(model).__name__} learns from labels but the {name} rows have none; "
                "give labelled data, e.g. pyrovae.data.from_arrays(x, y) or a named data set"
            )
        if y is not None and tuple(y.shape) != shape:
            what = f"real vectors (N, {width}) (condition_dim)" if width else "labels (N,)"
            raise ValueError(
                f"{type(model).__name__} conditions on {what}, but the {name} rows' y has "
                f"shape {tuple(y.shape)}; give y of that shape, or build the model to match"
            )


@torch.no_grad()
def elbo_per_example(
    elbo: Any,
    model: Any,
    rows: Any,
    batch_size: int = 1000,
    ctx: Context | None = None,
    labels: bool = False,
) -> float:
    """Mean ELBO per example of ``rows`` (a tensor ``(N, D)``, a split or a ``Dataset``; one
    sample from the guide per row), given the rows' labels when ``labels``; with a distributed
    :class:`~pyrovae.infer.distributed.Context` each rank scores every W-th row and the sums
    are added up."""
    device, dtype = checks.device_dtype(model)
    ctx, split = ctx or Context(), as_split(rows)
    if split is None:
        raise ValueError("no rows to score: give a tensor, a split or a Dataset of rows")
    total = 0.0
    for index in torch.split(torch.arange(ctx.rank, len(split), ctx.world_size), batch_size):
        x, y = split.rows(index)
        given = (y.to(device),) if labels and y is not None else ()
        total -= elbo.loss(model.model, model.guide, x.to(device, dtype), *given)
    (total,) = ctx.sum(total)
    return total / len(split)
