"""Models that learn from labels: the conditional VAE and the semi-supervised M2."""

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

import pyrovae
from pyrovae.data import keep_labels
from pyrovae.models import ConditionalVAE, SemiSupervisedVAE

SMALL = {"hidden": (16,)}


def test_keep_labels_is_balanced_seeded_and_leaves_test_labels(digits):
    kept = keep_labels(digits, 30, seed=3)
    y = kept.train.y
    assert torch.equal(torch.bincount(y[y >= 0], minlength=10), torch.full((10,), 3))
    assert torch.equal(y[y >= 0], digits.train.y[y >= 0])  # kept labels are the true ones
    assert ((y == -1) | (y == digits.train.y)).all() and (y == -1).sum() == len(y) - 30
    assert torch.equal(keep_labels(digits, 30, seed=3).train.y, y)
    assert not torch.equal(keep_labels(digits, 30, seed=4).train.y, y)
    assert kept.test is digits.test and digits.train.y.min() >= 0  # the original is untouched


@pytest.mark.parametrize("num_labels", [5, 25, 10.0])
def test_keep_labels_refuses_unbalanced_counts(digits, num_labels):
    with pytest.raises(ValueError, match="num_labels"):
        keep_labels(digits, num_labels)


def test_unlabelled_bound_is_the_q_weighted_sum_of_labelled_bounds(digits):
    """Enumerating y in the guide gives U(x) = Σ_y q(y|x) L(x, y) + H[q(y|x)], with L the
    bound of a labelled row (α = 0): checked against that sum, each term by Monte Carlo."""
    model = SemiSupervisedVAE(64, 3, aux_loss_multiplier=0.0, hidden=(16,))
    x = digits.test.x[:1]
    n = 4000
    enum = TraceEnum_ELBO(max_plate_nesting=1, num_particles=n, vectorize_particles=True)
    unlabelled = -enum.loss(model.model, model.guide, x)
    q = model.predict(x)[0].double()
    plain = Trace_ELBO(max_plate_nesting=1, num_particles=n, vectorize_particles=True)
    labelled = torch.tensor(
        [-plain.loss(model.model, model.guide, x, torch.tensor([k])) for k in range(10)]
    ).double()
    expected = (q * labelled).sum() - (q * q.log()).sum()
    # each bound is a mean of n draws whose spread is a few nats: 5 standard errors
    assert unlabelled == pytest.approx(expected.item(), abs=5 * 3.0 / math.sqrt(n))


def test_classification_term_is_alpha_times_log_q(digits):
    x, y = digits.test.x[:4], digits.test.y[:4]
    pyro.set_rng_seed(1)
    with_term = SemiSupervisedVAE(64, 3, aux_loss_multiplier=7.0, hidden=(16,))
    without = SemiSupervisedVAE(64, 3, aux_loss_multiplier=0.0, hidden=(16,))
    without.load_state_dict(with_term.state_dict())
    elbo = Trace_ELBO(max_plate_nesting=1)
    pyro.set_rng_seed(2)
    a = elbo.loss(with_term.model, with_term.guide, x, y)
    pyro.set_rng_seed(2)
    b = elbo.loss(without.model, without.guide, x, y)
    log_q = torch.log_softmax(with_term.classifier(x), -1).gather(1, y[:, None]).sum()
    assert a - b == pytest.approx(-7.0 * log_q.item(), rel=1e-4)


def test_ssvae_trains_with_few_labels_and_reports_accuracy(digits):
    data = keep_labels(digits, 50, seed=0)
    model = SemiSupervisedVAE(64, 4, **SMALL)
    history = pyrovae.fit(model, data, epochs=2, batch_size=200, progress=False)
    assert all(math.isfinite(v) for v in history["valid_elbo"])
    result = pyrovae.evaluate(model, data, num_samples=4)
    expected = (model.classify(digits.test.x) == digits.test.y).double().mean().item()
    assert result["accuracy"] == pytest.approx(expected)
    assert "nmi" not in result and math.isfinite(result["log_likelihood"])


def test_cvae_learns_to_use_the_label(digits):
    """After training, the bound given the true labels beats the bound given wrong ones."""
    model = ConditionalVAE(64, 2, **SMALL)
    pyrovae.fit(model, digits, epochs=15, batch_size=64, lr=3e-3, progress=False)
    x, y = digits.test.x, digits.test.y
    elbo = Trace_ELBO(max_plate_nesting=1, num_particles=8, vectorize_particles=True)
    right = -elbo.loss(model.model, model.guide, x, y) / len(x)
    wrong = -elbo.loss(model.model, model.guide, x, (y + 1) % 10) / len(x)
    assert right > wrong + 1.0
    scores = pyrovae.evaluate(model, digits, num_samples=8)
    assert scores["elbo"] == pytest.approx(right, abs=0.5)


