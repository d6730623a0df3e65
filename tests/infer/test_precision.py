"""Mixed precision (``precision="bf16"``/``"16"``): autocast on the networks, the delicate parts
wide, and the options refused where they cannot work."""

import pyro
import pytest
import torch

import pyrovae
from pyrovae.distributions import VonMisesFisher
from pyrovae.infer.objectives import make_elbo
from pyrovae.infer.step import adam, make_step, named_parameters, trainable_parameters
from pyrovae.ops.special import log_bessel_iv_and_ratio

SPHERE = {"prior": "hyperspherical_uniform", "posterior": "von_mises_fisher"}


def _first_step(precision, x, **parts):
    """Loss and gradients of one step of a freshly seeded VAE at ``precision``."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    vae = pyrovae.VAE(64, 5, hidden=(32,), name="p", **parts)
    elbo = make_elbo("trace", vae)
    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    step = make_step(
        elbo, vae, vae.model, vae.guide, named_parameters(vae, params), precision=precision
    )
    optimizer = torch.optim.SGD(params, lr=0.0)
    torch.manual_seed(1)
    with pyro.validation_enabled(False):
        loss = step(x, len(x), optimizer, (1, 1))
    return loss, torch.cat([p.grad.flatten() for p in params])


@pytest.mark.parametrize("parts", [{}, SPHERE], ids=["vae", "svae"])
def test_bf16_step_is_close_to_float32(parts, digits):
    """bf16 networks: the loss within 0.5 % of float32's and the gradient pointing the same way
    (cosine > 0.99), with the same parameters and noise; the loss comes back as a float."""
    x = digits.train.x[:100]
    loss32, grad32 = _first_step("32", x, **parts)
    loss16, grad16 = _first_step("bf16", x, **parts)
    assert isinstance(loss16, float)
    assert loss16 == pytest.approx(loss32, rel=5e-3)
    assert loss16 != loss32  # bf16 did run
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.99


def test_delicate_parts_stay_wide_under_autocast():
    """The Bessel pass and the vMF's density are the same numbers with autocast on."""
    kappa = torch.logspace(-3, 5, 50, dtype=torch.float64)
    loc = torch.nn.functional.normalize(torch.randn(50, 11), dim=-1)
    p = VonMisesFisher(loc, kappa.float())
    x = p.sample()
    plain = (*log_bessel_iv_and_ratio(4.5, kappa), p.log_prob(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = VonMisesFisher(loc, kappa.float())
        cast = (*log_bessel_iv_and_ratio(4.5, kappa), q.log_prob(x))
    for a, b in zip(plain, cast, strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_float16_with_a_gradient_scaler_trains(digits):
    """precision "16": the scaled loss trains (finite, lower after 3 epochs); steps whose
    gradients overflow are skipped, not reported as a numerical failure."""
    torch.manual_seed(0)
    vae = pyrovae.VAE(64, 5, hidden=(32,))
    history = pyrovae.fit(vae, digits, epochs=3, batch_size=100, precision="16", progress=False)
    elbos = history["train_elbo"]
    assert all(map(torch.isfinite, torch.tensor(elbos)))
    assert elbos[-1] > elbos[0]


def test_jit_with_bf16_matches_eager_bf16(digits):
    """The traced step under autocast records the casts: the losses of the eager bf16 step over
    two epochs, within bf16 rounding (the trace orders some casts differently: 1.4e-4
    relative here)."""
    results = []
    for jit in (False, True):
        torch.manual_seed(0)
        vae = pyrovae.VAE(64, 5, hidden=(32,))
        results.append(
            pyrovae.fit(
                vae, digits, epochs=2, batch_size=100, precision="bf16", jit=jit, progress=False
            )["train_elbo"]
        )
    assert results[1] == pytest.approx(results[0], rel=1e-3)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"precision": "8"}, "precision must be one of 32, bf16, 16"),
        ({"jit": True, "warmup_epochs": 2}, "jit would fix the KL warm-up"),
    ],
)
def test_bad_options_are_refused(options, message, digits):
    with pytest.raises(ValueError, match=message):
        pyrovae.fit(pyrovae.VAE(64, 2, hidden=(8,)), digits, epochs=1, progress=False, **options)


def test_float16_refused_for_objectives_that_run_their_own_backward(digits):
    x = digits.train.x[:8]
    vae = pyrovae.VAE(64, 2, hidden=(8,))
    elbo = make_elbo("iwae", vae, num_particles=2)
    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    with pytest.raises(ValueError, match="precision '16' scales the loss"):
        make_step(elbo, vae, vae.model, vae.guide, named_parameters(vae, params), precision="16")
    adam(params, 1e-3)  # the same parameters still make an optimiser: nothing was changed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("parts", [{}, SPHERE], ids=["vae", "svae"])
@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
def test_cuda_traced_and_mixed_precision_fit(parts, precision, digits):
    """On a GPU: the traced step at every precision trains to a finite, improving ELBO."""
    torch.manual_seed(0)
    vae = pyrovae.VAE(64, 5, hidden=(32,), **parts)
    history = pyrovae.fit(
        vae, digits, epochs=3, device="cuda", jit=True, precision=precision, progress=False
    )
    assert next(vae.parameters()).is_cuda
    assert history["train_elbo"][-1] > history["train_elbo"][0]
