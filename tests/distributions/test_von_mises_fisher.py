import math
import subprocess
import sys
import warnings

import mpmath
import numpy as np
import pyro
import pytest
import scipy.stats
import torch
from pyro.distributions.testing.gof import auto_goodness_of_fit
from torch.distributions import kl_divergence

from pyrovae.distributions import HypersphericalUniform, VonMisesFisher
from pyrovae.distributions.von_mises_fisher_gradient import dt_dkappa
from pyrovae.distributions.von_mises_fisher_sampling import sample_t_wood
from pyrovae.ops.special import bessel_iv_ratio, log_sphere_area

SAMPLERS = ["wood", "inverse_cdf"]
mpmath.mp.dps = 40


def _loc(d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d, generator=g, dtype=dtype)
    return x / x.norm()


def _mp_log_c(d, kappa):
    nu = mpmath.mpf(d) / 2 - 1
    k = mpmath.mpf(kappa)
    log_i = mpmath.log(mpmath.besseli(nu, k, maxterms=10**6))
    return nu * mpmath.log(k) - mpmath.mpf(d) / 2 * mpmath.log(2 * mpmath.pi) - log_i


def _mp_a(d, kappa):
    nu = mpmath.mpf(d) / 2 - 1
    k = mpmath.mpf(kappa)
    return mpmath.besseli(nu + 1, k, maxterms=10**6) / mpmath.besseli(nu, k, maxterms=10**6)


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(1.0, np.abs(b)))


DIMS = [2, 3, 5, 10, 64, 256]
KAPPAS = [1e-3, 1e-1, 1.0, 10.0, 1e3, 1e5]


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("kappa", KAPPAS)
def test_log_prob_and_entropy(d, kappa):
    loc = _loc(d)
    p = VonMisesFisher(loc, torch.tensor(kappa, dtype=torch.float64))
    torch.manual_seed(0)
    x = torch.cat([p.sample((4,)), loc[None], -loc[None], HypersphericalUniform(d).sample((2,))])
    x = x / x.norm(dim=-1, keepdim=True)
    lp, ent = p.log_prob(x).numpy(), p.entropy().item()
    # Reference: mpmath (40 digits). scipy agrees with it to ~1e-12 wherever it is finite, but
    # its ive(d/2-1, kappa) underflows for d = 256, kappa <= 0.1 (log_prob = inf, entropy = nan).
    log_c = _mp_log_c(d, kappa)
    ref_lp = np.array([float(log_c + kappa * mpmath.mpf(float(c))) for c in (x @ loc).tolist()])
    ref_ent = float(-log_c - kappa * _mp_a(d, kappa))
    assert _rel(lp, ref_lp) < 1e-10
    assert _rel(ent, ref_ent) < 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sp = scipy.stats.vonmises_fisher(loc.numpy(), kappa)
        sp_lp, sp_ent = sp.logpdf(x.numpy()), sp.entropy()
    if np.all(np.isfinite(sp_lp)):
        assert _rel(lp, sp_lp) < 1e-8
        assert _rel(ent, sp_ent) < 1e-8
    else:
        assert d == 256 and kappa <= 0.1  # the known scipy underflow, nothing else


# (d, kappa) cases for sampling tests: every regime of Wood's envelope, d = 2 and d = 3.
SAMPLE_CASES = [(2, 1.0), (3, 10.0), (5, 2.0), (10, 0.1), (64, 30.0), (16, 1e4), (256, 1e3)]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("d, kappa", SAMPLE_CASES)
def test_samples_ks_against_scipy(sampler, d, kappa):
    n = 4000
    loc = _loc(d)
    torch.manual_seed(1)
    x = VonMisesFisher(loc, torch.tensor(kappa, dtype=torch.float64), sampler=sampler).sample((n,))
    assert torch.allclose(x.norm(dim=-1), torch.ones(n, dtype=torch.float64))
    ref = scipy.stats.vonmises_fisher(loc.numpy(), kappa).rvs(n, random_state=2)
    result = scipy.stats.ks_2samp((x @ loc).numpy(), ref @ loc.numpy())
    assert result.pvalue > 1e-3


