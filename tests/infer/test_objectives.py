"""Objectives by name: the right Pyro ELBO, the enumerated IWAE bound against a hand-written
one and against Pyro's RenyiELBO, β, histories that name their objective, CLI round trips."""

import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import yaml
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO

import pyrovae
from pyrovae import cli
from pyrovae.infer.objectives import EnumeratedRenyiELBO, make_elbo, objective_name
from pyrovae.models import VAE

SMALL = {"hidden": (16,)}


@pytest.mark.parametrize(
    "name, enumerated, cls, objective",
    [
        ("trace", False, Trace_ELBO, "elbo"),
        ("trace", True, TraceEnum_ELBO, "elbo"),
        ("meanfield", False, TraceMeanField_ELBO, "elbo"),
        ("iwae", False, RenyiELBO, "iwae_bound"),
        ("iwae", True, EnumeratedRenyiELBO, "iwae_bound"),
        ("renyi", False, RenyiELBO, "renyi_bound"),
        ("renyi", True, EnumeratedRenyiELBO, "renyi_bound"),
    ],
)
def test_objectives_by_name(name, enumerated, cls, objective):
    model = VAE(4, 2, prior="mixture" if enumerated else "normal")
    elbo = make_elbo(name, model, num_particles=5)
    assert type(elbo) is cls and elbo.num_particles == 5
    assert objective_name(elbo) == objective
    if name in ("iwae", "renyi"):
        assert elbo.alpha == (0.0 if name == "iwae" else 0.5)


def _mixture_vae():
    torch.manual_seed(0)
    return VAE(6, 2, prior={"name": "mixture", "num_components": 3}, hidden=(8,))


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_enumerated_bound_sums_the_component_out_exactly(alpha):
    """The bound equals the one written by hand: log w = log Σ_c π_c N(z; μ_c, σ_c²)
    + log p(x | z) − log q(z | x), at the z the guide drew."""
    model = _mixture_vae()
    x = torch.rand(5, 6).round()
    guide = poutine.trace(model.guide)
    elbo = EnumeratedRenyiELBO(alpha=alpha, num_particles=4)
    loss = elbo.differentiable_loss(model.model, guide, x)
    z = guide.trace.nodes["z"]["value"]  # (4, 5, 2)
    prior = model.prior
    with torch.no_grad():
        log_prior = (prior.weights.log() + prior.components().log_prob(z[..., None, :])).logsumexp(
            -1
        )
        log_lik = dist.Bernoulli(logits=model.decoder(z)).log_prob(x).sum(-1)
        log_q = model.posterior(model.encoder(x)).log_prob(z)
        log_w = log_prior + log_lik - log_q
        if alpha == 0:
            bound = log_w.logsumexp(0) - math.log(4)
        else:
            bound = (((1 - alpha) * log_w).logsumexp(0) - math.log(4)) / (1 - alpha)
    torch.testing.assert_close(-loss.detach(), bound.sum())
    loss.backward()
    assert model.prior.locs.grad.abs().sum() > 0 and all(
        p.grad is not None for p in model.encoder.parameters()
    )


def test_enumerated_bound_agrees_with_pyros_renyi_elbo_without_enumeration():
    """On a model with nothing to enumerate both estimate the same expectation."""
    torch.manual_seed(0)
    model = VAE(6, 2, hidden=(8,))
    x = torch.rand(10, 6).round()
    ours, pyros = EnumeratedRenyiELBO(0.0, 5), RenyiELBO(0.0, 5, vectorize_particles=True)
    with torch.no_grad():
        a = torch.tensor([ours.loss(model.model, model.guide, x) for _ in range(300)])
        b = torch.tensor([pyros.loss(model.model, model.guide, x) for _ in range(300)])
    se = math.sqrt((a.var() + b.var()).item() / 300)
    assert abs(a.mean() - b.mean()).item() < 4 * se


def test_iwae_bound_lies_between_the_elbo_and_the_log_likelihood(digits):
    """E[ELBO] ≤ E[IWAE_5] ≤ log p(x) (Burda et al. 2016, Theorem 1), on a trained model."""
    model = VAE(64, 2, prior="mixture", hidden=(32,))
    pyrovae.fit(model, digits, epochs=3, batch_size=100, progress=False)
    x = digits.test.x[:100]
    pyro.set_rng_seed(1)
    enum = TraceEnum_ELBO(max_plate_nesting=1, num_particles=200, vectorize_particles=True)
    iwae = EnumeratedRenyiELBO(0.0, 5)
    with torch.no_grad():
        elbo = -enum.loss(model.model, model.guide, x)
        bound = -sum(iwae.loss(model.model, model.guide, x) for _ in range(40)) / 40
    ll = pyrovae.evaluate(model, x, num_samples=2000)["log_likelihood"] * len(x)
    assert elbo < bound < ll


def test_fit_records_the_objective_by_name_and_applies_a_constant_beta(digits):
    model = VAE(64, 2, prior="mixture", **SMALL)
    history = pyrovae.fit(
        model, digits, epochs=2, elbo="iwae", num_particles=3, beta=0.5, progress=False
    )
    assert len(history["train_iwae_bound"]) == 2 and history["train_elbo"] == [None, None]
    assert history["beta"] == [0.5, 0.5]
    assert all(v is not None for v in history["valid_elbo"])


def test_constant_beta_scales_the_kl_term():
    """With β the Trace_ELBO loss is −E[log p(x|z)] + β KL: three values of β on the same
    draws lie on a line."""
    from pyrovae.infer.train import scale_latents

    model = VAE(6, 2, hidden=(8,))
    x = torch.rand(4, 6).round()
    losses = []
    for beta in (0.0, 0.5, 1.0):
        pyro.set_rng_seed(3)
        model_fn, guide_fn = scale_latents(model.model, beta), scale_latents(model.guide, beta)
        losses.append(Trace_ELBO().loss(model_fn, guide_fn, x))
    assert losses[1] == pytest.approx((losses[0] + losses[2]) / 2, rel=1e-5)
    assert losses[0] < losses[2]


@pytest.mark.slow
def test_cli_trains_conv_iaf_vamp_continuous_bernoulli_with_iwae_and_evaluates(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--quiet",
            "--dataset",
            "digits",
            "--encoder",
            "{name: conv, channels: [8, 16]}",
            "--decoder",
            "{name: conv, channels: [8, 16]}",
            "--hidden",
            "32",
            "--posterior",
            "iaf",
            "--prior",
            "{name: vamp, num_pseudo_inputs: 10}",
            "--likelihood",
            "continuous_bernoulli",
            "--elbo",
            "iwae",
            "--num-particles",
            "3",
            "--epochs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["train_iwae_bound"]) == 1 and metrics["train_elbo"] == [None]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["elbo"] == "iwae" and config["num_particles"] == 3
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--num-samples", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert math.isfinite(result["log_likelihood"]) and result["log_likelihood"] >= result["elbo"]
    assert cli.main(["sample", str(out), "-n", "4", "-o", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert (out / "samples.png").exists() and (out / "reconstructions.png").exists()


def test_config_file_sets_the_objective(tmp_path):
    (tmp_path / "c.yaml").write_text("elbo: renyi\nalpha: 0.25\nbeta: 2\nnum_particles: 2\n")
    config = pyrovae.runs.config.resolve(pyrovae.runs.config.read_file(tmp_path / "c.yaml"))
    assert (config["elbo"], config["alpha"], config["beta"]) == ("renyi", 0.25, 2)
