"""The von Mises-Fisher distribution on the unit sphere in R^d.

The samplers live in :mod:`.von_mises_fisher_sampling`, the implicit gradient in kappa in
:mod:`.von_mises_fisher_gradient`; this module holds the distribution and its normaliser.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.distributions.util import broadcast_shape
from torch.distributions.utils import lazy_property

from ..ops.script import script
from ..ops.special import log_bessel_iv_and_ratio, log_sphere_area
from .von_mises_fisher_gradient import implicit_t
from .von_mises_fisher_sampling import (
    large_kappa_threshold,
    sample_t_d3,
    sample_t_inverse_cdf,
    sample_t_wood,
    work_dtype,
)

_EMPTY = torch.Size()
Shape = torch.Size | list[int] | tuple[int, ...]

__all__ = ["VonMisesFisher", "log_sphere_area"]


# ---------------------------------------------------------------------------------------------
# log C_d(kappa) + log |S^{d-1}| + kappa, with d/dkappa = 1 - A_d(kappa).
# ---------------------------------------------------------------------------------------------
@script
def _log_normalizer_shifted(
    kappa: torch.Tensor, log_ive: torch.Tensor, d: int, coefficients: torch.Tensor
) -> torch.Tensor:
    """log C_d(kappa) + log area + kappa from ``log_ive`` = log I_{d/2-1}(kappa) - kappa, in
    kappa's (float64) dtype: O(d log kappa), so it keeps its digits up to kappa = 1e38.

    = -log[Gamma(d/2) (2/kappa)^{d/2-1} I_{d/2-1}(kappa) e^{-kappa}]. For kappa^2 small against
    d the bracket is e^{-kappa} (1 + sum_k (kappa^2/4)^k Gamma(d/2) / (k! Gamma(d/2 + k))),
    summed directly (the general formula would cancel two large logs): 16 terms, as the powers
    of q = kappa^2/4 (zero where the series is not used) against their ``coefficients``
    (:func:`_series_coefficients`), a few operations for all, with no branch on the values.
    """
    nu = 0.5 * d - 1.0
    general = nu * torch.log(kappa) - log_ive - (nu * math.log(2.0) + math.lgamma(nu + 1.0))
    q = 0.25 * kappa * kappa
    small = q < 0.1 * (nu + 1.0)
    # ratio of terms < 0.1 / j: 16 terms leave < 1e-20
    powers = torch.where(small, q, 0.0).unsqueeze(-1).expand(list(q.shape) + [16])
    series = torch.cumprod(powers, -1) @ coefficients
    return torch.where(small, kappa - torch.log1p(series), general)


@functools.cache
def _series_coefficients(d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1 / prod_{i <= j} i (nu + i), j = 1..16, nu = d/2 - 1: the coefficients of q^j in the
    series of :func:`_log_normalizer_shifted`."""
    out, c, nu = [], 1.0, 0.5 * d - 1.0
    for j in range(1, 17):
        c /= j * (nu + j)
        out.append(c)
    return torch.tensor(out, dtype=dtype, device=device)


@script
def _one_minus_a(kappa: torch.Tensor, a: torch.Tensor, d: int, threshold: float) -> torch.Tensor:
    """1 - A_d(kappa): ``1 - a``, and past the large-kappa ``threshold`` (where 1 - a has lost
    its digits: 1 - A ~ (d-1)/(2 kappa)) its expansion (d-1)/(2 kappa) - (d-1)(d-3)/(8 kappa^2)
    (from the Riccati equation A' = 1 - A^2 - (d-1) A / kappa), whose next term is
    O(d^2/kappa^2) relative: below float64 precision there."""
    m = float(d - 1)
    tail = (0.5 * m - 0.125 * m * (d - 3) / kappa) / kappa
    return torch.where(kappa >= threshold, tail, 1.0 - a)


class _MeanResultantLength(torch.autograd.Function):
    """``apply(kappa, value, a, d, complement)``: ``value`` = A_d(kappa) (or 1 - A_d with
    ``complement``; computed once, detached), with dA_d/dkappa = 1 - A_d^2 - (d - 1) A_d / kappa
    (negated for 1 - A_d)."""

    @staticmethod
    def forward(
        ctx: Any,
        kappa: torch.Tensor,
        value: torch.Tensor,
        a: torch.Tensor,
        d: int,
        complement: bool,
    ) -> torch.Tensor:
        ctx.save_for_backward(kappa, a)
        ctx.d, ctx.complement = d, complement
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        kappa, a = ctx.saved_tensors
        da = 1.0 - a * a - (ctx.d - 1) * a / kappa.detach()
        return grad * (-da if ctx.complement else da), None, None, None, None


