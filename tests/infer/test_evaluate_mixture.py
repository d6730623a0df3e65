"""evaluate() on models with enumerated sites: exact for the GMM, exact sum over c for the VAE."""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

import pyrovae
from pyrovae.data import from_arrays
from pyrovae.infer.clustering import clustering_scores
from pyrovae.infer.evaluation import log_weights
from pyrovae.models import VAE, GaussianMixture


def random_gmm(covariance, k=3, d=2):
    torch.manual_seed(1)
    model = GaussianMixture(k, d, covariance).double()
    with torch.no_grad():
        model.logits.normal_()
        model.log_scales.normal_(0, 0.3)
        if covariance == "full":
            model.unit_tril.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_gmm_log_likelihood_is_exact_logsumexp(covariance):
    """No latent in the guide: every importance weight is p(x) itself, so log p̂(x) and the
    ELBO both equal log Σ_k π_k N(x; μ_k, Σ_k) (reference: scipy)."""
    model = random_gmm(covariance)
    x = torch.randn(50, 2, dtype=torch.float64) * 2
    result = pyrovae.evaluate(model, x, num_samples=7, batch_size=20)
    w, mu = model.weights.detach().numpy(), model.locs.detach().numpy()
    cov = (model.scale_tril @ model.scale_tril.mT).detach().numpy()
    exact = logsumexp(
        [np.log(w[k]) + multivariate_normal(mu[k], cov[k]).logpdf(x.numpy()) for k in range(3)],
        axis=0,
    ).mean()
    assert result["log_likelihood"] == pytest.approx(exact, rel=1e-10)
    assert result["elbo"] == pytest.approx(exact, rel=1e-10)


def test_mixture_vae_weights_sum_the_component_out():
    """log w = log p(x|z) + log Σ_k π_k N(z; μ_k, σ_k²) − log q(z|x) for the guide's own draws
    (same seed, same draws), against scipy."""
    torch.manual_seed(0)
    vae = VAE(6, 2, prior={"name": "mixture", "num_components": 3}, hidden=(8,)).double()
    x = torch.rand(4, 6, dtype=torch.float64).round()
    torch.manual_seed(5)
    with torch.no_grad():
        lw = log_weights(vae, x, 3)
    torch.manual_seed(5)
    with torch.no_grad():
        q = vae.posterior(vae.encoder(x))
        z = q.expand([3, 4]).sample()
        w = vae.prior.weights.detach().numpy()
        mu, sigma = vae.prior.locs.detach().numpy(), vae.prior.log_scales.exp().detach().numpy()
        log_pz = logsumexp(
            [np.log(w[k]) + norm(mu[k], sigma[k]).logpdf(z.numpy()).sum(-1) for k in range(3)],
            axis=0,
        )
        expected = (
            vae.likelihood(vae.decoder(z)).log_prob(x).numpy() + log_pz - q.log_prob(z).numpy()
        )
    assert lw.shape == (3, 4)
    assert lw.numpy() == pytest.approx(expected, rel=1e-10)


def test_evaluate_adds_clustering_scores_with_labels():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    y = torch.arange(300) % 3
    data = from_arrays(centres[y] + torch.randn(300, 2), y)
    model = GaussianMixture(3, 2)
    pyrovae.fit(model, data, epochs=100, batch_size=256, lr=0.05, progress=False)
    result = pyrovae.evaluate(model, data, num_samples=2)
    assert {k: result[k] for k in ("accuracy", "nmi")} == pytest.approx(
        clustering_scores(model.assign(data.test.x), data.test.y)
    )
    assert result["accuracy"] > 0.95
    assert "accuracy" not in pyrovae.evaluate(model, data.test.x, num_samples=2)
    assert "accuracy" not in pyrovae.evaluate(VAE(2, 2, likelihood="gaussian"), data, 2)
