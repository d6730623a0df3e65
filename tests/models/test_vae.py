import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

from pyrovae.models import VAE


def test_model_and_guide_sites_and_shapes():
    vae = VAE(64, 3, hidden=(32,))
    x = torch.rand(5, 64)
    guide = poutine.trace(vae.guide).get_trace(x)
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
    assert guide.nodes["z"]["value"].shape == (5, 3)
    assert model.nodes["x"]["is_observed"]
    assert model.nodes["x"]["fn"].event_shape == (64,)
    assert [f.name for f in model.nodes["z"]["cond_indep_stack"]] == ["data"]
    # pyro.module registered every parameter under the model's name, part by part
    names = set(pyro.get_param_store().keys())
    expected = {f"vae.{n.replace('.', '$$$', 1)}" for n, _ in vae.named_parameters()}
    assert expected == names


def test_plain_pyro_svi_trains_the_pair(digits):
    vae = VAE(64, 2, hidden=(64,))
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 3e-3}), Trace_ELBO())
    x = digits.train.x[:256]
    first = sum(svi.evaluate_loss(x) for _ in range(5)) / 5
    for _ in range(300):
        svi.step(x)
    last = sum(svi.evaluate_loss(x) for _ in range(5)) / 5
    # 300 full-batch steps reduce the negative ELBO by well over 10 nats per row
    assert (first - last) / len(x) > 10


def test_sample_encode_decode_reconstruct_shapes():
    vae = VAE(10, 2, likelihood="gaussian", hidden=(8,))
    x = torch.rand(4, 10)
    assert vae.sample(6).shape == (6, 10)
    z = vae.encode(x)
    assert z.shape == (4, 2)
    assert torch.equal(vae.decode(z), vae.reconstruct(x))
    # the reconstruction is the likelihood mean at the posterior mean
    assert torch.allclose(vae.reconstruct(x), vae.decoder(vae.encoder(x)["loc"]))


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.rand(4, 9), r"shape \(N, 10\)"),
        (torch.tensor([[float("nan")] * 10]), "NaN or inf"),
        (torch.full((3, 10), 2.0), r"needs data in \[0, 1\]"),
        (torch.ones(3, 10, dtype=torch.long), "floating-point"),
        (torch.rand(0, 10), "empty"),
    ],
    ids=["wrong-dim", "nan", "outside-01", "integers", "empty"],
)
def test_bad_data_is_refused_with_the_fix(x, message):
    with pytest.raises(ValueError, match=message):
        VAE(10, 2).check_data(x)


@pytest.mark.parametrize("latent_dim", [0, -3, 2.5, True])
def test_bad_dimensions_are_refused(latent_dim):
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        VAE(10, latent_dim)


def test_autoguide_replaces_the_encoder_and_trains_with_plain_svi(digits):
    """A non-amortised AutoNormal guide: one q(z_n) per training row, fitted by plain SVI."""
    vae = VAE(64, 2, hidden=(32,), guide="auto_normal")
    assert vae.encoder is None and vae.posterior is None
    x = digits.train.x[:64]
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    first = sum(svi.evaluate_loss(x) for _ in range(5)) / 5
    for _ in range(200):
        svi.step(x)
    last = sum(svi.evaluate_loss(x) for _ in range(5)) / 5
    assert pyro.get_param_store()["AutoNormal.locs.z"].shape == (64, 2)
    assert (first - last) / len(x) > 5
    with pytest.raises(ValueError, match="not amortised"):
        vae.encode(x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"guide": "auto_nope"}, "unknown guide 'auto_nope'"),
        ({"guide": "auto_normal", "posterior": "von_mises_fisher"}, "leave posterior"),
        ({"guide": "auto_delta", "prior": "hyperspherical_uniform"}, "needs a prior on R"),
    ],
)
def test_autoguide_refusals(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(8, 3, **kwargs)