def test_cvae_samples_the_chosen_label(digits):
    model = ConditionalVAE(64, 2, **SMALL)
    assert model.sample(6, 3).shape == (6, 64)
    torch.manual_seed(0)
    threes = model.sample(5, 3)
    torch.manual_seed(0)
    cycled = model.sample(5)  # labels 0, 1, 2, 3, 4 with the same z
    assert torch.allclose(cycled[3], threes[3]) and not torch.allclose(cycled[0], threes[0])


def test_label_models_refuse_data_without_labels(digits):
    x = digits.train.x
    with pytest.raises(ValueError, match="learns from labels"):
        pyrovae.fit(ConditionalVAE(64, 2, **SMALL), x, epochs=1, progress=False)
    bad = torch.full((4,), 10)
    with pytest.raises(ValueError, match=r"labels must be integers in 0…9"):
        ConditionalVAE(64, 2, **SMALL).model(x[:4], bad)


def test_cli_trains_conditional_and_semi_supervised_models(tmp_path):
    from pyrovae.cli import main

    common = ["--epochs", "1", "--hidden", "16", "--quiet"]
    assert main(["train", "--condition-on", "label", "--out", str(tmp_path / "c"), *common]) == 0
    assert (tmp_path / "c" / "samples_by_label.png").stat().st_size > 100
    ss = ["train", "--model", "ssvae", "--num-labels", "20", "--out", str(tmp_path / "s")]
    assert main([*ss, *common]) == 0
    assert main(["train", "--model", "gmm", "--condition-on", "label", *common]) == 2
    assert main(["train", "--num-labels", "100", *common]) == 2


class _CountingSSVAE(SemiSupervisedVAE):
    """Records how many labelled rows each training batch brings."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.labelled_counts = []

    def model(self, x, y=None):
        if y is not None and torch.is_grad_enabled():
            self.labelled_counts.append(int((y >= 0).sum()))
        return super().model(x, y)


def test_fit_deals_the_ssvae_a_tenth_of_each_batch_in_labelled_rows(digits):
    data = keep_labels(digits, 20, seed=0)
    unlabelled = len(data.train) - 20
    model = _CountingSSVAE(64, 2, **SMALL)
    pyrovae.fit(model, data, epochs=1, batch_size=50, progress=False, score_test="never")
    steps = math.ceil(unlabelled / 45)  # 5 labelled + 45 unlabelled rows per batch
    assert model.labelled_counts[-steps:] == [5] * steps
    plain = _CountingSSVAE(64, 2, **SMALL)
    pyrovae.fit(plain, data, epochs=1, batch_size=50, labelled_per_batch=0, progress=False)
    steps = math.ceil(len(data.train) / 50)
    assert sum(plain.labelled_counts[-steps:]) == 20  # each labelled row once per epoch


def test_fit_refuses_labelled_per_batch_it_cannot_use(digits):
    data = keep_labels(digits, 20, seed=0)
    with pytest.raises(ValueError, match=r"smaller than batch_size \(10\)"):
        pyrovae.fit(SemiSupervisedVAE(64, 2, **SMALL), data, batch_size=10, labelled_per_batch=10)
    with pytest.raises(ValueError, match="labelled_per_batch is for models that learn"):
        pyrovae.fit(pyrovae.models.VAE(64, 2), digits, labelled_per_batch=5, progress=False)


@pytest.mark.slow
def test_labelled_rows_in_every_batch_beat_plain_shuffling_with_few_labels(digits):
    """With 20 labels among 1,150 rows, plain shuffling shows the classification term a
    labelled row in one batch of 100 out of about two; dealing 10 into every batch makes
    the classifier markedly better (measured: 0.59/0.71/0.67 against 0.53/0.60/0.61)."""
    accuracy = {0: [], None: []}
    for seed in range(3):
        data = keep_labels(digits, 20, seed=seed)
        for share in accuracy:
            pyro.clear_param_store()
            torch.manual_seed(seed)
            model = SemiSupervisedVAE(64, 10, hidden=(64,))
            options = {"epochs": 30, "batch_size": 100, "seed": seed, "progress": False}
            pyrovae.fit(model, data, labelled_per_batch=share, score_test="never", **options)
            right = model.classify(digits.test.x) == digits.test.y
            accuracy[share].append(right.double().mean().item())
    assert sum(accuracy[None]) / 3 > sum(accuracy[0]) / 3 + 0.03
