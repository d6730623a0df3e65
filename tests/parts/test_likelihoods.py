"""Likelihoods against closed forms, SciPy and maximum-likelihood estimates."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from pyrovae.models import VAE
from pyrovae.parts import likelihoods


@pytest.mark.parametrize("logit", [-3.0, -0.4, 0.0, 1e-4, 2.5])
def test_continuous_bernoulli_is_the_normalised_density(logit):
    """log CB(x; λ) = log C(λ) + x log λ + (1 − x) log(1 − λ), C(λ) from numerical
    integration of λ^x (1 − λ)^(1 − x) over [0, 1]."""
    lam = 1 / (1 + math.exp(-logit))
    kernel = lambda x: lam**x * (1 - lam) ** (1 - x)  # noqa: E731
    norm = 1 / integrate.quad(kernel, 0, 1)[0]
    x = torch.tensor([[0.0, 0.13, 0.5, 0.87, 1.0]], dtype=torch.float64)
    part = likelihoods.build("continuous_bernoulli", input_dim=5)
    got = part(torch.full((1, 5), logit, dtype=torch.float64)).log_prob(x)
    expected = sum(math.log(norm * kernel(v)) for v in x[0].tolist())
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    mean = integrate.quad(lambda v: v * norm * kernel(v), 0, 1)[0]
    recon = part(torch.full((1, 5), logit, dtype=torch.float64)).mean
    torch.testing.assert_close(recon, torch.full_like(recon, mean), rtol=1e-5, atol=1e-6)


def test_laplace_matches_scipy():
    part = likelihoods.build({"name": "laplace", "scale": 0.3}, input_dim=4)
    loc, x = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    expected = stats.laplace.logpdf(x.numpy(), loc.numpy(), 0.3).sum(-1)
    np.testing.assert_allclose(part(loc).log_prob(x).numpy(), expected, rtol=1e-6)  # σ: float32


@pytest.mark.parametrize(
    "name, mle",
    [
        ("gaussian", lambda x: x.pow(2).mean(0).sqrt()),  # σ̂_i = sqrt(mean x_i²)
        ("laplace", lambda x: x.abs().mean(0)),  # b̂_i = mean |x_i|
    ],
)
def test_per_pixel_scale_reaches_the_maximum_likelihood_estimate(name, mle):
    torch.manual_seed(0)
    true = torch.tensor([0.05, 0.2, 1.0, 3.0])
    x = torch.randn(1000, 4) * true
    part = likelihoods.build({"name": name, "per_pixel": True, "init_scale": 0.5}, input_dim=4)
    assert part.scale.shape == (4,)
    optimizer = torch.optim.Adam(part.parameters(), lr=0.1)
    for _ in range(1000):
        optimizer.zero_grad()
        loss = -part(torch.zeros(4)).log_prob(x).mean()
        loss.backward()
        optimizer.step()
    torch.testing.assert_close(part.scale.detach(), mle(x), rtol=1e-2, atol=1e-3)


def test_shared_scale_is_one_number():
    part = likelihoods.build("gaussian", input_dim=4)
    assert part.scale.shape == ()
    assert part(torch.zeros(2, 4)).event_shape == (4,)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "gaussian", "scale": 0.1, "per_pixel": True}, "needs scale='learned'"),
        ({"name": "laplace", "scale": -1}, "scale must be a positive number or 'learned'"),
    ],
)
def test_scale_options_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        likelihoods.build(spec, input_dim=3)


def test_continuous_bernoulli_refuses_data_outside_the_unit_interval():
    model = VAE(3, 2, likelihood="continuous_bernoulli")
    with pytest.raises(ValueError, match=r"continuous Bernoulli likelihood needs data in \[0, 1\]"):
        model.check_data(torch.tensor([[0.0, 0.5, 1.5]]))
