"""The numerical guard: one message naming step, site and cause; the checkpoint stays intact."""

import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import pyrovae
from pyrovae.data import Data, Split
from pyrovae.infer.guard import NonFiniteError
from pyrovae.models import VAE

SMALL = {"hidden": (32,), "likelihood": "gaussian"}


class Poisoned(Data):
    """Digits whose third batch of the second epoch holds a value of 1e30 (finite, so it
    passes the input checks, but its squared error overflows float32)."""

    def batches(self, batch_size, epoch, seed, rank=0, world_size=1):
        for step, x in enumerate(super().batches(batch_size, epoch, seed, rank, world_size)):
            if (epoch, step) == (1, 2):
                x = x.clone()
                x[0, 5] = 1e30
            yield x


def test_a_nan_producing_batch_stops_with_site_and_cause_and_keeps_the_checkpoint(digits, tmp_path):
    data = Poisoned(digits.train, digits.valid, digits.test)
    with pytest.raises(NonFiniteError) as error:
        pyrovae.fit(VAE(64, 2, **SMALL), data, epochs=3, out=tmp_path, progress=False)
    message = str(error.value)
    # the first site where that row's numbers overflow (guide or model: it depends on the noise);
    # the loss is -(log p - log q) with log p = -inf there
    assert "non-finite loss (inf) at epoch 2, step 3, site 'z' of the" in message
    assert "check the data's range" in message and "(this batch: [0, 1e+30])" in message
    assert "\n" not in message
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1  # written after epoch 1, nothing after the bad step
    assert json.loads((tmp_path / "metrics.json").read_text())["epoch"] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt",
        "config.yaml",
        "metrics.json",
    ]


class Sabotaged(Data):
    """Sets a decoder weight of ``model`` to NaN before the second batch, as an overflow in an
    earlier update would have."""

    def __init__(self, data, model):
        super().__init__(data.train, data.valid, data.test)
        self.model = model

    def batches(self, batch_size, epoch, seed, rank=0, world_size=1):
        for step, x in enumerate(super().batches(batch_size, epoch, seed, rank, world_size)):
            if step == 1:
                with torch.no_grad():
                    self.model.decoder.net[0].weight[0, 0] = float("nan")
            yield x


def test_a_parameter_gone_nan_is_named(digits):
    model = VAE(64, 2, **SMALL)
    with pytest.raises(NonFiniteError, match=r"epoch 1, step 2, parameter decoder.net.0.weight"):
        pyrovae.fit(model, Sabotaged(digits, model), epochs=1, progress=False)


def test_a_broken_model_is_refused_by_the_validation_pass_before_training(digits):
    model = VAE(64, 2, **SMALL)
    with torch.no_grad():
        model.decoder.net[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="Expected parameter loc"):
        pyrovae.fit(model, digits, epochs=1, progress=False)


class SqrtAtZero:
    """x ~ N(sqrt(a), 1) with a = 0 and x = 0: the loss is finite, its gradient 0 · ∞ is not."""

    def model(self, x):
        a = pyro.param("a", torch.zeros(()))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(a.sqrt(), 1.0).expand([x.shape[0], 2]).to_event(1), obs=x)

    def guide(self, x):
        pass


def test_a_gradient_only_failure_names_the_parameter_and_suggests_detect_anomaly():
    with pytest.raises(
        NonFiniteError, match=r"gradient at epoch 1, step 1: no sample site is non-finite"
    ):
        pyrovae.fit(SqrtAtZero(), torch.zeros(4, 2), epochs=1, progress=False)
    with pytest.raises(NonFiniteError, match=r"\(at a\).*--detect-anomaly"):
        pyrovae.fit(SqrtAtZero(), torch.zeros(4, 2), epochs=1, progress=False)


def test_detect_anomaly_finds_the_operation_and_is_switched_off_afterwards():
    with pytest.raises(RuntimeError, match="SqrtBackward0"):
        pyrovae.fit(SqrtAtZero(), torch.zeros(4, 2), epochs=1, progress=False, detect_anomaly=True)
    assert not torch.is_anomaly_enabled()
    assert pyro.infer.util.is_validation_enabled()  # Pyro's default, as before fit


def test_invalid_distribution_arguments_are_reported_under_validation(digits):
    model = VAE(64, 2, hidden=(32,), likelihood={"name": "gaussian", "scale": 1.0})
    data = Data(Split(digits.train.x[:20]))
    with torch.no_grad():
        model.encoder.heads["loc"].bias.fill_(float("inf"))
    with pytest.raises(ValueError, match="loc"):
        pyrovae.fit(model, data, epochs=1, progress=False, detect_anomaly=True)