@pytest.mark.parametrize("d, kappa", [(2, 1.0), (5, 2.0), (10, 0.1), (64, 30.0), (16, 1e4)])
def test_wood_fixed_rounds_ks_against_scipy(d, kappa):
    """The accelerator path of Wood's sampler (fixed rounds, no lookup of rejected entries)
    draws w = mu^T x from the same law as scipy."""
    n = 4000
    torch.manual_seed(3)
    t = sample_t_wood(torch.full((n,), kappa, dtype=torch.float64), d, fixed_rounds=True)
    e1 = np.eye(d)[0]
    ref = scipy.stats.vonmises_fisher(e1, kappa).rvs(n, random_state=4) @ e1
    assert scipy.stats.ks_2samp((1.0 - t).numpy(), ref).pvalue > 1e-3


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("d, kappa", [(2, 1e-3), (16, 1e4), (64, 1e5)])
def test_float32_samples_ks(sampler, d, kappa):
    """float32 sampling keeps the distribution of 1 - mu^T x even when it is ~1e-4."""
    n = 4000
    loc = _loc(d)
    torch.manual_seed(15)
    p = VonMisesFisher(loc.float(), torch.tensor(kappa), sampler=sampler)
    x = p.sample((n,)).double()
    ref = scipy.stats.vonmises_fisher(loc.numpy(), kappa).rvs(n, random_state=16)
    # compare t = 1 - mu^T x = |x - mu|^2 / 2, which float32 resolves near mu
    t = 0.5 * (x - loc.float().double()).pow(2).sum(-1).numpy()
    t_ref = 0.5 * ((ref - loc.numpy()) ** 2).sum(-1)
    assert scipy.stats.ks_2samp(t, t_ref).pvalue > 1e-3


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("d, kappa", SAMPLE_CASES)
def test_sample_mean_and_variance(sampler, d, kappa):
    n = 20000
    loc = _loc(d)
    torch.manual_seed(3)
    p = VonMisesFisher(loc, torch.tensor(kappa, dtype=torch.float64), sampler=sampler)
    x = p.sample((n,))
    se = (p.variance / n).sqrt()
    assert ((x.mean(0) - p.mean).abs() <= 5 * se).all()
    assert torch.allclose(p.mean, bessel_iv_ratio(d / 2, torch.tensor(kappa).double()) * loc)
    # variance of a sample variance ~ 2 var^2 / n (+ kurtosis); 10 % is > 5 SE at n = 20000
    assert torch.allclose(x.var(0), p.variance, rtol=0.1, atol=1e-12)


def _inverse_cdf_theta(u, kappa, d):
    """Reference inverse CDF of the angle by scipy quadrature and root finding."""
    from scipy.integrate import quad
    from scipy.optimize import brentq

    def dens(s):
        return math.exp(kappa * (math.cos(s) - 1.0)) * math.sin(s) ** (d - 2)

    total = quad(dens, 0, math.pi, epsabs=0, epsrel=1e-13, limit=200)[0]
    return brentq(
        lambda th: quad(dens, 0, th, epsabs=0, epsrel=1e-13, limit=200)[0] / total - u,
        0,
        math.pi,
        xtol=1e-15,
        rtol=1e-15,
    )


@pytest.mark.parametrize("d, kappa", [(2, 0.7), (5, 2.0), (10, 25.0), (64, 30.0)])
@pytest.mark.parametrize("u", [0.01, 0.3, 0.5, 0.9, 0.999])
def test_implicit_gradient_against_inverse_cdf(d, kappa, u):
    """d t / d kappa at fixed u equals a central difference of the exact inverse CDF."""
    eps = 1e-4 * kappa
    t_plus, t, t_minus = (
        1.0 - math.cos(_inverse_cdf_theta(u, k, d)) for k in (kappa + eps, kappa, kappa - eps)
    )
    fd = (t_plus - t_minus) / (2 * eps)
    got = dt_dkappa(
        torch.tensor([t], dtype=torch.float64), torch.tensor(kappa, dtype=torch.float64), d
    ).item()
    assert abs(got - fd) < 1e-6 * abs(fd) + 1e-9


# (d, kappa, n): n chosen so that 4 standard errors stay below 2% of the truth.
KAPPA_GRAD_CASES = [(5, 2.0, 12000), (3, 10.0, 40000), (64, 30.0, 5000)]


