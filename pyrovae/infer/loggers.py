"""Experiment tracking: one logger interface for :func:`pyrovae.fit`, and its backends —
TensorBoard, MLflow, Weights & Biases and plain CSV files.

A logger is a :class:`~pyrovae.infer.callbacks.Callback` that turns the run into named scalars,
parameters and pictures; a backend implements where they go (:meth:`Logger.log_metrics`,
:meth:`Logger.log_params`, :meth:`Logger.log_image`, :meth:`Logger.close`). ``fit`` takes a
logger object, a name of :data:`LOGGERS` or a list of either (:func:`make_loggers`)::

    pyrovae.fit(vae, data, out="runs/a", logger=["csv", "mlflow"])
    pyrovae.fit(vae, data, logger=MLflowLogger(experiment="digits"))

What is logged (rank 0 only), with ``step`` the global optimiser step:

* at the start: the run's resolved config (what ``config.yaml`` holds: the model's name and
  options, the training options, how the data were made; a user's model's class name and the
  training options otherwise) as parameters, nested keys joined by dots;
* every step: ``train/loss``, the step's negative (β-weighted) ELBO per row;
* every epoch: ``elbo/train``, ``elbo/valid`` (and ``elbo/test`` when scored), ``beta``, and
  on up to :attr:`Logger.term_rows` validation rows (training rows without a validation
  split) the two terms of the ELBO, ``terms/reconstruction`` = E_q[log p(x | latents)] and
  ``terms/kl`` = reconstruction − ELBO (the KL divergence of q from the prior, with
  enumerated sites summed out; the reconstruction term is left out when x depends on an
  enumerated site, as in the Gaussian mixture); and the image ``samples``, a grid of
  ``model.sample(64)`` for image data (grey or colour, ``Data.image_shape``), laid out by
  :func:`pyrovae.plots.image_grid` (torchvision's ``make_grid``).

The backends need their packages only when used: ``pip install 'pyrovae[tensorboard]'``,
``'pyrovae[mlflow]'`` (``mlflow-skinny``, MLflow's client: it logs to a tracking server, or to a
local folder store; install the full ``mlflow`` for a local SQLite store), ``'pyrovae[wandb]'``.
"""

import contextlib
import csv
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

import torch
from pyro import poutine

from .. import checks
from ..models import contract
from .callbacks import Callback

if TYPE_CHECKING:
    from .train import TrainState

Metrics = Mapping[str, float | None]
"""Named numbers at one step (a ``None`` is not logged)."""


class Logger(Callback):
    """Where a run's numbers go: implement :meth:`log_metrics` (and :meth:`log_params`,
    :meth:`log_image`, :meth:`close` if the backend has them)."""

    term_rows = 1000  # rows the per-epoch ELBO terms are estimated on
    num_samples = 64  # images in the sample grid

    def log_metrics(self, metrics: Metrics, step: int) -> None:
        """Record ``metrics``, a dict of name → float, at global step ``step``."""
        raise NotImplementedError

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's parameters, a flat dict of name → str, int, float, bool or list."""

    def log_image(self, name: str, image: torch.Tensor, step: int) -> None:
        """Record ``image``, a ``(C, H, W)`` float tensor in [0, 1]: RGB (C = 3; grey images
        in three equal channels) or RGBA (C = 4)."""

    def close(self) -> None:
        """Flush and release the backend at the end of the run."""

    def on_train_start(self, state: "TrainState") -> None:
        if state.ctx.is_main:
            self.log_params(flatten(state.config))

    def on_step_end(self, state: "TrainState") -> None:
        if state.ctx.is_main and state.batch_rows:
            self.log_metrics({"train/loss": state.loss / state.batch_rows}, state.global_step)

    def on_epoch_end(self, state: "TrainState") -> None:
        if not state.ctx.is_main:
            return
        h, step = state.history, state.global_step
        metrics = {"elbo/train": h["train_elbo"][-1], "beta": h["beta"][-1]}
        for name in ("valid", "test"):
            if h[f"{name}_elbo"][-1] is not None:
                metrics[f"elbo/{name}"] = h[f"{name}_elbo"][-1]
        shape = getattr(state.data, "image_shape", None)
        images = None
        with _own_draws(state):
            metrics.update(self._terms(state))
            if shape is not None and hasattr(state.model, "sample"):
                from ..plots import image_grid

                n = self.num_samples
                with torch.no_grad():
                    images = image_grid(state.model.sample(n), shape, math.ceil(math.sqrt(n)))
        self.log_metrics(metrics, step)
        if images is not None:
            self.log_image("samples", images, step)

    def on_train_end(self, state: "TrainState") -> None:
        if state.ctx.is_main:
            test = state.history["test_elbo"][-1] if state.history["epoch"] else None
            if test is not None and state.options.score_test == "end":
                self.log_metrics({"elbo/test": test}, state.global_step)
            self.close()

    def _terms(self, state: "TrainState") -> dict[str, float]:
        if not getattr(state.model, "amortized", True):
            return {}
        split = state.data.valid if state.data.valid is not None else state.data.train
        x, y = split.rows(torch.arange(min(len(split), self.term_rows)))
        device, dtype = checks.device_dtype(state.model)
        given = contract.conditions_on_labels(state.model) and y is not None
        labels = (y.to(device),) if given and y is not None else ()
        terms = elbo_terms(state.model, x.to(device, dtype), *labels)
        return {f"terms/{k}": v for k, v in terms.items() if k != "elbo" and v is not None}


