"""Experiment tracking: a small logger interface for :func:`pyrovae.fit`, and TensorBoard.

A logger is a :class:`~pyrovae.infer.callbacks.Callback` that turns the run into named scalars
and pictures; a subclass implements where they go::

    class MLflowLogger(pyrovae.infer.loggers.Logger):
        def log_metrics(self, metrics, step):
            mlflow.log_metrics(metrics, step=step)

    pyrovae.fit(vae, data, logger=MLflowLogger())

What is logged (rank 0 only), with ``step`` the global optimiser step:

* every step: ``train/loss``, the step's negative (β-weighted) ELBO per row;
* every epoch: ``elbo/train``, ``elbo/valid`` (and ``elbo/test`` when scored), ``beta``, and
  on up to :attr:`Logger.term_rows` validation rows (training rows without a validation
  split) the two terms of the ELBO, ``terms/reconstruction`` = E_q[log p(x | latents)] and
  ``terms/kl`` = reconstruction − ELBO (the KL divergence of q from the prior, with
  enumerated sites summed out; the reconstruction term is left out when x depends on an
  enumerated site, as in the Gaussian mixture); and the image ``samples``, a grid of
  ``model.sample(64)`` for grey-level image data.
"""

import math

import torch
from pyro import poutine

from .. import checks
from .callbacks import Callback


class Logger(Callback):
    """Where a run's numbers go: implement :meth:`log_metrics` (and :meth:`log_image`,
    :meth:`close` if the backend has them)."""

    term_rows = 1000  # rows the per-epoch ELBO terms are estimated on
    num_samples = 64  # images in the sample grid

    def log_metrics(self, metrics, step):
        """Record ``metrics``, a dict of name → float, at global step ``step``."""
        raise NotImplementedError

    def log_image(self, name, image, step):
        """Record ``image``, a ``(H, W)`` float array in [0, 1] (white = 1)."""

    def close(self):
        """Flush and release the backend at the end of the run."""

    def on_step_end(self, state):
        if state.ctx.is_main and state.batch_rows:
            self.log_metrics({"train/loss": state.loss / state.batch_rows}, state.global_step)

    def on_epoch_end(self, state):
        if not state.ctx.is_main:
            return
        h, step = state.history, state.global_step
        metrics = {"elbo/train": h["train_elbo"][-1], "beta": h["beta"][-1]}
        for name in ("valid", "test"):
            if h[f"{name}_elbo"][-1] is not None:
                metrics[f"elbo/{name}"] = h[f"{name}_elbo"][-1]
        metrics.update(self._terms(state))
        self.log_metrics(metrics, step)
        shape = getattr(state.data, "image_shape", None)
        if shape is not None and len(shape) == 2 and hasattr(state.model, "sample"):
            from ..plots import image_grid

            n = self.num_samples
            images = image_grid(state.model.sample(n), shape, math.ceil(math.sqrt(n)))
            self.log_image("samples", images, step)

    def on_train_end(self, state):
        if state.ctx.is_main:
            test = state.history["test_elbo"][-1] if state.history["epoch"] else None
            if test is not None and state.options.score_test == "end":
                self.log_metrics({"elbo/test": test}, state.global_step)
            self.close()

    def _terms(self, state):
        if not getattr(state.model, "amortized", True):
            return {}
        split = state.data.valid if state.data.valid is not None else state.data.train
        x, _ = split.rows(torch.arange(min(len(split), self.term_rows)))
        device, dtype = checks.device_dtype(state.model)
        terms = elbo_terms(state.model, x.to(device, dtype))
        return {f"terms/{k}": v for k, v in terms.items() if k != "elbo" and v is not None}


@torch.no_grad()
def elbo_terms(model, x):
    """One-sample estimates, averaged over the rows ``x``, of the ELBO and its two terms:
    ``reconstruction`` = E_q[log p(x | latents)] (``None`` when x depends on an enumerated
    site) and ``kl`` = reconstruction − ELBO = E_q[log q(latents | x) − log p(latents)]."""
    guide = poutine.trace(model.guide).get_trace(x)
    enumerated = poutine.enum(poutine.replay(model.model, trace=guide), first_available_dim=-2)
    trace = poutine.trace(enumerated).get_trace(x)
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

    def __init__(self, log_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError(
                "TensorBoard logging needs the tensorboard package: pip install "
                "'pyrovae[tensorboard]' (or pip install tensorboard)"
            ) from None
        self.log_dir, self._writer_class, self.writer = str(log_dir), SummaryWriter, None

    def _open(self):
        if self.writer is None:
            self.writer = self._writer_class(self.log_dir)
        return self.writer

    def log_metrics(self, metrics, step):
        writer = self._open()
        for name, value in metrics.items():
            if value is not None:
                writer.add_scalar(name, value, step)

    def log_image(self, name, image, step):
        self._open().add_image(name, torch.as_tensor(image)[None], step, dataformats="CHW")

    def on_epoch_end(self, state):
        super().on_epoch_end(state)
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
