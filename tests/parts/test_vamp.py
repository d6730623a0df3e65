"""The VampPrior against torch's MixtureSameFamily and per-component evaluation."""

import math

import pyro
import pytest
import torch
from pyro import poutine

from pyrovae.models import VAE
from pyrovae.parts import MixtureOfPosteriors


def _vae(posterior="normal", k=4, latent_dim=3):
    torch.manual_seed(0)
    return VAE(6, latent_dim, posterior=posterior, prior={"name": "vamp", "num_pseudo_inputs": k})


def test_log_density_matches_torch_mixture_same_family():
    model = _vae()
    prior = model.prior.distribution()
    q = model.posterior(model.encoder(model.prior.pseudo_inputs))
    base = q.base_dist  # Normal with batch (K, d)
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=torch.zeros(4)),
        torch.distributions.Independent(torch.distributions.Normal(base.loc, base.scale), 1),
    )
    z = torch.randn(5, 7, 3)
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))
    # chunked evaluation gives the same numbers
    small = MixtureOfPosteriors(q)
    small.MAX_ELEMENTS = 13
    torch.testing.assert_close(small.log_prob(z), reference.log_prob(z))


def test_samples_follow_the_mixture():
    model = _vae(k=3, latent_dim=2)
    with torch.no_grad():
        prior = model.prior.distribution()
        base = model.posterior(model.encoder(model.prior.pseudo_inputs)).base_dist
        z = prior.expand((40000,)).sample()
    assert z.shape == (40000, 2)
    mean = base.loc.mean(0)
    var = (base.scale**2 + base.loc**2).mean(0) - mean**2
    se = (var / 40000).sqrt()
    assert ((z.mean(0) - mean).abs() < 4 * se).all()
    assert torch.allclose(z.var(0), var, rtol=0.05)


def test_iaf_components_are_inverted_at_every_point():
    """With an IAF posterior each q(z | u_k) is evaluated at z it did not sample."""
    model = _vae("iaf", k=3)
    with torch.no_grad():
        q = model.posterior(model.encoder(model.prior.pseudo_inputs))
        z = torch.randn(5, 3)
        per_component = []
        for k in range(3):
            qk = model.posterior(model.encoder(model.prior.pseudo_inputs[k : k + 1]))
            per_component.append(qk.log_prob(z[:, None, :]).squeeze(-1))
        expected = torch.stack(per_component, -1).logsumexp(-1) - math.log(3)
        torch.testing.assert_close(MixtureOfPosteriors(q).log_prob(z), expected)


def test_model_gradient_reaches_pseudo_inputs_and_encoder():
    model = _vae()
    x = torch.rand(8, 6).round()
    guide = poutine.trace(model.guide).get_trace(x)
    trace = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)
    trace.nodes["z"]["fn"].log_prob(trace.nodes["z"]["value"].detach()).sum().backward()
    assert model.prior.pseudo_inputs.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.encoder.parameters())
    stored = pyro.get_param_store().get_param("vae.prior$$$pseudo_inputs")
    assert stored is model.prior.pseudo_inputs


@pytest.mark.parametrize(
    "options, message",
    [
        ({"posterior": "planar"}, "posterior 'planar' can be evaluated only at its own samples"),
        ({"guide": "auto_normal"}, "guide 'auto_normal' has no encoder"),
        ({"prior": {"name": "vamp", "num_pseudo_inputs": 0}}, "num_pseudo_inputs must be"),
    ],
)
def test_vamp_refuses_what_it_cannot_support(options, message):
    with pytest.raises(ValueError, match=message):
        VAE(6, 3, **{"prior": "vamp", **options})


def test_vamp_with_a_sphere_posterior_lives_on_the_sphere():
    model = VAE(6, 3, prior="vamp", posterior="von_mises_fisher")
    assert model.prior.support is model.posterior.support
    with torch.no_grad():
        z = model.prior.distribution().expand((5,)).sample()
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5))
    assert model.sample(5).shape == (5, 6)
