"""Generation without data: ``model(x=None, batch_size=B)`` samples x, as Pyro's Predictive
expects, for every model type."""

import pytest
import torch
from pyro.infer import Predictive

import pyrovae
from pyrovae.models import GaussianMixture, MixtureOfLinearDecoders

MODELS = {
    "vae": lambda: pyrovae.VAE(12, 2, hidden=(8,)),
    "svae": lambda: pyrovae.VAE(
        12, 3, prior="hyperspherical_uniform", posterior="von_mises_fisher", hidden=(8,)
    ),
    "mixture_vae": lambda: pyrovae.VAE(12, 2, prior="mixture", hidden=(8,)),
    "gmm": lambda: GaussianMixture(3, 12),
    "llgae": lambda: MixtureOfLinearDecoders(3, 12, 2),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predictive_draws_data_without_x(name):
    model = MODELS[name]()
    assert Predictive(model.model, num_samples=4)()["x"].shape == (4, 1, 12)
    draws = Predictive(model.model, num_samples=3)(batch_size=5)
    assert draws["x"].shape == (3, 5, 12)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.model(batch_size=0)


def test_predictive_x_follows_the_likelihood_of_the_drawn_z():
    """x | z ~ Bernoulli(decoder(z)): over many draws the mean of x matches the mean of the
    decoder's probabilities at the drawn z (binomial standard error)."""
    vae = MODELS["vae"]()
    draws = Predictive(vae.model, num_samples=1)(batch_size=20_000)
    z, x = draws["z"][0], draws["x"][0]
    probs = vae.likelihood(vae.decoder(z)).mean.detach()
    assert (z.mean(0).abs() < 0.05).all() and ((z.var(0) - 1).abs() < 0.05).all()
    err = (x.mean(0) - probs.mean(0)).abs()
    assert (err < 5 * (0.25 / 20_000) ** 0.5).all()


def test_gmm_draws_have_the_mixture_mean_and_covariance():
    gmm = GaussianMixture(2, 2)
    with torch.no_grad():
        gmm.logits.copy_(torch.tensor([0.3, 0.7]).log())
        gmm.locs.copy_(torch.tensor([[-2.0, 0.0], [3.0, 1.0]]))
        gmm.log_scales.copy_(torch.tensor([[0.0, -1.0], [-0.5, 0.0]]))
    x = Predictive(gmm.model, num_samples=1)(batch_size=40_000)["x"][0]
    pi, mu, var = gmm.weights.detach(), gmm.locs.detach(), gmm.log_scales.detach().exp() ** 2
    mean = pi @ mu
    second = pi @ (var + mu**2)  # E[x²] of the mixture, per coordinate
    assert torch.allclose(x.mean(0), mean, atol=0.05)
    assert torch.allclose(x.pow(2).mean(0), second, atol=0.15)


def test_predictive_with_the_guide_on_data_keeps_working():
    vae = MODELS["vae"]()
    x = torch.rand(7, 12).bernoulli()
    draws = Predictive(vae.model, guide=vae.guide, num_samples=3)(x)
    assert draws["z"].shape == (3, 7, 2) and draws["x"].shape == (3, 7, 12)
