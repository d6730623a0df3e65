"""Samplers of t = 1 - mu^T x for the von Mises-Fisher distribution (see
:class:`~pyrovae.distributions.VonMisesFisher`).

Each returns a detached tensor of t in [0, 2]: d = 3 by its closed-form inverse CDF; other d by
Wood's (1994) rejection sampler or by inverting a tabulated CDF of the angle, and for a huge
kappa (:func:`large_kappa`) by the tangent-space limit :func:`sample_t_large_kappa`. The gradient
in kappa is added afterwards, by :mod:`.von_mises_fisher_gradient`.

**The large-kappa limit.** With a = (d-1)/2 the density of t = 1 - w on [0, 2] is

    p(t) ∝ e^{-kappa t} (t (2 - t))^{a-1} ∝ t^{a-1} exp(-kappa t + (a-1) log(1 - t/2))
         = t^{a-1} exp(-(kappa + (a-1)/2) t) · exp(-(a-1) (t²/8 + t³/24 + …)).

So t is Gamma(a, rate kappa' = kappa + (a-1)/2) times a factor whose log is -(a-1) t²/8 (1 +
O(t)), truncated at t = 2 (mass e^{-2 kappa}). Equivalently t = |eps|²/(2 kappa') with eps ~
N(0, I_{d-1}): the Gaussian on the tangent space, w = 1 - |eps|²/(2 kappa'), with the curvature
correction (a-1)/2 in the rate. Over the bulk of t (t <= t_hi = (a + 10 sqrt(a) + 10) / kappa)
the neglected factor differs from 1 by at most |a-1| t_hi²/8 (1 + t_hi/3);
:func:`large_kappa_threshold` is the kappa at which that is 2^-53 (one float64 ulp), plus 10 %
— about 5e8 for d = 2, 2.5e9 for d = 10, 6e11 for d = 1000 — and at least 40 (so that
e^{-2 kappa} < 2^-53). Past t_hi the deviation grows only like t², so the total-variation
distance between the two laws, about E[|a-1| t²/8] = |a-1| a (a+1) / (8 kappa'²), is below
2^-53 as well. Above the threshold the limit is exact to float64 precision, and Wood's
sampler, whose arithmetic (kappa², kappa (1 - x0)) over- and underflows there (never accepting
from kappa ~ 1e19 in float32), is not used.
"""

import math
from collections import OrderedDict

import torch

from ..ops.script import script

__all__ = [
    "large_kappa",
    "large_kappa_threshold",
    "sample_t_d3",
    "sample_t_inverse_cdf",
    "sample_t_large_kappa",
    "sample_t_wood",
    "work_dtype",
]

_FEW = 4096  # up to this many entries, 6 candidates each in the first round


def work_dtype(t: torch.Tensor) -> torch.dtype:
    """float64, or float32 on devices without float64 (Apple MPS)."""
    return torch.float32 if t.device.type == "mps" else torch.float64


def large_kappa_threshold(d: int) -> float:
    """The kappa above which t's law is Gamma((d-1)/2, kappa + (d-3)/4) to float64 precision
    (see the module docstring): max(40, 1.1 sqrt(|a-1| 2^53 / 8) (a + 10 sqrt(a) + 10)),
    a = (d-1)/2 (the 10 % cover the t^3/24 term)."""
    a = 0.5 * (d - 1)
    spread = a + 10.0 * math.sqrt(a) + 10.0
    return max(40.0, 1.1 * math.sqrt(abs(a - 1.0) * 2.0**53 / 8.0) * spread)


