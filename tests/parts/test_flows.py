"""Flow posteriors: densities by the change of variables, batch shapes, evaluation."""

import pytest
import torch
from torch import nn

import pyrovae
from pyrovae.models import VAE
from pyrovae.parts import posteriors

FLOWS = ["iaf", "planar"]


def _posterior(name, latent_dim=3, rows=4, **options):
    torch.manual_seed(0)
    part = posteriors.build({"name": name, **options}, latent_dim=latent_dim).double()
    dims = part.param_dims.items()
    params = {k: torch.randn(rows, size, dtype=torch.float64) for k, size in dims}
    return part, part(params)


@pytest.mark.parametrize("name", FLOWS)
def test_log_density_is_the_change_of_variables(name):
    """log q(z_T) = log N(z_0; μ, σ²) − log |det ∂z_T/∂z_0|, the Jacobian from autograd."""
    part, q = _posterior(name, num_flows=3)
    z0 = q.base_dist.sample()
    z = z0
    for t in q.transforms:
        z = t(z)
    for n in range(z0.shape[0]):

        def flow(v, n=n):
            out = v[None].expand(z0.shape).clone()
            for t in q.transforms:
                out = t(out)
            return out[n]

        jac = torch.autograd.functional.jacobian(flow, z0[n])
        expected = q.base_dist.log_prob(z0)[n] - torch.linalg.slogdet(jac)[1]
        # recompute the forward pass so that q's cache holds (z0, z) again
        z_again = z0
        for t in q.transforms:
            z_again = t(z_again)
        torch.testing.assert_close(q.log_prob(z_again)[n], expected)


def test_iaf_density_at_points_it_did_not_sample():
    """The IAF is inverted (not looked up in the cache): log q at a fresh copy of a sample
    equals log q at the sample itself."""
    part, q = _posterior("iaf", latent_dim=5, num_flows=2)
    z = q.rsample()
    fresh = z.detach().clone()
    torch.testing.assert_close(q.log_prob(fresh), q.log_prob(z))
    assert part.invertible and not posteriors["planar"].invertible


@pytest.mark.parametrize("name", FLOWS)
def test_flow_takes_leading_batch_shapes(name):
    part, q = _posterior(name)
    z = q.expand((7, 4)).rsample()
    assert z.shape == (7, 4, 3)
    lp = q.expand((7, 4)).log_prob(z)
    assert lp.shape == (7, 4) and torch.isfinite(lp).all()


@pytest.mark.parametrize("name", FLOWS)
def test_mode_is_the_flow_of_the_base_mean(name):
    part, q = _posterior(name)
    z = q.base_dist.mean
    for t in q.transforms:
        z = t(z)
    torch.testing.assert_close(q.mode, z)
    assert not torch.allclose(q.mode, q.base_dist.mean)  # the flow moved it


@pytest.mark.parametrize("name", FLOWS)
def test_evaluate_reaches_the_exact_marginal_of_a_linear_gaussian_model(name):
    """z ~ N(0, I_2), x | z ~ N(Wz + b, s² I_3): log p(x) = log N(x; b, WWᵀ + s² I) exactly;
    importance sampling with a (briefly trained) flow posterior converges to it."""
    torch.manual_seed(1)
    model = VAE(3, 2, posterior=name, likelihood={"name": "gaussian", "scale": 0.7})
    model.decoder = nn.Linear(2, 3)
    x = torch.randn(40, 2) @ torch.randn(2, 3) + 0.7 * torch.randn(40, 3)
    pyrovae.fit(model, x, epochs=60, batch_size=40, lr=2e-2, progress=False)
    with torch.no_grad():
        w, b = model.decoder.weight, model.decoder.bias
        marginal = torch.distributions.MultivariateNormal(b, w @ w.T + 0.49 * torch.eye(3))
        exact = marginal.log_prob(x).mean().item()
    result = pyrovae.evaluate(model, x, num_samples=2000, batch_size=40)
    assert result["log_likelihood"] == pytest.approx(exact, abs=0.03)
    assert result["elbo"] < result["log_likelihood"] - 0.01
    assert model.encode(x).shape == (40, 2) and model.reconstruct(x).shape == (40, 3)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "iaf", "num_flows": 0}, "num_flows must be a positive integer"),
        ({"name": "iaf", "hidden": [2]}, r"hidden sizes must be >= latent_dim \(4\)"),
        ({"name": "planar", "context_dim": 1.5}, "context_dim must be a positive integer"),
    ],
)
def test_flow_options_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        VAE(6, 4, posterior=spec)
