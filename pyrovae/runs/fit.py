"""``pyrovae.fit``: the trainer (:func:`pyrovae.infer.train.train`) with its options by
keyword and, with ``out``, a run folder (:class:`~pyrovae.runs.folder.RunFolder`)."""

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from ..infer.callbacks import Callback
from ..infer.guard import NonFiniteError
from ..infer.loggers import make_loggers
from ..infer.options import Options
from ..infer.train import TrainState, train
from .describe import run_config
from .folder import CHECKPOINT, CONFIG, RunFolder
from .options import TRAINING_KEYS


def fit(
    model: Any,
    data: Any,
    *,
    out: str | os.PathLike[str] | RunFolder | None = None,
    resume: bool = False,
    overwrite: bool = False,
    distributed: bool | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    logger: str | Callback | Sequence[str | Callback] | None = None,
    callbacks: Iterable[Callback] = (),
    config: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, list[Any]]:
    """Train ``model`` (any object with ``model(x)`` and ``guide(x)``: a pyrovae model, a
    user's pair, an ``AutoGuide`` of a user's model; see :mod:`pyrovae.models.contract`) by SVI
    on ``data``, and return the history (:func:`pyrovae.infer.train.train`, which documents
    ``data``, ``distributed``, ``device``, ``num_workers``, ``logger``, ``callbacks`` and the
    history).

    :param out: a folder (or a :class:`~pyrovae.runs.folder.RunFolder`) for ``checkpoint.pt``
        (every epoch, atomically), ``metrics.json`` and ``config.yaml``; owned by this process
        while it trains.
    :param logger: a :class:`~pyrovae.infer.loggers.Logger`, a name (``"tensorboard"``,
        ``"mlflow"``, ``"wandb"``, ``"csv"``: :func:`~pyrovae.infer.loggers.make_loggers`; the
        file-based ones write under ``out``) or a list of them; they get the run's resolved
        config as parameters.
    :param bool resume: continue from ``out/checkpoint.pt`` if it exists; the result equals that
        of an uninterrupted run with the same seed (and number of processes).
    :param bool overwrite: allow starting afresh over an existing checkpoint.
    :param dict config: entries to add to ``out/config.yaml`` (how the data were made, e.g.
        ``{"dataset": "mnist", "binarize": "dynamic"}``). With ``out``, ``fit`` writes
        ``config.yaml``: the model's name, ``input_dim`` and options and the training
        options, every value used, so that ``pyrovae.load(out)`` rebuilds the model; for a
        model it cannot rebuild from names (a user's class) it warns instead.
    :param options: the training options, by keyword (:class:`pyrovae.infer.options.Options`:
        ``epochs`` (100), ``batch_size`` (100), ``lr``, ``seed``, ``elbo``, ``num_particles``,
        ``alpha``, ``beta``, ``warmup_epochs``, ``patience``, ``score_test``, ``initialize``,
        ``labelled_per_batch``, ``detect_anomaly``, ``progress``, ``jit``, ``precision``).
    """
    o = Options.of(options)
    folder = out if out is None or isinstance(out, RunFolder) else RunFolder(out, resume, overwrite)
    described = None
    if folder is not None:
        described = folder.describes = describe(model, o, config, folder)
    watch = _Diverged()
    try:
        return train(
            model,
            data,
            o,
            store=folder,
            distributed=distributed,
            device=device,
            num_workers=num_workers,
            logger=make_loggers(logger, None if folder is None else folder.path),
            callbacks=(*callbacks, watch),
            run_config=described or logged_config(model, o, config),
        )
    except ValueError as err:
        raise watch.explain(err) from None


_INVALID = re.compile(
    r"Expected parameter (\w+) .*?of distribution (\w+).*?to satisfy the constraint (\w+)", re.S
)


class _Diverged(Callback):
    """Tells a numerical failure from bad input: once training has started (every check
    passed), a distribution refusing its parameters (PyTorch's argument validation: NaN, or a
    mean direction of norm 0) means the parameters diverged."""

    def __init__(self) -> None:
        self.state: TrainState | None = None

    def on_train_start(self, state: TrainState) -> None:
        self.state = state

    def explain(self, err: BaseException) -> BaseException:
        found = _INVALID.search(str(err))
        if self.state is None or found is None:
            return err
        name, law, constraint = found.groups()
        return NonFiniteError(
            f"training diverged at epoch {self.state.epoch + 1}, step {self.state.step}: a "
            f"{law} got a {name} outside its constraint {constraint} (NaN, infinite or out of "
            "range); lower lr, or rerun with --detect-anomaly; the last checkpoint is kept"
        )


def logged_config(
    model: object, options: Options, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What the loggers get as parameters: the run's ``config.yaml`` (:func:`run_config`), or,
    for a model it cannot rebuild, ``extra``, the model's class name and the training options
    that are plain values."""
    config, _ = run_config(model, options, extra)
    if config is None:
        training = {k: getattr(options, k) for k in TRAINING_KEYS}
        plain = {k: v for k, v in training.items() if isinstance(v, bool | int | float | str)}
        config = {**(extra or {}), "model": type(model).__name__, **plain}
    return config


def describe(
    model: object, options: Options, extra: Mapping[str, Any] | None, folder: RunFolder
) -> dict[str, Any] | None:
    """The config that the checkpoints of ``folder`` carry (and ``config.yaml`` holds), or
    ``None`` with a warning for a model that cannot be rebuilt from names."""
    config, reason = run_config(model, options, extra)
    if config is None:
        from ..infer.distributed import env_rank

        if env_rank() == 0:
            warnings.warn(
                f"{folder.path / CONFIG} not written: {reason}, so pyrovae.load cannot rebuild "
                "it; build the model yourself and load the weights with model.load_state_dict("
                f"torch.load('{folder.path / CHECKPOINT}')['model'])",
                stacklevel=3,
            )
    return config
