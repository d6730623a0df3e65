"""Closed-form KL divergences, registered with ``torch.distributions.kl.register_kl``.

* ``KL(vMF(mu, kappa) || Uniform(S^{d-1})) = log C_d(kappa) + kappa A_d(kappa) + log|S^{d-1}|``
  (= -H(vMF) + log area), evaluated in float64 as
  ``[log C_d + log area] + kappa A_d`` where the bracket is computed without cancellation
  (a direct series for small kappa), so it stays accurate (~kappa^2 / (2d)) as kappa -> 0.
* ``KL(vMF(mu_p, kappa_p) || vMF(mu_q, kappa_q))
  = log C_d(kappa_p) - log C_d(kappa_q) + A_d(kappa_p) (kappa_p - kappa_q mu_q^T mu_p)``,
  from ``E_p[x] = A_d(kappa_p) mu_p``.
"""

from __future__ import annotations

import torch
from pyro.distributions.util import broadcast_shape
from torch.distributions.kl import register_kl

from pyrovae.distributions.hyperspherical_uniform import HypersphericalUniform
from pyrovae.distributions.von_mises_fisher import VonMisesFisher, _out_dtype


def _check_dims(p: VonMisesFisher, q: VonMisesFisher | HypersphericalUniform) -> None:
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"KL between distributions on different spheres: {p.event_shape} vs {q.event_shape}"
        )


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> torch.Tensor:
    _check_dims(p, q)
    kappa = p._kappa_work()
    # log C + log area + kappa A = (log C + log area + kappa) - kappa (1 - A)
    kl = p._log_normalizer_rel(plus_kappa=True) - kappa * p._mean_resultant_length(True)
    dtype = _out_dtype(p.concentration.dtype)
    return kl.to(dtype).expand(broadcast_shape(p.batch_shape, q.batch_shape))


@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p: VonMisesFisher, q: VonMisesFisher) -> torch.Tensor:
    _check_dims(p, q)
    kp, kq = p._kappa_work(), q._kappa_work()
    a, one_minus_a = p._mean_resultant_length(), p._mean_resultant_length(complement=True)
    # 1 - cos = |mu_p - mu_q|^2 / 2 for unit vectors, without cancellation near mu_p = mu_q
    one_minus_cos = 0.5 * (p.loc.to(kp.dtype) - q.loc.to(kp.dtype)).pow(2).sum(-1)
    # log C(kp) - log C(kq) + A (kp - kq cos) = [rel(kp) + kp] - [rel(kq) + kq]
    #     - kp (1 - A) + kq (1 - A cos), with 1 - A cos = (1 - A) + A (1 - cos): the O(kappa)
    #     parts cancel exactly
    log_c_diff = p._log_normalizer_rel(plus_kappa=True) - q._log_normalizer_rel(plus_kappa=True)
    kl = log_c_diff - kp * one_minus_a + kq * (one_minus_a + a * one_minus_cos)
    return kl.to(_out_dtype(p.concentration.dtype, q.concentration.dtype))
