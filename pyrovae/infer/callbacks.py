"""Hooks of :func:`pyrovae.fit`'s loop: KL warm-up, early stopping, test scoring, progress,
checkpoints and loggers.

The loop (:mod:`pyrovae.infer.train`) calls, in list order, every callback's

* ``setup(state)`` before the parameters are found (wrap ``state.model_fn``/``guide_fn``);
* ``on_train_start(state)`` once the optimizer exists (restore a checkpoint);
* ``on_step_start(state)`` / ``on_step_end(state)`` around each optimiser step;
* ``on_epoch_end(state)`` once the epoch's row is in ``state.history``; setting
  ``state.stop = True`` ends training after this epoch;
* ``on_train_end(state)`` after the last epoch.

``state`` is the :class:`~pyrovae.infer.train.TrainState`. A callback that must survive a
resume has a ``state_key`` and ``state_dict()``/``load_state_dict()``; :class:`Checkpoint`
stores them. Like PyTorch Lightning's callbacks, but only the hooks this loop needs.
"""

import copy
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload, runtime_checkable

from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message
from tqdm.auto import tqdm

from .. import checks
from . import checkpoint as ckpt
from .guard import NonFiniteError

if TYPE_CHECKING:
    from .train import TrainState

F = TypeVar("F", bound=Callable[..., Any])
History = Mapping[str, Sequence[Any]]
"""A training history: name → one entry per epoch (``None`` where a split has none)."""


class Callback:
    """A no-op hook set: override the hooks you need."""

    def setup(self, state: "TrainState") -> None:
        pass

    def on_train_start(self, state: "TrainState") -> None:
        pass

    def on_step_start(self, state: "TrainState") -> None:
        pass

    def on_step_end(self, state: "TrainState") -> None:
        pass

    def on_epoch_end(self, state: "TrainState") -> None:
        pass

    def on_train_end(self, state: "TrainState") -> None:
        pass


@runtime_checkable
class Stateful(Protocol):
    """A callback whose state a checkpoint keeps under ``state_key`` (restored on a resume).

    It may also have ``check_state(value, checkpoint, model)``, returning what is wrong with
    ``value`` as its state in ``checkpoint`` for ``model`` (one phrase) or ``None``: a resume
    calls it before anything is restored and refuses a wrong state in one line
    (:func:`pyrovae.infer.checkpoint.check_hook_states`)."""

    state_key: str

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> None: ...


