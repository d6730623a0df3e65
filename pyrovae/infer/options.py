"""The training options of :func:`pyrovae.fit`, checked once, when made.

Each option is one :func:`pyrovae.schema.option` field of :class:`Options`: its default (the
same in Python, in a config file and on the command line), its check, its config key and its
flag come from there. To add a training option, add one field here (with ``flag=False`` or
``key=False`` where it has no flag or config key) and read it from ``state.options`` in the
loop; :func:`pyrovae.fit` takes it by keyword, ``pyrovae train`` as a flag and a config key.

The defaults: 100 epochs of batches of 100 rows, the command line's (and the demo's and the
published configs') since the first release; ``fit`` had 10 and 128 until both were made one
(10 epochs is a quick look, not a trained model, and 100 rows is the batch of Kingma &
Welling's and most of the VAE papers' MNIST runs).
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pyro.infer import ELBO

from .. import checks, schema
from ..schema import integer, one_of, option, optional
from .objectives import check_objective
from .step import PRECISIONS

TEST_SCORES = ("end", "epoch", "never")
POSITIVE = optional(checks.positive_int)
NONNEGATIVE = checks.nonnegative_real


@dataclass(frozen=True, kw_only=True)
class Options:
    """The training options of :func:`fit`, checked when made.

    :param int epochs: passes over the training rows (default 100).
    :param int batch_size: rows per step (default 100; per process: with W processes a step
        takes a global batch of ``batch_size × W`` rows). A batch of all rows keeps them in
        order (so that a non-amortised guide keeps one posterior per row); smaller batches are
        shuffled, and a last batch of fewer than ``batch_size / 2`` rows joins the one before
        (:func:`pyrovae.sampling.batch_sizes`): no step on a handful of rows.
    :param float lr: Adam's learning rate. Adam runs fused (one kernel for all parameters)
        where PyTorch has the fused kernels for the model's device and dtype (CPU, CUDA, MPS,
        XPU), else with ``foreach`` updates (:func:`pyrovae.infer.step.adam`); a checkpoint
        written by plain ``Adam`` resumes with it.
    :param int seed: seeds torch, numpy and random; with the same seed a run from the same
        model repeats exactly. The model's initial weights are drawn when it is built, before
        ``fit`` seeds anything: call ``pyro.set_rng_seed`` before building it (as the CLI
        does), or two processes start from different weights.
    :param elbo: the objective: ``"trace"`` (the default:
        :func:`~pyrovae.infer.train.default_elbo`),
        ``"meanfield"``, ``"iwae"``, ``"renyi"`` (:mod:`pyrovae.infer.objectives`), or a Pyro
        ELBO object.
    :param int num_particles: samples per row and step (K of the IWAE/Rényi bounds).
    :param float alpha: α of ``elbo="renyi"`` (default 0.5).
    :param float beta: a constant weight β of the latent sites (β-VAE: E[log p(x|z)] −
        β KL); with warm-up, β(t) = beta × the warm-up's ramp.
    :param float warmup_epochs: KL warm-up: β grows linearly from 0 to 1 over this many epochs
        (per step), scaling every latent site of model and guide
        (:class:`~pyrovae.infer.callbacks.ScaleLatentsMessenger`).
    :param int patience: early stopping: stop when the validation ELBO has not improved for this
        many epochs, and keep the parameters of the best epoch.
    :param str score_test: when to score the test split: ``"end"`` (once, for the returned
        parameters), ``"epoch"`` (every epoch, for the curve) or ``"never"``.
    :param bool initialize: when the model has an ``initialize(x, seed)`` method (the Gaussian
        mixture's k-means++ start), call it on the training rows before the first step; never
        on a resume, which restores the trained parameters instead. (Every rank calls it
        alike; rank 0's result is then broadcast.)
    :param int labelled_per_batch: for a model that learns from labels, with training rows
        of which some are unlabelled (label −1): put this many labelled rows in every batch
        (per process), with ``batch_size`` minus as many unlabelled ones; an epoch is then one
        pass over the unlabelled rows and the labelled rows are dealt out again and again,
        reshuffled at every pass (:meth:`pyrovae.data.Data.batches`). ``None``: the model's
        choice (``model.labelled_per_batch(batch_size)``: the semi-supervised VAE's), else 0,
        plain shuffling of all rows. Each step's loss is still the batch's summed negative
        ELBO over its number of rows, so the labelled rows weigh more, the more often they
        come.
    :param bool detect_anomaly: train with Pyro's argument validation and ``torch.autograd``'s
        anomaly detection (slow; to find the operation behind a NaN).
    :param bool progress: a progress bar (on a terminal) and a line per epoch (rank 0 only).
    :param bool jit: trace the loss once per batch shape and replay it
        (:func:`pyrovae.infer.step.make_step`); for objectives with a differentiable loss
        (not ``"iwae"``/``"renyi"`` of a model without enumerated sites), and not with a KL
        warm-up, whose β the trace would fix. The traced step draws the eager step's random
        numbers and takes its steps to rounding (``tests/infer/test_jit_step.py``: the VAE,
        S-VAE, mixture prior, GMM and LLGAE); it takes 8–17 % less time a step on the CPU
        (``docs/benchmarks.md``, speed), after one trace per batch shape. Off by default all the
        same: a trace silently keeps one path of any Python branch on values in a model or
        guide (a user's, or a network passed in), and drops their Python side effects
        (hooks, prints, counters) after the first step.
    :param str precision: ``"32"``, ``"bf16"`` or ``"16"``: the networks under
        ``torch.autocast`` (:class:`pyrovae.infer.step.MixedPrecision`).
    """

    epochs: int = option(100, "passes over the training set", checks.positive_int, integer)
    batch_size: int = option(100, "rows per SVI step", checks.positive_int, integer)
    lr: float = option(1e-3, "Adam learning rate", checks.positive_real, float)
    seed: int = option(0, "seed for torch, numpy and random", checks.seed, integer)
    warmup_epochs: float = option(0, "KL warm-up length in epochs (0: none)", NONNEGATIVE, float)
    patience: int | None = option(
        None, "early stopping patience in epochs on the validation ELBO", POSITIVE, integer
    )
    num_particles: int = option(1, "samples per ELBO estimate", checks.positive_int, integer)
    elbo: str | ELBO | None = option(
        "trace", "objective: trace, meanfield, iwae, renyi (K = --num-particles)", None, str
    )
    alpha: float | None = option(None, "alpha of --elbo renyi (0.5 when unset)", None, float)
    beta: float = option(1.0, "constant weight of the KL term, a beta-VAE", NONNEGATIVE, float)
    score_test: str = option(
        "end", "when to score the test split: end, epoch, never", one_of(*TEST_SCORES), str
    )
    initialize: bool = option(True, "start the model on the training rows", flag=False, key=False)
    labelled_per_batch: int | None = option(
        None, "labelled rows per batch", optional(checks.nonnegative_int), flag=False, key=False
    )
    detect_anomaly: bool = option(
        False,
        "Pyro validation and torch anomaly detection, to find where a NaN comes from (slow)",
        parse=bool,
        key=False,
    )
    progress: bool = option(
        True, "no progress bar and no line per epoch", parse=bool, flag="--quiet", key=False
    )
    jit: bool = option(
        False, "trace the loss once per batch shape and replay it (not with KL warm-up)", parse=bool
    )
    precision: str = option(
        "32", "the networks' precision: 32, bf16 or 16 (torch.autocast)", one_of(*PRECISIONS), str
    )

    def __post_init__(self) -> None:
        schema.check(self)
        if self.elbo is None or isinstance(self.elbo, str):
            check_objective(self.elbo, self.alpha)
        if self.jit and self.warmup_epochs:
            raise ValueError(
                "jit would fix the KL warm-up's β at its first value: drop jit or warmup_epochs"
            )

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> "Options":
        """``Options(**options)``, refusing an unknown name with the list of known ones."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"unknown fit option(s) {', '.join(unknown)}; fit options: {known}")
        return cls(**options)