class _Drawn(torch.autograd.Function):
    """``apply(sampler, *args)``: ``sampler(*args)``, a draw of t with no gradient, as one
    opaque operation: ``torch.jit.trace`` records it as a call back into Python, so a traced
    step runs the inverse-CDF sampler afresh at every replay (its table cache reads kappa on
    the host) instead of replaying the tracing run's table."""

    @staticmethod
    def forward(ctx: Any, sampler: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
        t = sampler(*args)
        ctx.mark_non_differentiable(t)
        return t

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, ...]:
        return (None,) * (1 + len(ctx.needs_input_grad))


class VonMisesFisher(TorchDistribution):
    r"""von Mises-Fisher distribution on the unit sphere :math:`S^{d-1} \subset \mathbb{R}^d`.

    .. math::

        p(x \mid \mu, \kappa) = C_d(\kappa) \exp(\kappa \mu^\top x), \qquad
        C_d(\kappa) = \frac{\kappa^{d/2-1}}{(2\pi)^{d/2} I_{d/2-1}(\kappa)},

    with respect to the surface measure, for a unit vector :math:`\mu` (``loc``) and
    :math:`\kappa > 0` (``concentration``). Moments: :math:`E[x] = A_d(\kappa)\mu` with the mean
    resultant length :math:`A_d(\kappa) = I_{d/2}(\kappa) / I_{d/2-1}(\kappa)`, and
    :math:`\mathrm{Cov}[x] = \frac{A_d}{\kappa} I + (1 - \frac{d A_d}{\kappa} - A_d^2)\mu\mu^\top`;
    entropy :math:`H = -\log C_d(\kappa) - \kappa A_d(\kappa)`. Bessel functions come from
    `pyrovae.ops.special` (pure torch, float64 inside); ``log_prob``, ``entropy`` and the KL
    divergences are evaluated in float64 and cast to the parameters' dtype, so they are finite
    in float32 for d up to thousands and kappa from 1e-4 to 1e5.

    **Sampling** (``rsample``) draws :math:`w = \mu^\top x` from its marginal density
    :math:`\propto e^{\kappa w} (1 - w^2)^{(d-3)/2}`, a uniform direction ``v`` orthogonal to
    :math:`e_1`, forms :math:`y = (w, \sqrt{1 - w^2}\, v)` and applies the Householder reflection
    that takes :math:`e_1` to :math:`\mu` (pathwise, so gradients flow into ``loc``).
    :math:`w` is drawn by

    * ``sampler="wood"`` (default): Wood's (1994) rejection sampler, vectorised (the loop only
      redraws rejected entries, until all are accepted). Exact; no set-up cost; the better choice
      when kappa changes at every call (a VAE encoder's output).
    * ``sampler="inverse_cdf"``: inversion of a CDF tabulated on a grid of 2049 angles per
      kappa (log-density shifted by its maximum before exponentiating, linear interpolation of
      the density, exact inversion inside each cell; relative density error ~1e-5). The table
      is cached per (d, kappa values, dtype, device), so it is the better choice for a fixed
      kappa drawn from many times (priors, simulation); a new kappa costs a table build.
    * ``d = 3`` always uses the closed-form inverse CDF
      :math:`w = 1 + \log(u + (1-u) e^{-2\kappa}) / \kappa`, evaluated as
      :math:`1 - w = -\mathrm{log1p}(u\,\mathrm{expm1}(-2\kappa)) / \kappa`.

    **Gradient in kappa.** For d = 3 it is pathwise through the closed form. Otherwise it is
    the *implicit reparameterization gradient* (Figurnov et al., 2018): with F the CDF of w,
    :math:`dw/d\kappa = -\partial_\kappa F(w;\kappa) / p(w;\kappa)`, where
    :math:`\partial_\kappa F(w) = \int_{-1}^{w} (s - A_d(\kappa))\, p(s)\, ds`. It is evaluated by
    quadrature in the angle (see :func:`.von_mises_fisher_gradient.dtheta_dkappa`), so it is
    exact to quadrature precision, needs no change to the ELBO (unlike the rejection-sampling
    correction of Naesseth et al., 2017, which needs a score-function term), and applies to
    both samplers. The common alternative of differentiating through Wood's proposal alone is
    biased for d != 3.

    References: A. Wood (1994), "Simulation of the von Mises Fisher distribution", Comm.
    Statist. Simul. Comput. 23; M. Figurnov, S. Mohamed, A. Mnih (2018), "Implicit
    Reparameterization Gradients", NeurIPS; T. Davidson et al. (2018), "Hyperspherical
    Variational Auto-Encoders", UAI; K. Mardia and P. Jupp (2000), "Directional Statistics".

    :param torch.Tensor loc: unit vectors, shape ``batch_shape + (d,)``, ``d >= 2``.
    :param torch.Tensor concentration: positive, broadcastable to ``batch_shape``.
    :param str sampler: ``"wood"`` or ``"inverse_cdf"``.
    """

    arg_constraints: dict[str, constraints.Constraint] = {
        "loc": constraints.sphere,
        "concentration": constraints.positive,
    }
    support = constraints.sphere
    has_rsample = True
    samplers = ("wood", "inverse_cdf")

    def __init__(
        self,
        loc: torch.Tensor,
        concentration: torch.Tensor | float,
        validate_args: bool | None = None,
        sampler: str = "wood",
    ) -> None:
        if sampler not in self.samplers:
            raise ValueError(f"sampler must be one of {self.samplers}, got {sampler!r}")
        if not isinstance(loc, torch.Tensor) or loc.dim() < 1:
            raise ValueError("loc must be a tensor of unit vectors with shape (..., d)")
        if loc.shape[-1] < 2:
            raise ValueError(f"VonMisesFisher needs d >= 2, got loc.shape[-1] = {loc.shape[-1]}")
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = torch.Size(broadcast_shape(loc.shape[:-1], concentration.shape))
        self.loc = loc.expand(batch_shape + loc.shape[-1:])
        self.concentration = concentration.expand(batch_shape)
        self.sampler = sampler
        super().__init__(batch_shape, loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: Shape, _instance: Any = None) -> VonMisesFisher:
        new = self._get_checked_instance(VonMisesFisher, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        new.sampler = self.sampler
        super(VonMisesFisher, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def dim(self) -> int:
        """Ambient dimension d (the sphere is S^{d-1}), a Python int (under ``torch.jit.trace``
        a shape's entries are tensors, and d enters the float64 arithmetic as a number)."""
        return int(self.event_shape[0])

    def _kappa_work(self) -> torch.Tensor:
        return self.concentration.to(work_dtype(self.concentration))

    @lazy_property
    def _bessel(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_normalizer_shifted, A_d(kappa), 1 - A_d(kappa))``, values in the work dtype
        (float64), from one Bessel evaluation per distribution: log_prob, entropy, the KL
        divergences, the normaliser's backward and the implicit gradient in kappa all reuse
        them."""
        kappa = self._kappa_work().detach()
        d = self.dim
        log_ive, a = log_bessel_iv_and_ratio(0.5 * d - 1.0, kappa, scaled=True)
        coefficients = _series_coefficients(d, kappa.dtype, kappa.device)
        shifted = _log_normalizer_shifted(kappa, log_ive, d, coefficients)
        return shifted, a, _one_minus_a(kappa, a, d, large_kappa_threshold(d))

    def _log_normalizer_rel(self, plus_kappa: bool = False) -> torch.Tensor:
        """log C_d(kappa) + log|S^{d-1}| (+ kappa) in the work dtype, differentiable in kappa
        with d/dkappa = -A_d(kappa) (+ 1): the values computed once (``_bessel``), plus
        (kappa - kappa.detach()) times that derivative, which adds zero to the value and gives
        the gradient (first derivatives; plain operations that ``torch.jit.trace`` records)."""
        shifted, _, one_minus_a = self._bessel
        kappa = self._kappa_work()
        if plus_kappa:
            return shifted + (kappa - kappa.detach()) * one_minus_a
        return (shifted - kappa.detach()) + (kappa - kappa.detach()) * (one_minus_a - 1.0)

    def _mean_resultant_length(self, complement: bool = False) -> torch.Tensor:
        """A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = E[mu^T x] (or 1 - A_d, to full
        relative precision, with ``complement``) in the work dtype, differentiable in kappa."""
        _, a, one_minus_a = self._bessel
        value = one_minus_a if complement else a
        return _MeanResultantLength.apply(self._kappa_work(), value, a, self.dim, complement)

    @property
    def mean(self) -> torch.Tensor:
        a = self._mean_resultant_length().to(self.loc.dtype)
        return a.unsqueeze(-1) * self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        d, kappa = self.dim, self._kappa_work()
        a = self._mean_resultant_length()
        a_over_k = (a / kappa).to(self.loc.dtype).unsqueeze(-1)
        rest = (1.0 - d * a / kappa - a * a).to(self.loc.dtype).unsqueeze(-1)
        return a_over_k + rest * self.loc**2

    def _log_normalizer(self) -> torch.Tensor:
        """log C_d(kappa)."""
        out = self._log_normalizer_rel() - log_sphere_area(self.dim)
        return out.to(_out_dtype(self.concentration.dtype))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # log C + kappa mu^T x = (log C + kappa) - kappa |x - mu|^2 / 2 on the sphere: both
        # terms are O(d log kappa) instead of O(kappa), and nothing cancels near x = mu.
        kappa = self._kappa_work()
        dist2 = (value - self.loc).pow(2).sum(-1).to(kappa.dtype)
        shifted = self._log_normalizer_rel(plus_kappa=True) - log_sphere_area(self.dim)
        out = shifted - 0.5 * kappa * dist2
        return out.to(_out_dtype(value.dtype, self.concentration.dtype))

    def entropy(self) -> torch.Tensor:
        # H = -log C - kappa A = log area - (log C + log area + kappa) + kappa (1 - A)
        kappa, d = self._kappa_work(), self.dim
        one_minus_a = self._mean_resultant_length(complement=True)
        out = log_sphere_area(d) - self._log_normalizer_rel(plus_kappa=True) + kappa * one_minus_a
        return out.to(_out_dtype(self.concentration.dtype))

    def _sample_t(self, sample_shape: torch.Size) -> torch.Tensor:
        d = self.dim
        kappa = self.concentration.expand(sample_shape + self.batch_shape)
        if d == 3:
            return sample_t_d3(kappa)
        if self.sampler == "wood":
            t = sample_t_wood(kappa, d)  # TorchScript: traced as a call, loop and all
        else:
            t = _Drawn.apply(sample_t_inverse_cdf, self.concentration, sample_shape, d)
        if self.concentration.requires_grad:
            t = implicit_t(t, self.concentration, self._bessel[1], d)
        return t

    def rsample(self, sample_shape: Shape = _EMPTY) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        shape = self._extended_shape(sample_shape)
        t = self._sample_t(sample_shape).unsqueeze(-1)  # 1 - w
        v = torch.randn(shape[:-1] + (self.dim - 1,), dtype=self.loc.dtype, device=self.loc.device)
        # |tangent part| = sqrt(1 - w^2) = sqrt(t (2 - t)); v / |v| is uniform on S^{d-2}. The
        # floor, the smallest subnormal, keeps sqrt's derivative finite at t = 0 and leaves
        # t ~ 1/kappa subnormal (float32 at kappa ~ 1e38) as it is.
        info = torch.finfo(t.dtype)
        radial = (t * (2.0 - t)).clamp(min=info.tiny * info.eps).sqrt()
        y = torch.cat(
            [1.0 - t, v * (radial / torch.linalg.vector_norm(v, dim=-1, keepdim=True))], -1
        )
        return _householder(self.loc, y)


def _out_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype of a log-density: the parameters' (and value's), at least float32 (a bf16 or
    float16 network output under autocast gets its density in float32, as it was computed)."""
    out = torch.float32
    for dtype in dtypes:
        out = torch.promote_types(out, dtype)
    return out


def _householder(loc: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """H y = y - 2 u (u^T y) / (u^T u) with u = e1 - loc: the reflection taking e1 to loc."""
    u = torch.cat([1.0 - loc[..., :1], -loc[..., 1:]], -1)
    uu = torch.linalg.vecdot(u, u)
    flat = uu <= 1e3 * torch.finfo(loc.dtype).tiny  # loc == e1: no reflection needed
    scale = torch.where(flat, 0.0, 2.0 / torch.where(flat, 1.0, uu)).unsqueeze(-1)
    return y - (scale * u) * torch.linalg.vecdot(u, y).unsqueeze(-1)