class ScaleLatentsMessenger(Messenger):
    """Like Pyro's ``ScaleMessenger``, but only on latent (unobserved) sample sites.

    Applied to both model and guide it multiplies the KL part of the ELBO by ``beta``:
    E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z)) — the KL warm-up of Sønderby et al. 2016.
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def _process_message(self, msg: Message) -> None:
        if msg["type"] == "sample" and not msg["is_observed"] and self.beta != 1.0:
            msg["scale"] = msg["scale"] * self.beta


@overload
def scale_latents(fn: None = None, beta: float = 1.0) -> ScaleLatentsMessenger: ...
@overload
def scale_latents(fn: F, beta: float = 1.0) -> F: ...
@overload
def scale_latents(fn: float, beta: float = 1.0) -> ScaleLatentsMessenger: ...
def scale_latents(
    fn: Callable[..., Any] | float | None = None, beta: float = 1.0
) -> Callable[..., Any] | ScaleLatentsMessenger:
    """The handler of :class:`ScaleLatentsMessenger`, called like Pyro's ``poutine.scale``:
    ``scale_latents(model, beta=0.5)`` or ``with scale_latents(beta=0.5): ...``.

    (``scale_latents(0.5)``, β as the first argument, is the old form: it still works, with a
    ``DeprecationWarning``.)
    """
    if checks.is_real(fn):
        warnings.warn(
            "scale_latents(beta) is deprecated: write scale_latents(beta=...) (the first "
            "argument is the function to wrap, as in pyro.poutine.scale)",
            DeprecationWarning,
            stacklevel=2,
        )
        return ScaleLatentsMessenger(cast(float, fn))
    messenger = ScaleLatentsMessenger(beta)
    return messenger(cast(Callable[..., Any], fn)) if fn is not None else messenger


class KLWarmup(Callback):
    """β grows linearly from 0 to ``beta`` (1 by default; another constant makes a β-VAE) over
    ``epochs`` epochs, step by step: at global step t (counting from 1) β = beta × min(1,
    t / (epochs × steps per epoch)); the epoch's last β is recorded. A handler on the stack
    costs time at every site, so it is added only when ``epochs > 0`` or ``beta != 1``."""

    def __init__(self, epochs: float, beta: float = 1.0) -> None:
        self.epochs, self.beta, self.scale = epochs, beta, ScaleLatentsMessenger()

    def setup(self, state: "TrainState") -> None:
        state.model_fn, state.guide_fn = self.scale(state.model_fn), self.scale(state.guide_fn)

    def on_step_start(self, state: "TrainState") -> None:
        total = self.epochs * state.steps_per_epoch or 1
        self.scale.beta = state.beta = self.beta * min(1.0, state.global_step / total)


class LearningRateDecay(Callback):
    """Step decay of Adam's learning rate, by epoch: during epoch e (counted from 0)
    lr = max(lr₀ · ``factor`` ^ ⌊e / ``every``⌋, ``minimum``), lr₀ = ``fit``'s ``lr`` (VaDE's
    schedule on MNIST: 0.9 every 10 epochs, not below 2·10⁻⁴). A function of the epoch alone,
    so a resumed run follows the same schedule::

        pyrovae.fit(vae, data, lr=2e-3, callbacks=[LearningRateDecay(0.9, every=10, minimum=2e-4)])
    """

    def __init__(self, factor: float, every: int = 1, minimum: float = 0.0) -> None:
        if not 0 < factor <= 1 or every < 1 or minimum < 0:
            raise ValueError(
                "LearningRateDecay needs 0 < factor <= 1, every >= 1 and minimum >= 0, got "
                f"factor={factor!r}, every={every!r}, minimum={minimum!r}"
            )
        self.factor, self.every, self.minimum = factor, every, minimum

    def on_step_start(self, state: "TrainState") -> None:
        if state.step != 1:  # set once an epoch (a resume starts at an epoch's first step)
            return
        lr = max(state.options.lr * self.factor ** (state.epoch // self.every), self.minimum)
        assert state.optimizer is not None  # made before the first step
        for group in state.optimizer.param_groups:
            group["lr"] = lr


class EarlyStopping(Callback):
    """Stop when the validation ELBO has not improved for ``patience`` epochs; at the end put
    back the parameters of the best epoch (Prechelt 1998's rule with the best model kept)."""

    state_key = "best"

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best: dict[str, Any] = {"elbo": -math.inf, "epoch": None, "state": None, "wait": 0}

    def state_dict(self) -> dict[str, Any]:
        return self.best

    def load_state_dict(self, best: dict[str, Any]) -> None:
        self.best = best

    def check_state(self, best: object, checkpoint: Mapping[str, Any], model: Any) -> str | None:
        """What is wrong with ``best`` as this hook's state in ``checkpoint`` (whose fields
        :func:`pyrovae.infer.checkpoint.load` has checked), or ``None``. After epoch E it is
        ``{"elbo", "epoch", "state", "wait"}``: the best epoch b ∈ [1, E], its validation ELBO
        (the history's), ``model``'s ``state_dict`` of that epoch (names, shapes, dtypes,
        finite), and ``wait`` = E − b epochs without improvement; before any epoch it is
        ``{-inf, None, None, 0}``."""
        keys = ("elbo", "epoch", "state", "wait")
        if not isinstance(best, dict):
            return f"is a {type(best).__name__}, not a mapping of {', '.join(keys)}"
        if set(best) != set(keys):
            missing, extra = sorted(set(keys) - set(best)), sorted(map(str, set(best) - set(keys)))
            return f"lacks {', '.join(missing)}" if missing else f"has extra {', '.join(extra)}"
        epoch, last = best["epoch"], checkpoint["epoch"]
        elbo, wait = best["elbo"], best["wait"]
        if epoch is None:
            fresh = isinstance(elbo, float) and elbo == -math.inf and best["state"] is None
            fresh = fresh and checks.is_int(wait) and wait == 0
            return None if fresh else "has no best epoch but an elbo, state or wait"
        if not (checks.is_int(epoch) and 1 <= epoch <= last):
            return f"has best epoch {_brief(epoch)}, not one of the {last} epoch(s) trained"
        history = checkpoint["history"]
        valid = dict(zip(history["epoch"], history.get("valid_elbo", ()), strict=False))
        if not (isinstance(elbo, float) and elbo == valid.get(epoch)):
            return (
                f"has elbo {_brief(elbo)}, not epoch {epoch}'s validation ELBO "
                f"{_brief(valid.get(epoch))} in the history"
            )
        if not (checks.is_int(wait) and wait == last - epoch):
            return f"has wait {_brief(wait)}, not the {last - epoch} epoch(s) since epoch {epoch}"
        problem = ckpt.state_dict_problem(best["state"], model)
        return f"has a best-epoch state that {problem}" if problem else None

    def on_train_start(self, state: "TrainState") -> None:
        if self.best["wait"] >= self.patience:  # a resumed run that had stopped early
            state.stop = True

    def on_epoch_end(self, state: "TrainState") -> None:
        value = state.history["valid_elbo"][-1]
        if value > self.best["elbo"]:
            self.best.update(elbo=value, epoch=state.history["epoch"][-1], wait=0)
            self.best["state"] = copy.deepcopy(state.model.state_dict())
            return
        self.best["wait"] += 1
        state.stop = self.best["wait"] >= self.patience

    def on_train_end(self, state: "TrainState") -> None:
        if self.best["wait"] >= self.patience:
            state.stopped_because = (
                f"early stopping: the validation ELBO did not improve for {self.patience} "
                f"epoch(s) after epoch {self.best['epoch']}"
            )
        if self.best["state"] is not None:
            state.model.load_state_dict(self.best["state"])
            state.best_epoch = self.best["epoch"]


class TestScore(Callback):
    """The test split's ELBO per example: ``"end"`` once, for the parameters ``fit`` returns
    (those of the best epoch under early stopping), written in the last epoch's row;
    ``"epoch"`` every epoch (the curve); ``"never"``."""

    WHEN = ("end", "epoch", "never")

    def __init__(self, when: str) -> None:
        self.when = when

    def on_epoch_end(self, state: "TrainState") -> None:
        if self.when == "epoch":
            self._score(state)

    def on_train_end(self, state: "TrainState") -> None:
        if self.when == "end" and state.history["epoch"]:
            self._score(state)

    def _score(self, state: "TrainState") -> None:
        value = state.score(state.data.test)
        state.history["test_elbo"][-1] = value
        check_finite(state.history, "test_elbo")


class Progress(Callback):
    """On a terminal a progress bar per epoch; a single summary line per epoch either way
    (without the bar when the output is a file or a pipe). On ``stream``, by default
    ``sys.stderr`` (as tqdm and logging), so that a command's stdout holds only its result.
    Rank 0 only.

    Off a terminal (a log file, ``nohup``), an epoch that takes long also shows a heartbeat:
    during the epoch, at most one line every ``interval`` seconds (``time.monotonic``, counted
    from the epoch's first step or the last such line) with the running mean of the training
    objective over the rows seen so far, as the bar shows it::

        epoch 2/10  step 300/575  elbo -123.456 (so far)

    An epoch that ends within ``interval`` has its summary line only."""

    def __init__(self, stream: IO[str] | None = None, interval: float = 30.0) -> None:
        self.stream, self.interval, self.total, self.count = stream, interval, 0.0, 0
        self.bar: tqdm[Any] | None = None
        self.out: IO[str] = sys.stderr
        self.last = 0.0  # when the epoch started or the last heartbeat was written

    def on_train_start(self, state: "TrainState") -> None:
        self.out = self.stream or sys.stderr  # the command line's stdout holds its result only
        self.tty = state.ctx.is_main and hasattr(self.out, "isatty") and self.out.isatty()

    def on_step_start(self, state: "TrainState") -> None:
        if state.step == 1:
            self.total, self.count, self.last = 0.0, 0, time.monotonic()
            if self.tty:
                desc = f"epoch {state.epoch + 1}/{state.options.epochs}"
                self.bar = tqdm(total=state.steps_per_epoch, desc=desc, leave=False, file=self.out)

    def on_step_end(self, state: "TrainState") -> None:
        self.total += state.loss
        self.count += state.batch_rows
        elbo = -self.total / max(self.count, 1)
        if self.bar is not None:
            self.bar.set_postfix(elbo=f"{elbo:.3f}", refresh=False)
            self.bar.update()
        elif state.ctx.is_main and state.step < state.steps_per_epoch:  # the last: its summary
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                self._write(
                    f"epoch {state.epoch + 1}/{state.options.epochs}  step {state.step}/"
                    f"{state.steps_per_epoch}  elbo {elbo:.3f} (so far)"
                )

    def on_epoch_end(self, state: "TrainState") -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if state.ctx.is_main:
            self._write(summary(state.history))

    def on_train_end(self, state: "TrainState") -> None:
        if not state.ctx.is_main:
            return
        if state.stop:  # a hook stopped it early
            self._write(f"stopped at epoch {state.history['epoch'][-1]}: {state.stopped_because}")
        if state.best_epoch is not None and state.best_epoch != state.history["epoch"][-1]:
            self._write(f"restored the parameters of the best epoch, {state.best_epoch}")
        test = state.history["test_elbo"][-1] if state.history["epoch"] else None
        if test is not None and state.options.score_test == "end":
            self._write(f"test elbo {test:.3f}")

    def _write(self, line: str) -> None:
        if self.tty:
            tqdm.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)