@contextlib.contextmanager
def _own_draws(state: "TrainState") -> Iterator[None]:
    """The random draws of the logged terms and samples, from torch's generators seeded by
    ``(seed, epoch)`` and then put back as they were: logging leaves the run's own random
    stream alone, and every logger of a run gets the same numbers and pictures."""
    device = state.device
    with torch.random.fork_rng([] if device.type == "cpu" else [device], device_type=device.type):
        torch.manual_seed(state.options.seed * 100_003 + state.epoch)
        yield


@torch.no_grad()
def elbo_terms(model: Any, x: torch.Tensor, *labels: torch.Tensor) -> dict[str, float | None]:
    """One-sample estimates, averaged over the rows ``x``, of the ELBO and its two terms:
    ``reconstruction`` = E_q[log p(x | latents)] (``None`` when x depends on an enumerated
    site) and ``kl`` = reconstruction − ELBO = E_q[log q(latents | x) − log p(latents)];
    ``labels``: the rows' labels, for a model scored given them (the conditional VAE)."""
    guide = poutine.trace(model.guide).get_trace(x, *labels)
    enumerated = poutine.enum(poutine.replay(model.model, trace=guide), first_available_dim=-2)
    trace = poutine.trace(enumerated).get_trace(x, *labels)
    trace.compute_log_prob()
    guide.compute_log_prob()
    n = x.shape[0]
    log_p, log_obs = torch.zeros(()), torch.zeros(())
    for site in trace.nodes.values():
        if site["type"] == "sample":
            log_p = log_p + site["log_prob"]
            if site["is_observed"]:
                log_obs = log_obs + site["log_prob"]
    log_p = log_p.reshape(-1, n).logsumexp(0) if log_p.dim() > 1 else log_p.expand(n)
    log_q = sum((s["log_prob"] for s in guide.nodes.values() if s["type"] == "sample"), 0.0)
    elbo = (log_p - log_q).mean().item()
    if log_obs.dim() > 1:  # x depends on an enumerated site: no single reconstruction term
        return {"elbo": elbo, "kl": None, "reconstruction": None}
    reconstruction = log_obs.expand(n).mean().item()
    return {"elbo": elbo, "reconstruction": reconstruction, "kl": reconstruction - elbo}


