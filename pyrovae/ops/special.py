"""Modified Bessel functions of the first kind, in pure torch, and the area of a sphere.

Vectorised with broadcasting, free of host round trips (no ``.item()``/``.cpu()``, no
data-dependent branching), so they run unchanged on any device:

* :func:`log_bessel_iv` ``(v, x) = log I_v(x)``, differentiable in ``x``;
* :func:`bessel_iv_ratio` ``(v, x) = I_v(x) / I_{v-1}(x)``, differentiable in ``x``; with
  ``v = d/2`` this is the mean resultant length ``A_d(kappa)`` of the von Mises-Fisher
  distribution;
* :func:`log_bessel_iv_and_ratio` ``(v, x) = (log I_v(x), I_{v+1}(x) / I_v(x))`` from one
  evaluation (values only): what the von Mises-Fisher distribution needs once per step;
* :func:`log_sphere_area` ``(d)``: log of the area of the unit sphere in R^d.

Domain: ``v >= 0``, ``x > 0``; the accuracy below is verified for ``v`` in ``[0, 4096]`` and
``x`` in ``[1e-6, 1e6]`` (``tests/ops/test_special.py``). ``v`` is treated as a constant: no
gradient flows into it.

Method
------
One method covers the whole (v, x) plane, chosen because it has no region boundaries in ``x``:

1. **Uniform asymptotic (Debye) expansion** at the order ``u = v + 20`` (DLMF 10.41.3)::

       I_u(x) ~ exp(r + u log(x / (u + r))) / sqrt(2 pi r) * sum_k u_k(t) / u^k,
       r = sqrt(u^2 + x^2),  t = u / r,

   with the Debye polynomials ``u_k`` (DLMF 10.41.10, generated exactly in rational arithmetic
   at import, ``k <= 12``). The expansion is uniform in ``z = x / u``: the same formula is
   accurate for ``x -> 0`` and ``x -> inf``. Its remainder is of the order of the first
   omitted term ``u_13(t) / u^13``: for ``u >= 20`` about 1e-15 relative at worst over ``t`` in
   ``(0, 1]`` (the last kept term, ``max |u_12| / 20^12``, is 3e-15). The log-ratio
   ``log I_{u+1} - log I_u`` is formed from the *analytic difference* of the two expansions
   (no subtraction of two large logs), so it keeps full relative precision even at
   ``x = 1e6`` where ``1 - I_{u+1}/I_u ~ u/x``.
2. **Backward recurrence** down to ``v``: ``I_{v-1} = I_{v+1} + (2v/x) I_v`` gives
   ``R_v = I_v / I_{v-1} = 1 / (2v/x + R_{v+1})``, which is the Perron/Gauss continued fraction
   evaluated from a tail that is already exact. Every term is positive, so each step loses at
   most a few ulps (the recurrence is stable in this direction), and
   ``log I_v = log I_{v+20} - sum_{j=1..20} log R_{v+j}``.

The same 20 steps are taken for every ``v`` (no per-element branching; for ``v >= 20`` the
expansion at ``v`` itself would do, at ``v + 20`` it is only more accurate). The pass yields
``R_{v+1}``, which is what the derivative needs, and ``R_v = 1 / (2v/x + R_{v+1})`` for
:func:`bessel_iv_ratio`. No power series or large-``x`` (Hankel) expansion is needed: the
Debye expansion at order >= 20 is accurate where the series would be used (small ``x``), and
it has no ``x >> v^2`` validity condition. Only for ``x <= 1e-40`` (outside the tested range)
are the leading series terms
``v log(x/2) - lgamma(v+1) + x^2/(4(v+1))`` used; they are exact in float64 there.

Precision: all arithmetic is done in float64 (float32 inputs are promoted and the result is
cast back; on devices without float64, e.g. Apple MPS, float32 is used). We measure accuracy
of ``log I`` as ``|log I - ref| <= tol * max(1, |ref|)``: a relative error where ``|log I|`` is
large and an absolute one where it is near 0 (``log I_0(x) ~ x^2/4`` at small ``x``, where a
relative measure is meaningless). Tested tolerances: 1e-12 (float64), 1e-6 (float32, which is
the rounding of the result itself).

Gradients: ``d/dx log I_v(x) = R_{v+1}(x) + v/x`` and
``d/dx R_v(x) = 1 - R_v^2 - (2v - 1) R_v / x``; both are implemented as custom
``torch.autograd.Function`` backward passes. The forward pass already yields ``R_{v+1}``, so
the gradient of ``log I`` costs nothing extra, and both are as accurate as the ratio itself.

References: NIST DLMF sections 10.25, 10.29, 10.41; W. Gautschi and J. Slavik (1978),
"On the computation of modified Bessel function ratios", Math. Comp. 32.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch

from .script import script

__all__ = ["bessel_iv_ratio", "log_bessel_iv", "log_bessel_iv_and_ratio", "log_sphere_area"]

_V0 = 20.0  # smallest order at which the Debye expansion is used
_NUM_TERMS = 13  # u_0 .. u_12
_STEPS = int(math.ceil(_V0))  # recurrence steps: Debye is used at order v + 20 >= V0


def _debye_polynomials(num_terms: int) -> list[list[Fraction]]:
    """Coefficients (in powers of t) of the Debye polynomials u_0 .. u_{num_terms-1}.

    Recurrence (DLMF 10.41.10):
    u_{k+1}(t) = t^2 (1 - t^2) u_k'(t) / 2 + 1/8 int_0^t (1 - 5 s^2) u_k(s) ds.
    """
    polys = [[Fraction(1)]]
    for _ in range(num_terms - 1):
        u = polys[-1]
        new = [Fraction(0)] * (len(u) + 4)
        for i in range(1, len(u)):  # t^2 (1 - t^2) / 2 * d/dt
            new[i + 1] += i * u[i] / 2
            new[i + 3] -= i * u[i] / 2
        for i, c in enumerate(u):  # 1/8 int_0^t (1 - 5 s^2) s^i ds
            new[i + 1] += c / (8 * (i + 1))
            new[i + 3] -= 5 * c / (8 * (i + 3))
        while new and new[-1] == 0:
            new.pop()
        polys.append(new)
    return polys


_DEBYE = _debye_polynomials(_NUM_TERMS)
_DEBYE_DEGREE = max(len(p) for p in _DEBYE)
# Matrix C[i, k] = coefficient of t^i in u_k(t).
_DEBYE_MATRIX = [
    [float(_DEBYE[k][i]) if i < len(_DEBYE[k]) else 0.0 for k in range(_NUM_TERMS)]
    for i in range(_DEBYE_DEGREE)
]
_COEF_CACHE: dict[tuple, torch.Tensor] = {}


def _debye_matrix(like: torch.Tensor) -> torch.Tensor:
    key = (like.dtype, like.device)
    mat = _COEF_CACHE.get(key)
    if mat is None:
        mat = torch.tensor(_DEBYE_MATRIX, dtype=like.dtype, device=like.device)
        _COEF_CACHE[key] = mat
    return mat


@script
def _powers(base: torch.Tensor, count: int) -> torch.Tensor:
    """(..., count) tensor of base^0 .. base^(count-1), as one running product (a few
    operations whatever ``count``: for the short vectors of a mini-batch the cost is per
    operation, not per number; the rounding error of base^k grows like k ulps, k < 40)."""
    rest = torch.cumprod(base.unsqueeze(-1).expand(list(base.shape) + [count - 1]), -1)
    return torch.cat([torch.ones_like(base).unsqueeze(-1), rest], -1)


@script
def _log_debye_sum(w: torch.Tensor, t: torch.Tensor, debye: torch.Tensor) -> torch.Tensor:
    """log sum_k u_k(t) / w^k, ``debye`` = the matrix of the u_k's coefficients."""
    u = _powers(t, debye.shape[0]) @ debye  # (..., K): u_k(t)
    return torch.log((u * _powers(w.reciprocal(), debye.shape[1])).sum(-1))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.device.type == "mps" else torch.float64