class Checkpoint(Callback):
    """The checkpoint (model, ``pyro.param`` values, optimizer, RNG states of every rank,
    history, the states of the :class:`Stateful` hooks) after every epoch, and the metrics
    (:func:`metrics`), handed to ``store.save(checkpoint)`` and ``store.save_metrics(metrics)``
    (:class:`pyrovae.runs.RunFolder`: written atomically). Rank 0 only saves."""

    def __init__(self, store: Any) -> None:  # a RunFolder: save(checkpoint), save_metrics(m)
        self.store = store

    def on_train_start(self, state: "TrainState") -> None:
        if state.first_epoch and state.ctx.is_main:  # a run killed between the two files
            self.store.save_metrics(metrics(state))

    def on_epoch_end(self, state: "TrainState") -> None:
        extra: dict[str, Any] = {"world_size": state.ctx.world_size}
        for hook in state.callbacks:
            if isinstance(hook, Stateful):
                extra[hook.state_key] = hook.state_dict()
        rngs = state.ctx.gather(ckpt.rng_state())
        if state.ctx.active:
            extra["rng_by_rank"] = rngs
        if state.ctx.is_main:
            assert state.optimizer is not None  # made before the first step
            epoch = state.history["epoch"][-1]
            self.store.save(ckpt.state(state.model, state.optimizer, epoch, state.history, extra))
            self.store.save_metrics(metrics(state))

    def on_train_end(self, state: "TrainState") -> None:
        if state.ctx.is_main:  # with the test ELBO scored at the end
            self.store.save_metrics(metrics(state))


