"""The von Mises-Fisher distribution at extreme concentrations (kappa up to 1e38, float32 and
float64): bounded-time sampling, finite unit-norm samples, the mean resultant length against
mpmath, and the large-kappa limit against the exact law it replaces."""

import math
import time

import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.distributions import kl_divergence

from pyrovae.distributions import HypersphericalUniform, VonMisesFisher
from pyrovae.distributions.von_mises_fisher_gradient import dt_dkappa
from pyrovae.distributions.von_mises_fisher_sampling import (
    large_kappa_threshold,
    sample_t_wood,
)

N = 2000


def _mp_kappa_one_minus_a(d, kappa):
    """kappa (1 - A_d(kappa)) and log I_{d/2-1}(kappa) - kappa by mpmath, with enough digits
    to resolve 1 - A at kappa = 1e38."""
    with mpmath.workdps(60 + max(0, int(math.log10(kappa)))):
        k, nu = mpmath.mpf(kappa), mpmath.mpf(d) / 2 - 1
        i_nu = mpmath.besseli(nu, k, maxterms=10**6)
        a = mpmath.besseli(nu + 1, k, maxterms=10**6) / i_nu
        return float(k * (1 - a)), float(mpmath.log(i_nu) - k)


def _mp_log_c_plus_kappa(d, kappa):
    """log C_d(kappa) + kappa (the log-density at x = mu) by mpmath."""
    nu = d / 2 - 1
    log_ive = _mp_kappa_one_minus_a(d, kappa)[1]
    return nu * math.log(kappa) - d / 2 * math.log(2 * math.pi) - log_ive


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    d=st.sampled_from([2, 3, 4, 10, 64]),
    log10_kappa=st.floats(-3.0, 38.0),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    sampler=st.sampled_from(["wood", "inverse_cdf"]),
)
def test_extreme_kappa_samples(d, log10_kappa, dtype, sampler):
    """Finite unit-norm samples in bounded time; E[t] kappa = kappa (1 - A_d) (mpmath) within
    6 standard errors; log p at x = mu against mpmath; finite gradients in kappa and loc."""
    kappa_value = 10.0**log10_kappa
    torch.manual_seed(int(log10_kappa * 1000) % 2**31)
    # A general mu puts x's deviation from mu, ~kappa^-1/2, at the rounding of components ~1
    # once kappa eps^2 is not small: there mu = e1 keeps it exact (and samples are checked).
    eps = torch.finfo(dtype).eps
    resolved = kappa_value * eps**2 < 1e-6
    raw = torch.randn(d, dtype=dtype) if resolved else torch.eye(d, dtype=dtype)[0]
    raw.requires_grad_(True)
    kappa = torch.tensor(kappa_value, dtype=dtype, requires_grad=True)
    loc = raw / raw.norm()
    p = VonMisesFisher(loc, kappa, sampler=sampler)
    tic = time.thread_time()
    x = p.rsample((N,))
    assert time.thread_time() - tic < 10.0
    assert x.dtype == dtype and torch.isfinite(x).all()
    assert ((x.norm(dim=-1) - 1).abs() <= 4 * eps).all()
    # t = 1 - mu^T x = |x - mu|^2 / 2, which resolves t ~ 1/kappa even where 1 - t rounds to 1
    t = 0.5 * (x.detach().double() - loc.detach().double()).pow(2).sum(-1)
    kt = (t * kappa_value).numpy()
    ref, _ = _mp_kappa_one_minus_a(d, kappa_value)
    se = kt.std() / math.sqrt(N)
    assert abs(kt.mean() - ref) <= 6 * se + 1e-5 * ref
    loss = p.log_prob(x).sum() + p.entropy() + kl_divergence(p, HypersphericalUniform(d))
    assert torch.isfinite(loss)
    grads = torch.autograd.grad(loss, [raw, kappa])
    assert all(torch.isfinite(g).all() for g in grads)
    at_mode = p.log_prob(loc.detach()).item()
    expected = _mp_log_c_plus_kappa(d, kappa_value)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert abs(at_mode - expected) <= tol * max(1.0, abs(expected))