def large_kappa(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """Where kappa is past :func:`large_kappa_threshold` (inf included; NaN excluded)."""
    return kappa >= large_kappa_threshold(d)


def sample_t_large_kappa(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """t = G / (kappa + (a-1)/2), G ~ Gamma(a, 1), a = (d-1)/2: the large-kappa limit (module
    docstring), exact to float64 precision for kappa >= :func:`large_kappa_threshold`; in
    kappa's dtype (t = 0 for kappa = inf)."""
    return _large_kappa_draw(kappa.to(work_dtype(kappa)), 0.5 * (d - 1)).to(kappa.dtype)


@script
def _large_kappa_draw(kappa: torch.Tensor, a: float) -> torch.Tensor:
    """G / (kappa + (a-1)/2), G ~ Gamma(a, 1), clamped to [0, 2]: :func:`sample_t_large_kappa`
    in the work dtype."""
    gam = torch._standard_gamma(torch.full_like(kappa, a))
    return (gam / (kappa + 0.5 * (a - 1.0))).clamp(0.0, 2.0)


def sample_t_d3(kappa: torch.Tensor) -> torch.Tensor:
    """d = 3: the inverse CDF in closed form, t = -log(1 + u (e^{-2 kappa} - 1)) / kappa."""
    u = torch.rand_like(kappa)
    return (-torch.log1p(u * torch.expm1(-2.0 * kappa)) / kappa).clamp(0.0, 2.0)


def sample_t_wood(kappa: torch.Tensor, d: int, fixed_rounds: bool | None = None) -> torch.Tensor:
    """Wood (1994) rejection sampler for w = mu^T x, written in t = 1 - w for precision, in
    the work dtype (float64; t is returned in kappa's dtype). Entries past
    :func:`large_kappa_threshold` take the large-kappa limit instead, and a NaN kappa gives a
    NaN t (for the numerical guard to report), so that every entry is accepted in a bounded
    number of rounds.

    The sampler is one TorchScript function (:func:`_wood`): no Python between its small
    operations, and ``torch.jit.trace`` records its loop as a loop, so a traced step runs as
    many rounds as each draw needs.

    :param fixed_rounds: draw a fixed number of rounds for every entry instead of looking up
        the rejected ones (which waits for the device); ``None``: off the CPU only.
    """
    if fixed_rounds is None:
        fixed_rounds = kappa.device.type != "cpu"
    work = kappa.detach().reshape(-1).to(work_dtype(kappa))
    first = 2 if work.shape[0] > _FEW else 6
    t = _wood(work, d, large_kappa_threshold(d), first, fixed_rounds)
    return t.reshape(kappa.shape).to(kappa.dtype)


@script
def _propose(consts: torch.Tensor, k: int, m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """k candidates per entry of ``consts`` (rows b, kappa, r, c1); the first accepted one
    (or the last candidate) and whether any was accepted."""
    b_, kap, r, c1 = consts.unsqueeze(-1).unbind(-2)
    # z ~ Beta(a, a), a = (d-1)/2, as (1 + g / sqrt(g^2 + 2 G)) / 2 with g ~ N(0, 1),
    # G ~ Gamma(a) (a Student-t identity): one gamma draw per candidate instead of two.
    # Both z and 1 - z are formed without cancellation: with q = sqrt(g^2 + 2G),
    # (q - |g|) / (2q) = G / (q (q + |g|)) and (q + |g|) / (2q).
    conc = torch.full([consts.shape[0], k], 0.5 * m, dtype=consts.dtype, device=consts.device)
    g = torch.randn_like(conc)
    gam = torch._standard_gamma(conc)
    root = torch.sqrt(g * g + 2.0 * gam)
    big = root + g.abs()
    small = gam / (root * big)
    big = big / (2.0 * root)
    neg = g < 0
    z, one_minus_z = torch.where(neg, small, big), torch.where(neg, big, small)
    bz = b_ * z
    t = 2.0 * bz / (one_minus_z + bz)  # 2bz / (1 - (1-b) z)
    neg_log_u = torch.empty_like(t).exponential_()
    accepted = c1 - kap * t + m * torch.log1p(r * t) + neg_log_u >= 0.0
    first = torch.argmax(accepted.to(torch.uint8), dim=-1, keepdim=True)
    return t.gather(-1, first).squeeze(-1), accepted.any(-1)


@script
def _wood(
    kappa: torch.Tensor, d: int, threshold: float, first: int, fixed_rounds: bool
) -> torch.Tensor:
    """:func:`sample_t_wood` on a flat work-dtype ``kappa``; ``threshold``: the large-kappa
    threshold, ``first``: candidates per entry in the first round."""
    big = kappa >= threshold
    bad = torch.isnan(kappa)
    special = big | bad
    kappa_all = kappa
    if fixed_rounds or bool(special.any()):
        # Wood's arithmetic on a harmless kappa there; those entries are replaced at the end
        kappa = torch.where(special, 1.0, kappa)
    m = float(d - 1)
    sq = torch.sqrt(4.0 * kappa * kappa + m * m)
    b = m / (2.0 * kappa + sq)
    one_minus_b = (2.0 * kappa + 4.0 * kappa * kappa / (sq + m)) / (2.0 * kappa + sq)
    x0 = one_minus_b / (1.0 + b)  # (1 - b) / (1 + b)
    one_minus_x0 = 2.0 * b / (1.0 + b)
    # Acceptance test kappa (w - x0) + (d-1) log((1 - x0 w) / (1 - x0^2)) >= log u, written in t:
    # c1 - kappa t + (d-1) log1p(r t) >= log u, c1 = kappa (1 - x0) - (d-1) log1p(x0),
    # r = x0 / (1 - x0). Per-entry constants are stacked so a subset is one gather.
    consts = torch.stack(
        [b, kappa, x0 / one_minus_x0, kappa * one_minus_x0 - m * torch.log1p(x0)], -1
    )
    # Two candidates per entry in the first round (acceptance is >= ~0.7, so ~9% or fewer
    # entries remain), then eight per remaining entry: few rounds, little wasted work. For a
    # few entries (a mini-batch), where each round costs its fixed per-operation time rather
    # than its arithmetic, six in the first round: a second round is rarely needed. On the
    # CPU the rejected entries are looked up (``nonzero``) and redrawn until none is left. On
    # an accelerator that lookup would wait for the device, so every entry gets the same
    # four rounds of eight and keeps its first accepted candidate: an entry is left with a
    # rejected one only with probability < 0.3^34 < 1e-17.
    t, accepted = _propose(consts, first, m)
    if fixed_rounds:
        for _ in range(4):
            t_new, acc_new = _propose(consts, 8, m)
            t = torch.where(accepted, t, t_new)
            accepted = accepted | acc_new
    else:
        rounds = 0
        while not bool(accepted.all()):
            if rounds == 64:  # P(a finite kappa rejects 8 x 64 candidates) < 0.3^512
                raise RuntimeError(
                    "Wood's von Mises-Fisher sampler accepted no candidate in 64 rounds (d = "
                    + str(d)
                    + ", kappa = "
                    + str(kappa[~accepted][:3])
                    + "); please report this kappa"
                )
            rejected = (~accepted).nonzero().squeeze(-1)
            t_new, acc_new = _propose(consts[rejected], 8, m)
            t[rejected] = t_new
            accepted[rejected] = acc_new
            rounds += 1
    if fixed_rounds or bool(special.any()):
        t = torch.where(big, _large_kappa_draw(kappa_all, 0.5 * m), t)
        t = torch.where(bad, kappa_all, t)
    return t.clamp(0.0, 2.0)


_TABLE_SIZE = 2049
_TABLE_CACHE: OrderedDict[tuple[object, ...], tuple[torch.Tensor, ...]] = OrderedDict()
_TABLE_CACHE_SIZE = 16


def _psi(theta: torch.Tensor, kappa: torch.Tensor, d: int) -> torch.Tensor:
    out = kappa * torch.cos(theta)
    if d > 2:
        out = out + (d - 2) * torch.log(torch.sin(theta))
    return out


Table = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""``(lo, step, density, cdf)`` of :func:`_build_table`."""


def _build_table(kappa: torch.Tensor, d: int) -> Table:
    """CDF of theta on a grid covering the mass of each kappa (rows), in float64."""
    m = float(d - 2)
    c_star = 2.0 * kappa / (m + torch.sqrt(m * m + 4.0 * kappa * kappa))
    sin2 = (m * c_star / kappa).clamp(0.0, 1.0)
    theta_star = torch.asin(torch.sqrt(sin2))
    curvature = kappa * c_star + (m / sin2 if d > 2 else 0.0)  # -psi''(theta*)
    sigma = torch.rsqrt(curvature)
    psi_star = _psi(theta_star.clamp(min=1e-300), kappa, d) if d > 2 else kappa
    mult = 2.0 ** (0.5 * torch.arange(-4, 48, dtype=kappa.dtype, device=kappa.device))
    ends = []
    for sign in (-1.0, 1.0):
        cand = (theta_star[:, None] + sign * sigma[:, None] * mult).clamp(0.0, math.pi)
        at_end = (cand <= 0.0) | (cand >= math.pi)
        drop = _psi(cand.clamp(1e-300, math.pi - 1e-16), kappa[:, None], d) - psi_star[:, None]
        done = at_end | (drop < -60.0)
        first = torch.argmax(done.to(torch.int8), dim=-1)
        ends.append(cand.gather(-1, first[:, None]).squeeze(-1))
    lo, hi = ends
    grid = torch.linspace(0.0, 1.0, _TABLE_SIZE, dtype=kappa.dtype, device=kappa.device)
    theta = lo[:, None] + (hi - lo)[:, None] * grid
    log_p = _psi(theta.clamp(1e-300, math.pi - 1e-16), kappa[:, None], d)
    log_p = log_p - log_p.max(-1, keepdim=True).values
    p = torch.exp(log_p)
    if d > 2:  # sin^(d-2) vanishes at the ends of [0, pi]
        p = torch.where((theta <= 0.0) | (theta >= math.pi), torch.zeros_like(p), p)
    step = (hi - lo) / (_TABLE_SIZE - 1)
    cells = 0.5 * (p[:, 1:] + p[:, :-1]) * step[:, None]
    cdf = torch.cat([torch.zeros_like(p[:, :1]), torch.cumsum(cells, -1)], -1)
    total = cdf[:, -1:]
    return lo, step, p / total, cdf / total


def _get_table(kappa: torch.Tensor, d: int) -> tuple[torch.Tensor, ...]:
    """Tables for the distinct values of kappa, and the row of each batch element."""
    key = (d, kappa.dtype, str(kappa.device), tuple(kappa.shape), kappa.cpu().numpy().tobytes())
    table = _TABLE_CACHE.get(key)
    if table is None:
        values, rows = torch.unique(kappa.reshape(-1), return_inverse=True)
        table = (*_build_table(values.to(work_dtype(kappa)), d), rows)
        _TABLE_CACHE[key] = table
        if len(_TABLE_CACHE) > _TABLE_CACHE_SIZE:
            _TABLE_CACHE.popitem(last=False)
    else:
        _TABLE_CACHE.move_to_end(key)
    return table


def sample_t_inverse_cdf(kappa: torch.Tensor, sample_shape: torch.Size, d: int) -> torch.Tensor:
    """Inverse-CDF sampling from a tabulated CDF of theta (cached per kappa tensor; the cache
    is keyed on kappa's values, read on the host: meant for a fixed kappa, e.g. a prior).

    The density of theta is interpolated linearly between grid points, so the CDF is
    piecewise quadratic and inverted exactly within each cell. The tables of all distinct
    kappa values are searched at once as one sorted array (row r's CDF shifted by 2 r).
    """
    kappa = kappa.detach()
    big = large_kappa(kappa, d) | torch.isnan(kappa)
    if big.any():  # the table's kappa cos(theta) cannot resolve theta ~ kappa^-1/2 there
        kappa_all, kappa = kappa, torch.where(big, 1.0, kappa)
    lo, step, p, cdf, rows = _get_table(kappa, d)
    size = cdf.shape[-1]
    n = sample_shape.numel()
    rows = rows.expand(n, -1).reshape(-1)  # (n * batch,)
    u = torch.rand(rows.shape, dtype=cdf.dtype, device=cdf.device)
    offset = 2.0 * torch.arange(cdf.shape[0], dtype=cdf.dtype, device=cdf.device)
    flat_cdf = (cdf + offset[:, None]).reshape(-1)
    pos = torch.searchsorted(flat_cdf, u + 2.0 * rows.to(cdf.dtype))
    idx = (pos - rows * size).clamp(1, size - 1) - 1  # cell index within the row
    flat = rows * size + idx
    cdf_flat, p_flat = cdf.reshape(-1), p.reshape(-1)
    f0, p0, p1 = cdf_flat[flat], p_flat[flat], p_flat[flat + 1]
    h = step[rows]
    c = (u - f0).clamp(min=0.0)
    a = (p1 - p0) / (2.0 * h)
    # solve a s^2 + p0 s = c for s in [0, h] (stable root)
    s = 2.0 * c / (p0 + torch.sqrt((p0 * p0 + 4.0 * a * c).clamp(min=0.0))).clamp(min=1e-300)
    theta = lo[rows] + idx.to(lo.dtype) * h + torch.minimum(s, h)
    t = (2.0 * torch.sin(0.5 * theta) ** 2).reshape(sample_shape + kappa.shape).to(kappa.dtype)
    if big.any():
        limit = sample_t_large_kappa(kappa_all.expand(t.shape), d)
        t = torch.where(big, torch.where(torch.isnan(kappa_all), kappa_all, limit), t)
    return t