def metrics(state: "TrainState") -> dict[str, Any]:
    """``metrics.json``: the history, and once training has ended ``stopped_because`` (why
    it stopped) and ``best_epoch`` (the epoch whose parameters ``fit`` returned)."""
    return {
        **state.history,
        "stopped_because": state.stopped_because,
        "best_epoch": state.best_epoch,
    }


def _brief(value: object) -> str:
    """``value`` for a one-line message: a float, a short int or ``None`` as itself, anything
    else by its type."""
    if checks.is_int(value) and abs(value) >= 10**15:
        return "a huge integer"
    shown = checks.is_real(value) or value is None
    return repr(value) if shown else f"a {type(value).__name__}"


def check_finite(history: History, key: str) -> None:
    """Refuse to record (and checkpoint) an epoch whose ``key`` ELBO is not finite."""
    value = history[key][-1]
    if value is not None and not math.isfinite(value):
        raise NonFiniteError(
            f"the {key.replace('_', ' ')} of epoch {history['epoch'][-1]} is {value}; the "
            "parameters give a non-finite ELBO on these rows: check their range, lower lr, "
            "or rerun with --detect-anomaly; the last checkpoint is kept"
        )


def summary(history: History) -> str:
    """One line for the last epoch: its ELBOs and duration. During a KL warm-up (β < 1) the
    training objective is the β-weighted ELBO and is labelled so, with its β."""
    train = next(k for k in history if k.startswith("train_") and history[k][-1] is not None)
    label = train.replace("_", " ")
    if history["beta"][-1] != 1:
        label = f"train β-weighted {label[len('train ') :]} (β {history['beta'][-1]:.3g})"
    parts = [f"epoch {history['epoch'][-1]}", f"{label} {history[train][-1]:.3f}"]
    for name in ("valid", "test"):
        if history[f"{name}_elbo"][-1] is not None:
            parts.append(f"{name} elbo {history[f'{name}_elbo'][-1]:.3f}")
    return "  ".join(parts) + f"  ({history['seconds'][-1]:.1f}s)"