@pytest.mark.parametrize("d", [2, 10, 1000])
def test_large_kappa_threshold_is_exact_to_float64(d):
    """At the threshold, the factor that the Gamma limit drops, (1 - t/2)^(a-1) e^((a-1) t/2),
    is 1 within one float64 ulp over t <= t_hi (mpmath), its mean deviation and the truncation
    mass e^-2kappa are below one ulp; just below the threshold, Wood's sampler still runs (its
    KS against the limit's law does not reject)."""
    a = (d - 1) / 2
    kappa = large_kappa_threshold(d)
    t_hi = (a + 10 * math.sqrt(a) + 10) / kappa
    with mpmath.workdps(50):
        t = mpmath.mpf(t_hi)
        log_factor = (a - 1) * mpmath.log(1 - t / 2) + (a - 1) * t / 2
        assert abs(float(log_factor)) <= 2.0**-53
    assert math.exp(-2 * kappa) < 2.0**-53
    # the total-variation distance, E[|a-1| t^2/8] under Gamma(a, kappa'), below one ulp
    rate = kappa + (a - 1) / 2
    second_moment = scipy.stats.gamma(a, scale=1 / rate).moment(2)
    assert abs(a - 1) * second_moment / 8 <= 2.0**-53
    torch.manual_seed(0)
    below = sample_t_wood(torch.full((4000,), 0.9 * kappa, dtype=torch.float64), d)
    ref = scipy.stats.gamma(a, scale=1 / (0.9 * kappa + (a - 1) / 2))
    assert scipy.stats.kstest(below.numpy(), ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("d", [2, 10, 64])
@pytest.mark.parametrize("u", [0.05, 0.5, 0.95])
def test_kappa_gradient_continuous_across_the_threshold(d, u):
    """d t / d kappa at fixed CDF value u: the quadrature just below the threshold and the
    limit's -t / kappa' just above agree (t at u from scipy's Gamma quantile)."""
    a = (d - 1) / 2
    kappa0 = large_kappa_threshold(d)
    values = []
    for kappa in (kappa0 * (1 - 1e-9), kappa0 * (1 + 1e-9)):
        t = scipy.special.gammaincinv(a, u) / (kappa + (a - 1) / 2)
        t_ = torch.tensor([t], dtype=torch.float64)
        values.append(dt_dkappa(t_, torch.tensor(kappa, dtype=torch.float64), d).item())
    below, above = values
    assert above == pytest.approx(-scipy.special.gammaincinv(a, u) / (kappa0 + (a - 1) / 2) ** 2)
    assert below == pytest.approx(above, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sampler", ["wood", "inverse_cdf"])
def test_nan_and_inf_kappa_do_not_hang(dtype, sampler):
    """A NaN concentration gives a NaN sample (for the numerical guard to report) and an
    infinite one the mode, at once: no rejection loop waits on them."""
    loc = torch.eye(10, dtype=dtype)[:3]
    kappa = torch.tensor([float("nan"), float("inf"), 5.0], dtype=dtype)
    tic = time.thread_time()
    x = VonMisesFisher(loc, kappa, sampler=sampler, validate_args=False).sample((50,))
    assert time.thread_time() - tic < 5.0
    assert torch.isnan(x[:, 0]).all()
    assert torch.allclose(x[:, 1], loc[1].expand(50, 10), rtol=0, atol=1e-15)
    assert torch.isfinite(x[:, 2]).all()


def test_wood_accelerator_path_at_huge_kappa():
    """The fixed-rounds path (off the CPU) takes the same large-kappa limit: t kappa has mean
    (d-1)/2 at kappa = 1e30 in float32."""
    torch.manual_seed(2)
    t = sample_t_wood(torch.full((N,), 1e30), 10, fixed_rounds=True)
    kt = t.double().numpy() * 1e30
    assert np.isfinite(kt).all()
    assert abs(kt.mean() - 4.5) < 6 * kt.std() / math.sqrt(N)


@pytest.mark.parametrize("concentration", [1e19, 1e38])
def test_svae_with_a_huge_fixed_concentration_trains(concentration):
    """``posterior={name: von_mises_fisher, concentration: 1e19}`` (float32): an epoch ends in
    bounded time with a finite ELBO (it looped forever in Wood's sampler before)."""
    from pyrovae import fit
    from pyrovae.models import VAE

    torch.manual_seed(0)
    x = torch.rand(64, 16).round()
    posterior = {"name": "von_mises_fisher", "concentration": concentration}
    vae = VAE(16, 3, prior="hyperspherical_uniform", posterior=posterior, hidden=(8,))
    tic = time.thread_time()
    history = fit(vae, x, epochs=1, batch_size=32, progress=False)
    assert time.thread_time() - tic < 30.0
    assert math.isfinite(history["train_elbo"][-1])


def test_svae_at_a_huge_learning_rate_stops_with_the_guard():
    """lr = 1e20 (d = 2) drives kappa and loc to inf/NaN: the guard's NonFiniteError, at once,
    instead of a sampler that never accepts."""
    from pyrovae import fit
    from pyrovae.infer.guard import NonFiniteError
    from pyrovae.models import VAE

    torch.manual_seed(0)
    x = torch.rand(64, 16).round()
    vae = VAE(16, 2, prior="hyperspherical_uniform", posterior="von_mises_fisher", hidden=(8,))
    tic = time.thread_time()
    with pytest.raises(NonFiniteError, match="non-finite"):
        fit(vae, x, epochs=5, batch_size=16, lr=1e20, progress=False)
    assert time.thread_time() - tic < 30.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_huge_kappa_samples(dtype):
    """On a GPU (fixed rounds, no host lookups): finite unit-norm samples and t kappa of mean
    (d-1)/2 at kappa = 1e30, and NaN for a NaN kappa."""
    kappa = torch.full((N,), 1e30, dtype=dtype, device="cuda")
    loc = torch.eye(10, dtype=dtype, device="cuda")[0].expand(N, 10)
    torch.manual_seed(4)
    x = VonMisesFisher(loc, kappa).sample()
    assert torch.isfinite(x).all() and ((x.norm(dim=-1) - 1).abs() < 1e-6).all()
    kt = (0.5 * (x.double() - loc.double()).pow(2).sum(-1) * 1e30).cpu().numpy()
    assert abs(kt.mean() - 4.5) < 6 * kt.std() / math.sqrt(N)
    bad = VonMisesFisher(loc[:2], torch.tensor([float("nan"), 1.0], dtype=dtype, device="cuda"),
                         validate_args=False).sample()  # fmt: skip
    assert torch.isnan(bad[0]).all() and torch.isfinite(bad[1]).all()
