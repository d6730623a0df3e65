"""The step of ``fit`` (``pyrovae.infer.step``) computes what Pyro's own ELBO module computes.

The step answers ``pyro.module``'s param messages itself and runs ``Trace_ELBO`` as
``FastTrace_ELBO``; with the same random numbers its loss and gradients must equal those of
``elbo(model, guide)`` (Pyro's ``ELBOModule``) on the same batch, for every kind of model.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from capture import Capture

from pyrovae.infer.elbo import FastTrace_ELBO
from pyrovae.infer.step import adam, make_step, named_parameters, trainable_parameters
from pyrovae.infer.train import default_elbo
from pyrovae.models import VAE, MixtureOfLinearDecoders

SMALL = {"hidden": (16,)}
MODELS = {
    "gaussian-vae": lambda: VAE(64, 3, **SMALL),
    "svae": lambda: VAE(
        64, 4, prior="hyperspherical_uniform", posterior="von_mises_fisher", **SMALL
    ),
    "mixture-prior": lambda: VAE(64, 3, prior={"name": "mixture", "num_components": 3}, **SMALL),
    "llgae": lambda: MixtureOfLinearDecoders(3, 64, 2),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_step_gives_pyros_loss_and_gradients(name, digits):
    model = MODELS[name]().double()
    x = digits.train.x[:20].double()
    elbo = default_elbo(model)
    params = trainable_parameters(model, elbo, model.model, model.guide, x[:2])
    step = make_step(elbo, model, model.model, model.guide, named_parameters(model, params))
    capture = Capture(params)
    torch.manual_seed(1)
    loss = step(x, len(x), capture, (1, 1))

    reference = elbo(model.model, model.guide)  # Pyro's ELBOModule, no shortcut
    torch.manual_seed(1)
    expected = reference(x)
    grads = torch.autograd.grad(expected / len(x), params, allow_unused=True)
    assert loss == pytest.approx(expected.item(), rel=1e-10)
    for got, want, (n, _) in zip(
        capture.grads, grads, named_parameters(model, params), strict=True
    ):
        want = torch.zeros_like(got) if want is None else want
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, msg=n)


def test_fast_trace_elbo_matches_trace_elbo_with_a_score_function_site():
    """A guide with a non-reparameterised site takes Trace_ELBO's surrogate: same gradient."""
    p = pyro.param("p", torch.tensor(0.3), constraint=dist.constraints.unit_interval)
    loc = pyro.param("loc", torch.tensor(0.5))

    def model(x):
        b = pyro.sample("b", dist.Bernoulli(0.5))
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(z + b, 1.0), obs=x)

    def guide(x):
        pyro.sample("b", dist.Bernoulli(pyro.param("p")))
        pyro.sample("z", dist.Normal(pyro.param("loc"), 1.0))

    x = torch.tensor([0.2, 1.4, -0.3])
    results = []
    for elbo in (pyro.infer.Trace_ELBO(), FastTrace_ELBO()):
        torch.manual_seed(3)
        loss = elbo.differentiable_loss(model, guide, x)
        grads = torch.autograd.grad(loss, [p.unconstrained(), loc])
        results.append((loss.item(), grads))
    (loss, grads), (fast_loss, fast_grads) = results
    assert fast_loss == pytest.approx(loss, rel=1e-6)
    for a, b in zip(grads, fast_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_param_sites_are_still_found_by_renyi_and_jit_elbos(digits):
    """ELBOs that read param sites keep them: the step trains an AutoGuide's pyro.params."""
    x = digits.train.x[:16]
    vae = VAE(64, 2, **SMALL)
    for elbo in (
        pyro.infer.RenyiELBO(alpha=0.5, num_particles=2),
        pyro.infer.JitTrace_ELBO(),
        pyro.infer.TraceMeanField_ELBO(),
    ):
        pyro.clear_param_store()
        guide = pyro.infer.autoguide.AutoNormal(vae.model)
        params = trainable_parameters(vae, elbo, vae.model, guide, x)
        named = named_parameters(vae, params)
        assert any(n.startswith("AutoNormal") for n, _ in named)
        step = make_step(elbo, vae, vae.model, guide, named)
        auto = [(n, p) for n, p in named if n.startswith("AutoNormal")]
        before = [p.detach().clone() for _, p in auto]
        step(x, len(x), adam(params, 1e-2), (1, 1))
        for (n, p), old in zip(auto, before, strict=True):
            assert not torch.equal(p, old), f"{type(elbo).__name__} left {n} unchanged"