@pytest.mark.slow
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("d, kappa, n", KAPPA_GRAD_CASES)
def test_kappa_gradient_unbiased(sampler, d, kappa, n):
    """Monte Carlo mean of d(mu^T x)/d kappa over rsamples = dA_d/dkappa within 2% (and 4 SE).

    The pathwise gradient through Wood's proposal alone gives ~0.128 at (5, 2); the truth is
    0.1474.
    """
    loc = _loc(d).expand(n, d)
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(4)
    x = VonMisesFisher(loc, k, sampler=sampler).rsample()
    (grads,) = torch.autograd.grad((x * loc).sum(), k)  # per-sample d(mu^T x)/d kappa
    a = bessel_iv_ratio(d / 2, torch.tensor(kappa, dtype=torch.float64)).item()
    truth = 1 - a * a - (d - 1) * a / kappa
    est, se = grads.mean().item(), grads.std().item() / math.sqrt(n)
    assert 4 * se < 0.02 * truth  # the test can resolve 2%
    assert abs(est - truth) < 0.02 * truth
    assert abs(est - truth) < 4 * se


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("d", [3, 7])
def test_loc_gradient_fixed_noise(sampler, d):
    """Pathwise gradient in loc vs central finite differences at fixed random numbers."""
    raw = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    c = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    kappa = torch.tensor(4.0, dtype=torch.float64)

    def f(r):
        torch.manual_seed(7)
        x = VonMisesFisher(r / r.norm(), kappa, sampler=sampler).rsample((16,))
        return (torch.sin(x @ c) + x[..., 0] ** 2).sum()

    r = raw.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(r), r)
    eps = 1e-6
    fd = torch.stack(
        [(f(raw + eps * e) - f(raw - eps * e)) / (2 * eps) for e in torch.eye(d).double()]
    )
    assert torch.allclose(grad, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_loc_gradient_of_expectation():
    """E over rsamples of grad_loc (c^T x) = grad_loc of A c^T loc(raw), within 5 SE."""
    d, kappa, batches, n = 6, 3.0, 20, 1000
    raw = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    c = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(10)
    grads = []
    for _ in range(batches):
        r = raw.clone().requires_grad_(True)
        x = VonMisesFisher(r / r.norm(), torch.tensor(kappa, dtype=torch.float64)).rsample((n,))
        grads.append(torch.autograd.grad((x @ c).mean(), r)[0])
    grads = torch.stack(grads)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(batches)
    r2 = raw.clone().requires_grad_(True)
    a = bessel_iv_ratio(d / 2, torch.tensor(kappa, dtype=torch.float64))
    (expected,) = torch.autograd.grad(a * (r2 / r2.norm()) @ c, r2)
    assert ((mean - expected).abs() < 5 * se).all()


FLOAT32_DIMS = [2, 3, 16, 64, 256, 1024]
FLOAT32_KAPPAS = [1e-4, 1e-2, 1.0, 10.0, 1e2, 1e3, 1e4, 1e5]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("d", FLOAT32_DIMS)
def test_float32_finite(sampler, d):
    torch.manual_seed(11)
    raw = torch.randn(len(FLOAT32_KAPPAS), d, requires_grad=True)
    kappa = torch.tensor(FLOAT32_KAPPAS, requires_grad=True)
    loc = raw / raw.norm(dim=-1, keepdim=True)
    p = VonMisesFisher(loc, kappa, sampler=sampler)
    x = p.rsample((32,))
    assert x.dtype == torch.float32
    q = VonMisesFisher(loc.detach().flip(0), kappa.detach())
    parts = {
        "rsample": x.sum(),
        "log_prob": p.log_prob(x).sum(),
        "entropy": p.entropy().sum(),
        "kl_uniform": kl_divergence(p, HypersphericalUniform(d)).sum(),
        "kl_vmf": kl_divergence(p, q).sum(),
    }
    for name, value in parts.items():
        assert torch.isfinite(value), name
        grads = torch.autograd.grad(value, [raw, kappa], retain_graph=True, allow_unused=True)
        assert all(g is None or torch.isfinite(g).all() for g in grads), name
        assert grads[1] is not None or name == "rsample" and d == 2
    assert (p.entropy() <= log_sphere_area(d) + 1e-4).all()
    assert (kl_divergence(p, HypersphericalUniform(d)) >= 0).all()


def test_float32_matches_float64():
    d, kappas = 64, torch.tensor([1e-4, 1.0, 1e3, 1e5], dtype=torch.float64)
    loc = _loc(d)
    p64 = VonMisesFisher(loc, kappas)
    p32 = VonMisesFisher(loc.float(), kappas.float())
    x = p64.sample((3,))
    assert torch.allclose(p32.log_prob(x.float()).double(), p64.log_prob(x), rtol=1e-5, atol=1e-4)
    assert torch.allclose(p32.entropy().double(), p64.entropy(), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_goodness_of_fit(d, sampler):
    # Median p-value over seven seeds: see test_hyperspherical_uniform.test_goodness_of_fit
    # (the nearest-neighbour test is only approximately calibrated).
    p = VonMisesFisher(_loc(d), torch.tensor(2.0, dtype=torch.float64), sampler=sampler)
    pvalues = []
    for seed in range(7):
        torch.manual_seed(seed)
        x = p.sample((1500 * d,))
        pvalues.append(auto_goodness_of_fit(x, p.log_prob(x).exp(), dim=d - 1))
    assert sorted(pvalues)[3] > 1e-3


def test_shapes_and_expand():
    d = 4
    loc = _loc(d).expand(3, 1, d)
    kappa = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    p = VonMisesFisher(loc, kappa)
    assert p.batch_shape == (3, 4) and p.event_shape == (d,)
    for sampler in SAMPLERS:
        p = VonMisesFisher(loc, kappa, sampler=sampler)
        x = p.rsample((2, 5))
        assert x.shape == (2, 5, 3, 4, d)
        assert p.log_prob(x).shape == (2, 5, 3, 4)
    assert p.entropy().shape == (3, 4) and p.mean.shape == (3, 4, d)
    assert p.variance.shape == (3, 4, d)
    q = VonMisesFisher(_loc(d), torch.tensor(2.0, dtype=torch.float64)).expand((7, 2))
    assert q.batch_shape == (7, 2) and q.rsample().shape == (7, 2, d)
    assert q.sampler == "wood"
    assert torch.allclose(q.variance.sum(-1), 1 - q.mean.pow(2).sum(-1))  # trace of Cov


def test_bad_arguments():
    with pytest.raises(ValueError):
        VonMisesFisher(_loc(3), 1.0, sampler="nope")
    with pytest.raises(ValueError):
        VonMisesFisher(torch.ones(1, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError):
        VonMisesFisher(torch.ones(3), torch.tensor(1.0), validate_args=True)
    with pytest.raises(ValueError):
        VonMisesFisher(_loc(3), torch.tensor(-1.0, dtype=torch.float64), validate_args=True)


def test_loc_at_e1_and_inverse_cdf_cache():
    loc = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    p = VonMisesFisher(loc, torch.tensor(50.0, dtype=torch.float64), sampler="inverse_cdf")
    x = p.sample((1000,))
    assert torch.isfinite(x).all() and (x @ loc).mean() > 0.9
    from pyrovae.distributions import von_mises_fisher_sampling as module

    key_count = len(module._TABLE_CACHE)
    p.sample((10,))
    assert len(module._TABLE_CACHE) == key_count  # cached


def test_trace_elbo_gradient_flows():
    """The distribution works as a guide site in a Pyro ELBO and gives finite gradients."""
    d = 5
    pyro.clear_param_store()

    def model():
        with pyro.plate("data", 3):
            pyro.sample("z", HypersphericalUniform(d, dtype=torch.float64).expand([3]))

    def guide():
        raw = pyro.param("raw", torch.randn(3, d, dtype=torch.float64))
        log_k = pyro.param("log_k", torch.zeros(3, dtype=torch.float64))
        with pyro.plate("data", 3):
            pyro.sample("z", VonMisesFisher(raw / raw.norm(dim=-1, keepdim=True), log_k.exp()))

    loss = pyro.infer.Trace_ELBO().differentiable_loss(model, guide)
    loss.backward()
    store = pyro.get_param_store()
    assert all(torch.isfinite(store[n].grad).all() for n in ("raw", "log_k"))


@pytest.mark.parametrize("d, kappa", [(3, 0.05), (5, 2.0), (11, 2.0), (64, 30.0), (10, 1000.0)])
def test_kappa_derivatives_against_mpmath(d, kappa):
    """d/dkappa of log p(x) at a fixed x, of the entropy, of KL(vMF || uniform) and of log C_d
    equal mpmath's numerical derivatives of the exact values (40 digits): the normaliser's
    derivative -A_d(kappa), attached to the value computed once, is the derivative of that
    value."""
    loc = _loc(d)
    x = _loc(d, seed=1)
    cos = float(loc @ x)
    k = torch.tensor(kappa, dtype=torch.float64, requires_grad=True)
    p = VonMisesFisher(loc, k)
    q = HypersphericalUniform(d, dtype=torch.float64)
    got = [torch.autograd.grad(f, k)[0].item() for f in (p.log_prob(x), p.entropy())]
    got.append(torch.autograd.grad(kl_divergence(p, q), k)[0].item())
    got.append(torch.autograd.grad(p._log_normalizer(), k)[0].item())

    def log_p(kk):
        return _mp_log_c(d, kk) + kk * cos

    def entropy(kk):
        return -_mp_log_c(d, kk) - kk * _mp_a(d, kk)

    def kl(kk):
        return -entropy(kk) + log_sphere_area(d)

    functions = (log_p, entropy, kl, lambda kk: _mp_log_c(d, kk))
    want = [float(mpmath.diff(f, mpmath.mpf(kappa))) for f in functions]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_traced_rsample_replays_like_eager():
    """Under ``torch.jit.trace`` the vMF is recorded whole (no call back into Python): Wood's
    sampler with its data-dependent rounds, the normaliser and the kappa-gradient. Over 4096
    entries the first round draws two candidates per entry, so about a tenth need more rounds:
    a replay draws what an eager call draws with the same seed, value and gradients."""
    d, n = 11, 5000
    loc = torch.nn.functional.normalize(torch.randn(n, d, dtype=torch.float64), dim=-1)
    raw = torch.linspace(-2.0, 6.0, n, dtype=torch.float64, requires_grad=True)

    def f(raw):
        p = VonMisesFisher(loc, raw.exp() + 1.0)
        z = p.rsample()
        return (p.log_prob(z) + z[:, 0]).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings, torch.jit.trace's deprecation
        traced = torch.jit.trace(f, (raw,), check_trace=False)
    assert not [n for n in traced.graph.nodes() if n.kind() == "prim::PythonOp"]
    for seed in (1, 2):
        torch.manual_seed(seed)
        want = f(raw)
        (want_grad,) = torch.autograd.grad(want, raw)
        torch.manual_seed(seed)
        got = traced(raw)
        (got_grad,) = torch.autograd.grad(got, raw)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0.0)
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=1e-12)


KL_CASES = [(2, 0.5), (3, 5.0), (10, 20.0), (64, 100.0)]


@pytest.mark.parametrize("d, kappa", KL_CASES)
def test_kl_uniform(d, kappa):
    p = VonMisesFisher(_loc(d), torch.tensor(kappa, dtype=torch.float64))
    q = HypersphericalUniform(d, dtype=torch.float64)
    kl = kl_divergence(p, q)
    assert torch.allclose(kl, -p.entropy() + log_sphere_area(d), rtol=1e-12, atol=1e-12)
    torch.manual_seed(13)
    x = p.sample((20000,))
    diff = p.log_prob(x) - q.log_prob(x)
    se = diff.std() / math.sqrt(len(diff))
    assert (diff.mean() - kl).abs() < 5 * se + 1e-12


@pytest.mark.parametrize("d, kappa", [(3, 1e-4), (64, 1e-3), (1024, 1e-4), (1024, 3.0)])
def test_kl_uniform_small_kappa_accuracy(d, kappa):
    """No cancellation as kappa -> 0: KL ~ kappa^2 / (2d) is computed to full relative precision."""
    kl = kl_divergence(
        VonMisesFisher(_loc(d), torch.tensor(kappa, dtype=torch.float64)), HypersphericalUniform(d)
    ).item()
    ref = float(
        _mp_log_c(d, kappa)
        + kappa * _mp_a(d, kappa)
        + mpmath.log(2)
        + mpmath.mpf(d) / 2 * mpmath.log(mpmath.pi)
        - mpmath.loggamma(mpmath.mpf(d) / 2)
    )
    assert abs(kl - ref) < 1e-9 * abs(ref)


@pytest.mark.parametrize("d, kp, kq", [(3, 2.0, 5.0), (8, 10.0, 1.0), (64, 50.0, 80.0)])
def test_kl_vmf_vmf(d, kp, kq):
    p = VonMisesFisher(_loc(d, seed=1), torch.tensor(kp, dtype=torch.float64))
    q = VonMisesFisher(_loc(d, seed=2), torch.tensor(kq, dtype=torch.float64))
    kl = kl_divergence(p, q)
    torch.manual_seed(14)
    x = p.sample((20000,))
    diff = p.log_prob(x) - q.log_prob(x)
    se = diff.std() / math.sqrt(len(diff))
    assert (diff.mean() - kl).abs() < 5 * se
    assert kl_divergence(p, p).abs() < 1e-10


@pytest.mark.slow  # a fresh interpreter importing torch and pyro
def test_first_use_needs_no_large_set_up():
    """Building, sampling, scoring and differentiating a first vMF in a fresh process does not
    import sympy (``torch.broadcast_shapes`` would, ~2 s on its first call)."""
    code = (
        "import sys, torch\n"
        "from pyrovae.distributions import HypersphericalUniform, VonMisesFisher\n"
        "loc = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)\n"
        "kappa = torch.ones(5, requires_grad=True)\n"
        "p = VonMisesFisher(loc, kappa)\n"
        "z = p.rsample()\n"
        "kl = torch.distributions.kl_divergence(p, HypersphericalUniform(4))\n"
        "(p.log_prob(z).sum() + kl.sum() + p.entropy().sum()).backward()\n"
        "print('sympy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
