"""The conditional VAE with a real-valued condition y ``(N, c)`` (``condition_dim``) instead of
a label: it learns a known linear conditional mean, ``fit`` carries y as the last c columns of
each batch, runs save and load with it, and wrong conditions are refused."""

import math

import pytest
import torch

import pyrovae
from pyrovae.infer.callbacks import LearningRateDecay
from pyrovae.infer.train import with_labels
from pyrovae.models import ConditionalVAE

D, C, SIGMA = 4, 2, 0.2
A = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, -1.0, 2.0]])
B = torch.tensor([0.5, 0.0, -0.5, 1.0])


def linear_data(n, seed=1):
    """x = A^T y + b + ε, y ~ N(0, I_c), ε ~ N(0, σ² I_D): E[x | y] = A^T y + b."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, C, generator=g)
    x = y @ A + B + SIGMA * torch.randn(n, D, generator=g)
    return pyrovae.data.from_arrays(x.numpy(), y.numpy())


def test_cvae_learns_the_conditional_mean_of_a_continuous_condition():
    """The mean of n samples at y is E[x | y] = A^T y + b within 4 standard errors of that
    mean (sd / √n, measured) plus σ/2 for the network's own regression error (0.015–0.055
    on data seeds 1–3); the samples at −y are not."""
    data = linear_data(4000)
    model = ConditionalVAE(D, 1, condition_dim=C, likelihood={"name": "gaussian", "scale": SIGMA})
    decay = LearningRateDecay(0.8, every=2)
    pyrovae.fit(model, data, epochs=30, batch_size=100, lr=1e-2, progress=False, callbacks=[decay])
    n = 4000
    torch.manual_seed(0)
    for y in torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 1.0], [0.7, 0.7]]):
        samples = model.sample(n, y=y)
        tolerance = 4 * samples.std(0) / math.sqrt(n) + SIGMA / 2
        error = (samples.mean(0) - (y @ A + B)).abs()
        assert (error < tolerance).all(), (y, error, tolerance)
        if y.abs().sum() > 0:  # the condition matters: −y's mean is far
            assert ((samples.mean(0) - (-y @ A + B)).abs() > 10 * tolerance).any()


def test_batches_carry_the_conditions_as_the_last_c_columns():
    data = linear_data(50)
    (batch,) = data.batches(batch_size=len(data.train), epoch=0, seed=0, labels=True)
    assert batch.shape == (len(data.train), D + C)
    seen = []
    with_labels(lambda x, y: seen.append((x, y)), C)(batch)
    (x, y), order = seen[0], torch.cdist(batch[:, :D], data.train.x).argmin(1)
    assert torch.equal(x, data.train.x[order]) and torch.equal(y, data.train.y[order])
    assert y.dtype == torch.float32 and y.shape == (len(data.train), C)


def test_a_run_with_conditions_loads_and_samples_the_same(tmp_path):
    data = linear_data(200)
    model = ConditionalVAE(D, 2, condition_dim=C, likelihood="gaussian", hidden=(16,))
    pyrovae.fit(model, data, epochs=2, batch_size=50, out=tmp_path / "run", progress=False)
    loaded = pyrovae.load(tmp_path / "run")
    assert loaded.condition_dim == C and pyrovae.load_config(tmp_path / "run")["condition_dim"] == C
    y = torch.tensor([0.3, -1.0])
    torch.manual_seed(0)
    expected = model.sample(5, y=y)
    torch.manual_seed(0)
    assert torch.allclose(loaded.sample(5, y=y), expected)
    scores = pyrovae.evaluate(loaded, data, num_samples=4)  # scored given the test conditions
    assert math.isfinite(scores["log_likelihood"]) and scores["num_examples"] == len(data.test)


def test_conditions_of_the_wrong_kind_are_refused():
    with pytest.raises(ValueError, match=r"y is a label \(num_classes\) or a real vector"):
        ConditionalVAE(D, 2, num_classes=10, condition_dim=C)
    model = ConditionalVAE(D, 2, condition_dim=C, likelihood="gaussian", hidden=(8,))
    x = torch.randn(3, D)
    for y, shape in ((torch.zeros(3, 3), r"\(3, 3\)"), (torch.zeros(3, C).long(), r"\(3, 2\)")):
        with pytest.raises(ValueError, match=rf"conditions must be a floating-point .*got {shape}"):
            model.guide(x, y)
    with pytest.raises(ValueError, match="conditions contain NaN"):
        model.model(x, torch.full((3, C), float("nan")))


def test_fit_refuses_y_of_the_other_kind(digits):
    continuous = ConditionalVAE(64, 2, condition_dim=C, hidden=(8,))
    with pytest.raises(ValueError, match=r"conditions on real vectors \(N, 2\) .* shape \(1150,\)"):
        pyrovae.fit(continuous, digits, epochs=1, progress=False)
    data = linear_data(50)
    with pytest.raises(ValueError, match=r"conditions on labels \(N,\), .* shape \(35, 2\)"):
        pyrovae.fit(ConditionalVAE(D, 2, likelihood="gaussian"), data, epochs=1, progress=False)
