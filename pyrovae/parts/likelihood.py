"""Likelihoods p(x | z): each turns the decoder's output into a distribution over ``x``.

``output_dim`` is the number of decoder outputs needed; ``likelihood(out)`` returns a
distribution with event shape ``(input_dim,)`` whose ``.mean`` is the reconstruction;
``check(x)`` refuses data outside the likelihood's support with a message saying what to do.
"""

import math
from collections.abc import Callable

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits, softplus

from ..checks import positive_real
from .registry import Registry

likelihoods = Registry("likelihood")


@likelihoods.register("bernoulli")
class BernoulliLikelihood(nn.Module):
    """p(x | z) = Π_i Bernoulli(x_i; sigmoid(logits_i)).

    Values in [0, 1] that are not 0 or 1 are accepted (cross-entropy against grey levels, as in
    many VAE papers), but then the log-likelihood is not that of a normalised density: binarize
    the data (``binarize="dynamic"`` or ``"static"``) for figures comparable with papers.
    """

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.output_dim = input_dim

    def forward(self, logits: torch.Tensor) -> dist.Independent:
        return _BernoulliRows(dist.Bernoulli(logits=logits, validate_args=False), 1)

    def check(self, x: torch.Tensor) -> None:
        _check_unit_interval("Bernoulli", x)


class _BernoulliRows(dist.Independent):
    """``Bernoulli(logits=…).to_event(1)`` whose ``log_prob`` negates the cross-entropy after
    summing it over the row, not the whole ``(…, D)`` array: log p(x) = −Σ_i BCE(logits_i, x_i)."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits = self.base_dist.logits
        if logits.shape != value.shape:
            logits, value = torch.broadcast_tensors(logits, value)
        return -binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)


@likelihoods.register("continuous_bernoulli")
class ContinuousBernoulliLikelihood(nn.Module):
    """p(x | z) = Π_i CB(x_i; λ_i), λ_i = sigmoid(logits_i) (Loaiza-Ganem & Cunningham 2019):

    .. math::
        CB(x; λ) = C(λ)\\, λ^x (1 - λ)^{1 - x}, \\quad x \\in [0, 1], \\qquad
        C(λ) = \\frac{2 \\tanh^{-1}(1 - 2λ)}{1 - 2λ} \\ (C(1/2) = 2),

    the normalised density for grey levels in [0, 1] that the Bernoulli cross-entropy is not
    (``torch.distributions.ContinuousBernoulli``). Its log-likelihoods are those of a density on
    [0, 1]^D, so they are not comparable with figures on binarised data. The reconstruction is
    the mean of CB, not λ.

    **Positive log-likelihoods are expected.** A density, unlike a probability, may exceed 1:
    CB(0; λ) = C(λ) (1 − λ) ≈ log(1/λ) grows without bound as λ → 0 (and CB(1; λ) as λ → 1),
    e.g. log CB(0; 0.01) = +1.54. Pixels near 0 or 1 predicted confidently each add such a
    positive term, and a row's log p(x | z) sums 64 (digits) or 784 (MNIST) of them. So the
    ELBO and log-likelihood that training logs and ``pyrovae evaluate`` prints are typically
    positive (e.g. +67.8 nats per digit): a higher figure is still a better fit, but it is not
    a code length, and the (negative) bounds papers give on binarised data are no comparison.
    """

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.output_dim = input_dim

    def forward(self, logits: torch.Tensor) -> dist.Independent:
        return dist.ContinuousBernoulli(logits=logits, validate_args=False).to_event(1)

    def check(self, x: torch.Tensor) -> None:
        _check_unit_interval("continuous Bernoulli", x)


class _LocationScale(nn.Module):
    """p(x | z) = Π_i F(x_i; decoder(z)_i, σ_i) for a location-scale family F, with σ a fixed
    number or ``"learned"``: σ = softplus(raw), initialised at ``init_scale``, one σ shared by
    all pixels or, with ``per_pixel=True``, one σ_i per dimension (D parameters)."""

    family: Callable[[torch.Tensor, torch.Tensor], dist.TorchDistribution]  # F(loc, scale)
    raw_scale: nn.Parameter
    fixed_scale: torch.Tensor

    def __init__(
        self,
        input_dim: int,
        scale: str | float = "learned",
        init_scale: float = 0.1,
        per_pixel: bool = False,
    ) -> None:
        super().__init__()
        self.output_dim = input_dim
        if positive_real("scale", scale, learned=True) == "learned":
            positive_real("init_scale", init_scale)
            raw = init_scale + math.log(-math.expm1(-init_scale))  # softplus⁻¹, also for large σ
            shape = (input_dim,) if per_pixel else ()
            self.raw_scale = nn.Parameter(torch.full(shape, raw))
        elif per_pixel:
            raise ValueError(
                "per_pixel=True learns one scale per pixel: it needs scale='learned', not "
                f"a fixed scale={scale}"
            )
        else:
            self.register_buffer("fixed_scale", torch.tensor(float(scale)))

    @property
    def scale(self) -> torch.Tensor:
        """σ: ``()`` shared, or ``(D,)`` per pixel."""
        return softplus(self.raw_scale) if hasattr(self, "raw_scale") else self.fixed_scale

    def forward(self, loc: torch.Tensor) -> dist.Independent:
        return self.family(loc, self.scale.expand(loc.shape[-1:])).to_event(1)

    def check(self, x: torch.Tensor) -> None:
        pass


@likelihoods.register("gaussian")
class GaussianLikelihood(_LocationScale):
    """p(x | z) = N(x; decoder(z), diag σ²) with σ a fixed number or ``"learned"`` (one shared
    σ, or one per pixel with ``per_pixel=True``; σ = softplus(raw), initialised at
    ``init_scale``)."""

    family = dist.Normal


@likelihoods.register("laplace")
class LaplaceLikelihood(_LocationScale):
    """p(x | z) = Π_i Laplace(x_i; decoder(z)_i, b_i), density exp(−|x − μ| / b) / (2b): an L1
    reconstruction loss with a learned (or fixed) scale b, shared or per pixel as for the
    Gaussian (``scale``, ``init_scale``, ``per_pixel``)."""

    family = dist.Laplace


def _check_unit_interval(name: str, x: torch.Tensor) -> None:
    """Refuse data outside [0, 1], the support of the (continuous) Bernoulli likelihood."""
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"the {name} likelihood needs data in [0, 1], got values in "
            f"[{x.min().item():.3g}, {x.max().item():.3g}]; rescale the data or use "
            "likelihood='gaussian'"
        )