class TensorBoardLogger(Logger):
    """Write the run as TensorBoard event files in ``log_dir`` (``pip install
    'pyrovae[tensorboard]'``); view them with ``tensorboard --logdir log_dir``."""

    def __init__(self, log_dir: str | Path) -> None:
        tensorboard = _package("torch.utils.tensorboard", "tensorboard", "TensorBoard")
        self.log_dir, self.writer = str(log_dir), None
        self._writer_class = tensorboard.SummaryWriter

    def _open(self) -> Any:
        if self.writer is None:
            self.writer = self._writer_class(self.log_dir)
        return self.writer

    def log_metrics(self, metrics: Metrics, step: int) -> None:
        writer = self._open()
        for name, value in metrics.items():
            if value is not None:
                writer.add_scalar(name, value, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        lines = [f"| {name} | {value} |" for name, value in params.items()]
        self._open().add_text("params", "\n".join(["| name | value |", "|---|---|", *lines]))

    def log_image(self, name: str, image: torch.Tensor, step: int) -> None:
        self._open().add_image(name, image, step, dataformats="CHW")

    def on_epoch_end(self, state: "TrainState") -> None:
        super().on_epoch_end(state)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MLflowLogger(Logger):
    """Log the run to MLflow (``pip install 'pyrovae[mlflow]'``): metrics with their steps,
    the config as parameters, the sample grids as images (``client.log_image(key=name,
    step=step)``) of one MLflow run.

    :param str experiment: the MLflow experiment (made when missing).
    :param str run_name: the run's name (MLflow picks one by default).
    :param str tracking_uri: where to log; ``None``: MLflow's own choice (``$MLFLOW_TRACKING_URI``,
        ``mlflow.set_tracking_uri``, else its default store). Inside ``with mlflow.start_run():``
        (and no ``tracking_uri``) the run is that active run, left open at the end.
    """

    def __init__(
        self,
        experiment: str = "pyrovae",
        run_name: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        mlflow = _package("mlflow", "mlflow", "MLflow")
        self._entities = mlflow.entities
        try:
            self.client = mlflow.MlflowClient(tracking_uri)
        except mlflow.exceptions.MlflowException as err:
            raise ValueError(
                f"MLflow cannot open its tracking store {tracking_uri or mlflow.get_tracking_uri()}"
                f" ({str(err).splitlines()[0].strip()[:200]}); point MLFLOW_TRACKING_URI at a "
                "tracking server (http://...), install the full mlflow package for a SQLite "
                "store, or use a folder store (file:PATH with MLFLOW_ALLOW_FILE_STORE=true)"
            ) from None
        active = mlflow.active_run() if tracking_uri is None else None
        self.experiment, self.run_name = experiment, run_name
        self.run_id: str | None
        self.run_id, self._own_run = (active.info.run_id, False) if active else (None, True)

    def on_train_start(self, state: "TrainState") -> None:
        if state.ctx.is_main and self.run_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            experiment = (
                found.experiment_id if found else self.client.create_experiment(self.experiment)
            )
            self.run_id = self.client.create_run(experiment, run_name=self.run_name).info.run_id
        super().on_train_start(state)

    def log_metrics(self, metrics: Metrics, step: int) -> None:
        now = int(time.time() * 1000)
        rows = [
            self._entities.Metric(name, float(value), now, step)
            for name, value in metrics.items()
            if value is not None
        ]
        self.client.log_batch(self.run_id, metrics=rows)

    def log_params(self, params: Mapping[str, Any]) -> None:
        rows = [self._entities.Param(name, str(value)) for name, value in params.items()]
        for start in range(0, len(rows), 100):  # MLflow takes up to 100 parameters a call
            self.client.log_batch(self.run_id, params=rows[start : start + 100])

    def log_image(self, name: str, image: torch.Tensor, step: int) -> None:
        self.client.log_image(self.run_id, _hwc_bytes(image), key=name, step=step)

    def close(self) -> None:
        if self.run_id is not None and self._own_run:
            self.client.set_terminated(self.run_id)
            self.run_id = None


class WandbLogger(Logger):
    """Log the run to Weights & Biases (``pip install 'pyrovae[wandb]'``): metrics at their
    steps, the config as the run's config, the sample grids as ``wandb.Image``.

    :param str project: the W&B project.
    :param str name: the run's name (W&B picks one by default).
    :param dir: the folder W&B writes its ``wandb/`` files into (``None``: W&B's default).
    :param str mode: ``"online"``, ``"offline"`` (written to ``dir`` only, uploaded later with
        ``wandb sync``) or ``"disabled"``; ``None``: W&B's own choice (``$WANDB_MODE``).
    """

    def __init__(
        self,
        project: str = "pyrovae",
        name: str | None = None,
        dir: str | Path | None = None,
        mode: str | None = None,
    ) -> None:
        self._wandb = _package("wandb", "wandb", "W&B")
        self.project, self.name, self.dir, self.mode = project, name, dir, mode
        self.run: Any = None  # a wandb Run, once the run starts

    def on_train_start(self, state: "TrainState") -> None:
        if state.ctx.is_main and self.run is None:
            if self.dir is not None:
                Path(self.dir).mkdir(parents=True, exist_ok=True)
            self.run = self._wandb.init(
                project=self.project,
                name=self.name,
                dir=None if self.dir is None else str(self.dir),
                mode=self.mode,
                reinit="create_new",
            )
        super().on_train_start(state)

    def log_metrics(self, metrics: Metrics, step: int) -> None:
        self.run.log({k: v for k, v in metrics.items() if v is not None}, step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(params)

    def log_image(self, name: str, image: torch.Tensor, step: int) -> None:
        self.run.log({name: self._wandb.Image(_hwc_bytes(image))}, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


class CSVLogger(Logger):
    """Write the run as plain files in ``folder`` (no extra package): ``metrics.csv`` with
    one ``step,name,value`` line per number, ``params.csv`` with ``name,value`` lines and
    ``images/NAME_STEP.png``. A resumed run appends to ``metrics.csv``; a fresh one starts it
    anew."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._file: IO[str] | None = None
        self._rows: Any = None  # a csv.writer on _file, once the run starts

    def on_train_start(self, state: "TrainState") -> None:
        if state.ctx.is_main and self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            mode = "a" if state.first_epoch else "w"
            self._file = open(self.folder / "metrics.csv", mode, newline="")
            self._rows = csv.writer(self._file)
            if mode == "w":
                self._rows.writerow(["step", "name", "value"])
        super().on_train_start(state)

    def log_metrics(self, metrics: Metrics, step: int) -> None:
        self._rows.writerows([step, k, repr(float(v))] for k, v in metrics.items() if v is not None)

    def log_params(self, params: Mapping[str, Any]) -> None:
        with open(self.folder / "params.csv", "w", newline="") as f:
            csv.writer(f).writerows([["name", "value"], *params.items()])

    def log_image(self, name: str, image: torch.Tensor, step: int) -> None:
        import torchvision.utils

        (self.folder / "images").mkdir(exist_ok=True)
        torchvision.utils.save_image(image, self.folder / "images" / f"{name}_{step}.png")

    def on_epoch_end(self, state: "TrainState") -> None:
        super().on_epoch_end(state)
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _in_run_folder(
    name: str, cls: Callable[[Path], Logger], sub: str
) -> Callable[[str | Path | None], Logger]:
    def make(out: str | Path | None) -> Logger:
        if out is None:
            raise ValueError(
                f"logger {name!r} writes into the run folder: give out=FOLDER, or pass "
                f"{cls.__name__}(folder) to log elsewhere"
            )
        return cls(Path(out) / sub)

    return make


# name → make(out): the loggers fit(logger=name) builds, ``out`` being fit's run folder
LOGGERS: dict[str, Callable[[str | Path | None], Logger]] = {
    "csv": _in_run_folder("csv", CSVLogger, "csv"),
    "mlflow": lambda out: MLflowLogger(),
    "tensorboard": _in_run_folder("tensorboard", TensorBoardLogger, "tensorboard"),
    "wandb": lambda out: WandbLogger(dir=out),
}


def make_loggers(
    spec: str | Callback | Sequence[str | Callback] | None, out: str | Path | None = None
) -> list[Callback]:
    """The loggers of ``fit(logger=spec, out=out)``: ``spec`` is ``None``, a :class:`Logger`, a
    name of :data:`LOGGERS` or a list of them. By name, CSV and TensorBoard files go to
    ``out/csv`` and ``out/tensorboard``, W&B's to ``out/wandb``, MLflow's to its tracking store."""
    specs = list(spec) if isinstance(spec, list | tuple) else [] if spec is None else [spec]
    loggers = []
    for item in specs:
        if isinstance(item, str):
            if item not in LOGGERS:
                raise ValueError(f"unknown logger {item!r}; known loggers: {', '.join(LOGGERS)}")
            item = LOGGERS[item](out)
        if not isinstance(item, Callback):
            raise ValueError(
                f"a logger must be a name ({', '.join(LOGGERS)}) or a pyrovae.infer.loggers."
                f"Logger, got {type(item).__name__}"
            )
        loggers.append(item)
    return loggers


def flatten(config: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """``config`` with nested dicts spread out: ``{"prior": {"name": "vamp"}}`` becomes
    ``{"prior.name": "vamp"}``."""
    flat = {}
    for key, value in (config or {}).items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _hwc_bytes(image: torch.Tensor) -> Any:
    """A ``(C, H, W)`` float image in [0, 1] as ``(H, W, C)`` bytes, as ``save_image`` writes
    it (round(255 v))."""
    return image.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _package(module: str, extra: str, backend: str) -> ModuleType:
    import sys

    try:
        __import__(module)
        return sys.modules[module]
    except ImportError:
        raise ValueError(
            f"{backend} logging needs the {extra} package: pip install 'pyrovae[{extra}]'"
        ) from None
