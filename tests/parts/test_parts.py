import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints

from pyrovae.models import VAE
from pyrovae.parts import (
    GaussianLikelihood,
    NormalPosterior,
    NormalPrior,
    likelihoods,
    mlp,
    posteriors,
    priors,
)


@pytest.mark.parametrize(
    "spec",
    ["gaussian", {"name": "gaussian"}, {"name": "gaussian", "scale": 0.5}],
    ids=["name", "dict", "dict-options"],
)
def test_part_by_name_or_dict(spec):
    part = likelihoods.build(spec, input_dim=3)
    assert isinstance(part, GaussianLikelihood)
    assert part.output_dim == 3


def test_part_as_object_is_used_as_is():
    prior = NormalPrior(latent_dim=4)
    assert priors.build(prior, latent_dim=99) is prior


@pytest.mark.parametrize(
    "registry, spec, message",
    [
        (priors, "nrmal", "known priors: hyperspherical_uniform, mixture, normal"),
        (likelihoods, {"name": "gaussian", "scal": 1.0}, "valid options: scale, init_scale"),
        (posteriors, {"scale": 1.0}, "needs a 'name' key"),
    ],
)
def test_unknown_name_or_option_lists_the_known_ones(registry, spec, message):
    with pytest.raises(ValueError, match=message):
        registry.build(spec, input_dim=3, latent_dim=2)


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(ValueError, match="known activations: relu, tanh"):
        mlp([3, 4, 5], activation="swish2")


@pytest.mark.parametrize("scale", [0, -1.0, "big", True])
def test_gaussian_likelihood_refuses_bad_scales(scale):
    with pytest.raises(ValueError, match="scale must be a positive number or 'learned'"):
        GaussianLikelihood(3, scale=scale)


def test_gaussian_likelihood_learned_scale_starts_at_init_and_is_a_parameter():
    lik = GaussianLikelihood(3, scale="learned", init_scale=0.3)
    assert torch.allclose(lik.scale, torch.tensor(0.3))
    assert len(list(lik.parameters())) == 1
    fixed = GaussianLikelihood(3, scale=0.3)
    assert len(list(fixed.parameters())) == 0
    x = torch.randn(5, 3)
    expected = torch.distributions.Normal(torch.zeros(3), 0.3).log_prob(x).sum(-1)
    assert torch.allclose(fixed(torch.zeros(5, 3)).log_prob(x), expected)


def test_normal_posterior_scale_is_positive_and_shapes_are_batch_event():
    q = NormalPosterior(latent_dim=2)
    d = q({"loc": torch.zeros(7, 2), "scale": torch.full((7, 2), -50.0)})
    assert d.batch_shape == (7,) and d.event_shape == (2,)
    assert (d.base_dist.scale > 0).all()


class _SpherePrior(NormalPrior):
    support = constraints.sphere


def test_prior_and_posterior_on_different_spaces_are_refused():
    with pytest.raises(ValueError, match="lives on the sphere but posterior 'normal'"):
        VAE(4, 3, prior=_SpherePrior(3))


def test_bernoulli_likelihood_is_product_of_bernoullis():
    lik = likelihoods.build("bernoulli", input_dim=4)
    logits = torch.randn(6, 4)
    x = torch.bernoulli(torch.full((6, 4), 0.5))
    expected = dist.Bernoulli(logits=logits).log_prob(x).sum(-1)
    assert torch.allclose(lik(logits).log_prob(x), expected)