@pytest.mark.parametrize("lr", [1e39, 3e38])
@pytest.mark.parametrize("validation", [False, True])
def test_an_overflowing_update_stops_before_any_weights_are_saved(digits, tmp_path, lr, validation):
    # one step of Adam: its first step size is lr / (1 - 0.9), inf in float32 for both lrs
    x = digits.train.x[:200]
    data = Data(Split(x), Split(digits.valid.x[:50])) if validation else x
    with pytest.raises(
        NonFiniteError,
        match=r"non-finite parameter after the update at epoch 1, "
        r"step 1, (en|de)coder\..* and \d+ more: .*overflowed \(lr .*\); lower lr",
    ):
        pyrovae.fit(VAE(64, 2), data, epochs=1, lr=lr, batch_size=200, out=tmp_path / "r",
                    progress=False)  # fmt: skip
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_an_overflowing_update_of_a_full_covariance_mixture_is_stopped(digits, tmp_path):
    from pyrovae.models import GaussianMixture

    x = digits.train.x[:200, :4] + 0.1 * torch.randn(200, 4)
    with pytest.raises(NonFiniteError, match="non-finite parameter after the update"):
        pyrovae.fit(GaussianMixture(3, 4, covariance="full"), x, epochs=1, lr=1e39,
                    batch_size=200, out=tmp_path / "r", progress=False)  # fmt: skip
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_check_update_passes_finite_extremes_and_names_the_first_bad_parameter():
    from pyrovae.infer.guard import check_update

    big = torch.full((3,), 3e38)  # finite, though its squares overflow: a norm would say inf
    check_update([("a", big), ("b", -big)], "epoch 1, step 1")
    for bad in (float("nan"), float("inf"), -float("inf")):
        named = [("a", big), ("b", torch.tensor([0.0, bad])), ("c", torch.tensor([bad]))]
        with pytest.raises(NonFiniteError, match=r"at epoch 2, step 5, b and 1 more:"):
            check_update(named, "epoch 2, step 5")


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9), (0.3, 0.99), (0.95, 0.95)])
def test_adams_step_is_within_the_update_bound_and_reaches_the_cauchy_schwarz_value(betas):
    """On the gradients for which Cauchy-Schwarz is tight, g_k ∝ (β₁/β₂)^-k, torch's Adam
    moves a parameter by lr · f(t), f(t) = (1-β₁)/sqrt(1-β₂) · sqrt(Σ_{j<t} r^j) ·
    sqrt(1-β₂^t)/(1-β₁^t), r = β₁²/β₂ (the bound's derivation, exact here), never more than the
    bound's B·lr; random and spiky gradients stay below it too."""
    from pyrovae.infer.guard import _adam_step_bound

    beta1, beta2 = betas
    lr = 1e-3
    bound = _adam_step_bound({"lr": lr, "betas": betas, "weight_decay": 0.0})
    r = beta1 * beta1 / beta2
    torch.manual_seed(0)
    spiky = torch.randn(60, dtype=torch.float64) * 10.0 ** torch.randint(-6, 6, (60,))
    tight = (beta1 / beta2) ** -torch.arange(60.0, dtype=torch.float64)
    for grads, exact in (
        (tight, True),
        (spiky, False),
        (torch.randn(60, dtype=torch.float64), False),
    ):
        theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([theta], lr=lr, betas=betas, eps=0.0)
        for t, g in enumerate(grads, start=1):
            before = theta.detach().clone()
            theta.grad = g.reshape(1).clone()
            optimizer.step()
            moved = (theta.detach() - before).abs().item()
            assert moved <= bound * (1 + 1e-12)
            if exact:
                f = (1 - beta1) / math.sqrt(1 - beta2) * math.sqrt((1 - r**t) / (1 - r))
                f *= math.sqrt(1 - beta2**t) / (1 - beta1**t)
                assert moved == pytest.approx(lr * f, rel=1e-9)


def test_no_bound_for_decoupled_weight_decay_or_large_beta1():
    from pyrovae.infer.guard import _adam_step_bound

    assert _adam_step_bound({"lr": 1e-3, "betas": (0.99, 0.9), "weight_decay": 0.0}) is None
    adamw = {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.01}
    assert _adam_step_bound({**adamw, "decoupled_weight_decay": True}) is None
    assert _adam_step_bound(adamw) is not None  # Adam's L2 decay only changes the gradient


def test_a_sane_learning_rate_reads_the_parameters_once_per_epoch(digits, monkeypatch):
    """With Adam at lr 1e-3 no step can overflow: check_update is never called, and the
    bound's one pass over the parameters happens at each epoch's first step only."""
    from pyrovae.infer import guard

    calls = {"check_update": 0}
    monkeypatch.setattr(
        guard,
        "check_update",
        lambda *a, **k: calls.__setitem__("check_update", 1 + calls["check_update"]),
    )
    steps_per_epoch = 4
    x = digits.train.x[: 32 * steps_per_epoch]
    reads = []
    original = guard.UpdateBound.may_overflow

    def counted(self, named_params, optimizer, epoch):
        before = self._epoch
        out = original(self, named_params, optimizer, epoch)
        reads.append(before != epoch)
        assert out is False
        return out

    monkeypatch.setattr(guard.UpdateBound, "may_overflow", counted)
    pyrovae.fit(VAE(64, 2, **SMALL), x, epochs=3, batch_size=32, progress=False)
    assert calls["check_update"] == 0
    assert reads == ([True] + [False] * (steps_per_epoch - 1)) * 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_the_update_bound_checks_a_non_finite_parameter_wherever_it_is(bad):
    from pyrovae.infer.guard import UpdateBound

    named = [("a", torch.ones(3)), ("b", torch.tensor([0.0, bad])), ("c", torch.ones(2))]
    optimizer = torch.optim.Adam([p for _, p in named], lr=1e-3)
    assert UpdateBound().may_overflow(named, optimizer, epoch=1)
    finite = [(n, torch.ones(2)) for n in "abc"]
    bound = UpdateBound()
    assert not bound.may_overflow(finite, torch.optim.Adam([p for _, p in finite]), epoch=1)
    assert bound.may_overflow(finite, torch.optim.SGD([p for _, p in finite], lr=1e-3), epoch=1)