def _bessel_core(
    v: torch.Tensor, x: torch.Tensor, num_steps: int = _STEPS, scaled: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_bessel_pass` with autocast off: its matrix product (the Debye sums) must stay in
    float64 under ``torch.autocast``. (On the CPU, where asking costs no device round trip,
    the series for a tiny x is only summed when some x needs it; the question is part of the
    TorchScript function, so ``torch.jit.trace`` records it as a branch, not one answer.)"""
    ask = x.device.type == "cpu"
    with torch.autocast(x.device.type, enabled=False):
        return _bessel_pass(v, x, _debye_matrix(x), num_steps, scaled, ask)


@script
def _bessel_pass(
    v: torch.Tensor,
    x: torch.Tensor,
    debye: torch.Tensor,
    num_steps: int,
    scaled: bool,
    ask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (log I_v(x), R_{v+1}(x)) for v >= 0, x > 0, in the (promoted) dtype of x; with
    ``scaled``, log I_v(x) - x instead (formed without cancellation: r_u - x = u²/(r_u + x)).
    One TorchScript function: its ~100 small operations run without Python in between.

    ``num_steps``: recurrence steps; Debye's expansion is used at order v + num_steps, which
    must be >= V0 for every v (20 is enough for all). ``debye``: :func:`_debye_matrix`.
    ``ask``: look whether any x needs the tiny-x series before summing it (a host read).
    """
    u = v + num_steps  # >= V0: Debye for log I_u and for the ratio R_{u+1} = I_{u+1} / I_u
    w = u + 1.0
    r_u = torch.hypot(u, x)
    r_w = torch.hypot(w, x)
    s_u, s_w = _log_debye_sum(torch.stack([u, w]), torch.stack([u / r_u, w / r_w]), debye).unbind(0)
    # log(x / (u + r_u)) = -log1p((u + (r_u - x)) / x), r_u - x = u^2 / (r_u + x)
    r_u_minus_x = u * u / (r_u + x)
    log_x_over = -torch.log1p((u + r_u_minus_x) / x)
    lead = r_u_minus_x if scaled else r_u
    log_iu = lead + u * log_x_over - 0.5 * math.log(2 * math.pi) - 0.5 * torch.log(r_u) + s_u
    # log R_w = log I_w - log I_u, as an analytic difference.
    dr = (w + u) / (r_w + r_u)  # r_w - r_u
    log_x_over_w = -torch.log1p((w + w * w / (r_w + x)) / x)
    log_ratio = (
        dr
        + log_x_over_w
        - u * torch.log1p((1.0 + dr) / (u + r_u))
        - 0.5 * torch.log1p(dr / r_u)
        + s_w
        - s_u
    )
    ratio = torch.exp(log_ratio)  # R_{u+1}
    # Backward recurrence R_{v+j} = 1 / (2 (v+j) / x + R_{v+j+1}), j = STEPS .. 1, with the
    # coefficients 2 (v+j) / x formed at once; log I_v = log I_u - sum_j log R_{v+j}.
    steps = torch.arange(1, num_steps + 1, dtype=x.dtype, device=x.device)
    coefficients = (v.unsqueeze(-1) + steps) * (2.0 / x).unsqueeze(-1)  # (..., STEPS)
    ratios = []
    for j in range(num_steps - 1, -1, -1):
        ratio = torch.reciprocal(coefficients.select(-1, j) + ratio)
        ratios.append(ratio)
    log_iv = log_iu - torch.log(torch.stack(ratios, -1)).sum(-1)
    # x <= 1e-40: the leading terms of the power series are exact in float64.
    tiny = x <= 1e-40
    if ask and not bool(tiny.any()):
        return log_iv, ratio
    log_tiny = v * torch.log(0.5 * x) - torch.lgamma(v + 1.0) + 0.25 * x * x / (v + 1.0)
    if scaled:
        log_tiny = log_tiny - x
    log_iv = torch.where(tiny, log_tiny, log_iv)
    ratio = torch.where(tiny, 0.5 * x / (v + 1.0), ratio)
    return log_iv, ratio


def _prepare(v: Any, x: Any) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    v = torch.as_tensor(v, device=x.device)
    out_dtype = torch.promote_types(x.dtype, v.dtype) if v.is_floating_point() else x.dtype
    dtype = _compute_dtype(x)
    v, x = torch.broadcast_tensors(v.to(dtype), x.to(dtype))
    return v, x, out_dtype


class _LogBesselIv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        v64, x64, out_dtype = _prepare(v.detach(), x.detach())
        log_iv, ratio_next = _bessel_core(v64, x64)
        ctx.save_for_backward(v64, x64, ratio_next)
        ctx.x_shape = x.shape
        ctx.x_dtype = x.dtype
        return log_iv.to(out_dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        v, x, ratio_next = ctx.saved_tensors
        dlog = (ratio_next + v / x).to(grad.dtype)
        grad_x = (grad * dlog).sum_to_size(ctx.x_shape).to(ctx.x_dtype)
        return None, grad_x


class _BesselIvRatio(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        v64, x64, out_dtype = _prepare(v.detach(), x.detach())
        _, ratio_next = _bessel_core(v64, x64)
        ratio = torch.reciprocal(2.0 * v64 / x64 + ratio_next)
        ctx.save_for_backward(v64, x64, ratio)
        ctx.x_shape = x.shape
        ctx.x_dtype = x.dtype
        return ratio.to(out_dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        v, x, ratio = ctx.saved_tensors
        # d/dx [I_v / I_{v-1}] = 1 - R^2 - (2v - 1) R / x  (from I_v' = I_{v-1} - v I_v / x and
        # I_{v-1}' = I_v + (v - 1) I_{v-1} / x).
        dratio = (1.0 - ratio * ratio - (2.0 * v - 1.0) * ratio / x).to(grad.dtype)
        grad_x = (grad * dratio).sum_to_size(ctx.x_shape).to(ctx.x_dtype)
        return None, grad_x


def _as_tensors(v: Any, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if not isinstance(v, torch.Tensor):
        v = torch.as_tensor(v, dtype=x.dtype if x.is_floating_point() else None, device=x.device)
    if not x.is_floating_point():
        x = x.to(v.dtype if v.is_floating_point() else torch.get_default_dtype())
    if not v.is_floating_point():
        v = v.to(x.dtype)
    return v, x


def log_bessel_iv_and_ratio(
    v: torch.Tensor | float, x: torch.Tensor | float, scaled: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log I_v(x), I_{v+1}(x) / I_v(x))`` from one evaluation, as values (no gradient).

    Both come out of the same pass (see the module docstring), so this costs what one
    :func:`log_bessel_iv` costs. With ``v = d/2 - 1`` the ratio is the mean resultant length
    ``A_d(x)`` of a von Mises-Fisher distribution, and ``log I_v`` its normaliser's Bessel
    term. Computed in float64 (float32 on devices without it), returned in that dtype.

    :param bool scaled: return ``log I_v(x) - x`` (the log of scipy's ``ive``) instead of
        ``log I_v(x)``, with full relative precision where ``x`` is huge (1e38: the unscaled
        value is ``x`` to float64 precision and its O(log x) part is lost).
    """
    # for one order given as a number, only the steps that bring it up to V0
    num_steps = max(1, math.ceil(_V0 - v)) if isinstance(v, int | float) else _STEPS
    if isinstance(v, int | float) and isinstance(x, torch.Tensor) and x.dtype == _compute_dtype(x):
        x64 = x.detach()  # already in the work dtype: the order is filled in directly
        return _bessel_core(torch.full_like(x64, v), x64, num_steps, scaled)
    v, x = _as_tensors(v, x)
    v64, x64, _ = _prepare(v.detach(), x.detach())
    return _bessel_core(v64, x64, num_steps, scaled)


def log_sphere_area(d: int) -> float:
    """log of the surface area of the unit sphere S^{d-1} in R^d: log(2 pi^{d/2} / Gamma(d/2))."""
    return math.log(2.0) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)


def log_bessel_iv(v: torch.Tensor | float, x: torch.Tensor | float) -> torch.Tensor:
    """``log I_v(x)``, the log of the modified Bessel function of the first kind.

    :param v: order(s) ``>= 0`` (tensor or number; treated as a constant).
    :param x: argument(s) ``> 0``; float32 or float64. Broadcasts with ``v``.
    :returns: a tensor of the broadcast shape, in the floating dtype of ``x`` (promoted with
        that of ``v``), differentiable in ``x`` with ``d/dx log I_v(x) = I_{v+1}(x)/I_v(x) + v/x``.

    See the module docstring for the method and its accuracy.
    """
    v, x = _as_tensors(v, x)
    return _LogBesselIv.apply(v, x)


def bessel_iv_ratio(v: torch.Tensor | float, x: torch.Tensor | float) -> torch.Tensor:
    """``I_v(x) / I_{v-1}(x)`` for ``v >= 0`` (``v = 0`` gives ``I_0 / I_1``), ``x > 0``.

    With ``v = d/2`` it is the mean resultant length ``A_d(kappa)`` of a von Mises-Fisher
    distribution on the sphere in R^d. Differentiable in ``x`` with
    ``d/dx R_v(x) = 1 - R_v(x)^2 - (2v - 1) R_v(x) / x``.
    """
    v, x = _as_tensors(v, x)
    return _BesselIvRatio.apply(v, x)
