"""The hyperspherical VAE assembled from parts: vMF posterior, hyperspherical-uniform prior."""

import pyro
import pytest
import torch
from pyro import poutine
from torch.distributions import kl_divergence

import pyrovae
from pyrovae.distributions import HypersphericalUniform, VonMisesFisher
from pyrovae.models import VAE

SPHERE = {"prior": "hyperspherical_uniform", "posterior": "von_mises_fisher"}


def test_latents_live_on_the_sphere():
    vae = VAE(64, 5, hidden=(32,), **SPHERE)
    x = torch.rand(7, 64).round()
    trace = poutine.trace(vae.guide).get_trace(x)
    z = trace.nodes["z"]["value"]
    assert z.shape == (7, 5)
    assert torch.allclose(z.norm(dim=-1), torch.ones(7), atol=1e-5)
    assert vae.sample(4).shape == (4, 64)
    assert torch.allclose(vae.encode(x).norm(dim=-1), torch.ones(7), atol=1e-5)


def test_fixed_concentration_gives_a_constant_kl():
    vae = VAE(
        64,
        5,
        hidden=(32,),
        prior="hyperspherical_uniform",
        posterior={"name": "von_mises_fisher", "concentration": 12.0},
    )
    assert "concentration" not in vae.encoder.heads
    q = vae.posterior(vae.encoder(torch.rand(9, 64)))
    kl = kl_divergence(q, HypersphericalUniform(5))
    assert torch.allclose(kl, kl[0].expand(9))
    reference = kl_divergence(
        VonMisesFisher(torch.eye(5)[:1], torch.tensor([12.0])), HypersphericalUniform(5)
    )
    assert torch.allclose(kl[0], reference[0])


def test_learned_concentration_is_at_least_the_minimum():
    vae = VAE(
        64,
        3,
        hidden=(32,),
        prior="hyperspherical_uniform",
        posterior={"name": "von_mises_fisher", "min_concentration": 2.0},
    )
    q = vae.posterior(vae.encoder(torch.randn(20, 64) * 50))
    assert (q.concentration >= 2.0).all()


@pytest.mark.parametrize(
    "posterior, message",
    [
        ({"name": "von_mises_fisher", "concentration": -1}, "positive number or 'learned'"),
        ({"name": "von_mises_fisher", "sampler": "magic"}, "sampler must be one of"),
    ],
)
def test_bad_vmf_options_are_refused(posterior, message):
    with pytest.raises(ValueError, match=message):
        VAE(64, 3, prior="hyperspherical_uniform", posterior=posterior)


def test_hyperspherical_prior_with_normal_posterior_is_refused():
    with pytest.raises(ValueError, match="lives on the sphere but posterior 'normal' on R"):
        VAE(64, 3, prior="hyperspherical_uniform")


def test_svae_trains_on_digits_with_analytic_kl(digits):
    vae = VAE(64, 3, hidden=(64,), **SPHERE)
    history = pyrovae.fit(
        vae,
        digits,
        epochs=8,
        batch_size=64,
        score_test="epoch",
        progress=False,
        elbo=pyro.infer.TraceMeanField_ELBO(),
    )
    # measured: about -38 after one epoch and -28 after eight
    assert history["test_elbo"][-1] - history["test_elbo"][0] > 5


def test_sphere_dim_counts_like_davidson():
    """sphere_dim=d is S^d ⊂ R^(d+1): the vMF lives in R^(d+1) and samples unit vectors there."""
    from pyrovae import VAE

    vae = VAE(64, sphere_dim=2, prior="hyperspherical_uniform", posterior="von_mises_fisher")
    assert vae.latent_dim == 3
    z = vae.posterior(vae.encoder(torch.rand(5, 64))).rsample()
    assert z.shape == (5, 3)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sphere_dim": 2}, "lives on R\\^d"),
        ({"sphere_dim": 2, "latent_dim": 2, "prior": "hyperspherical_uniform"}, "give only one"),
        ({"sphere_dim": 0, "prior": "hyperspherical_uniform"}, "sphere_dim must be"),
        ({}, "give latent_dim"),
    ],
)
def test_sphere_dim_refusals(kwargs, match):
    from pyrovae import VAE

    kwargs.setdefault("posterior", "von_mises_fisher")
    with pytest.raises(ValueError, match=match):
        VAE(64, **kwargs)


def test_sphere_dim_from_config():
    from pyrovae.runs import config

    resolved = config.resolve(
        {"sphere_dim": 4, "prior": "hyperspherical_uniform", "posterior": "von_mises_fisher"}
    )
    assert config.build_model(resolved, 64).latent_dim == 5
