"""The training options of :func:`pyrovae.fit`, checked once, when made."""

from dataclasses import dataclass, fields

from .. import checks
from .callbacks import TestScore
from .step import PRECISIONS


@dataclass(frozen=True, kw_only=True)
class Options:
    """The training options of :func:`fit`, checked when made.

    :param int epochs: passes over the training rows.
    :param int batch_size: rows per step (per process: with W processes a step takes a global
        batch of ``batch_size × W`` rows). A batch of all rows keeps them in order (so that a
        non-amortised guide keeps one posterior per row); smaller batches are shuffled.
    :param float lr: Adam's learning rate. Adam runs fused (one kernel for all parameters)
        where PyTorch has the fused kernels for the model's device and dtype (CPU, CUDA, MPS,
        XPU), else with ``foreach`` updates (:func:`pyrovae.infer.step.adam`); a checkpoint
        written by plain ``Adam`` resumes with it.
    :param int seed: seeds torch, numpy and random; with the same seed a run repeats exactly.
    :param elbo: the objective: ``"trace"`` (the default: :func:`default_elbo`),
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
        warm-up, whose β the trace would fix.
    :param str precision: ``"32"``, ``"bf16"`` or ``"16"``: the networks under
        ``torch.autocast`` (:class:`pyrovae.infer.step.MixedPrecision`).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    elbo: object = None
    num_particles: int = 1
    alpha: float | None = None
    beta: float = 1.0
    warmup_epochs: float = 0
    patience: int | None = None
    score_test: str = "end"
    initialize: bool = True
    labelled_per_batch: int | None = None
    detect_anomaly: bool = False
    progress: bool = True
    jit: bool = False
    precision: str = "32"

    def __post_init__(self):
        checks.training_options(vars(self))
        if self.jit and self.warmup_epochs:
            raise ValueError(
                "jit would fix the KL warm-up's β at its first value: drop jit or warmup_epochs"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.score_test not in TestScore.WHEN:
            raise ValueError(
                f"score_test must be one of {', '.join(TestScore.WHEN)}, got {self.score_test!r}"
            )

    @classmethod
    def of(cls, options):
        """``Options(**options)``, refusing an unknown name with the list of known ones."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"unknown fit option(s) {', '.join(unknown)}; fit options: {known}")
        return cls(**options)
