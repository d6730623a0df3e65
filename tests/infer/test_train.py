import json

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

import pyrovae
from pyrovae.infer.train import default_elbo, scale_latents
from pyrovae.models import VAE

SMALL = {"hidden": (32,)}


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_training_on_digits_improves_the_test_elbo(digits):
    model = VAE(64, 4, hidden=(128, 64))
    history = pyrovae.fit(
        model, digits, epochs=25, batch_size=64, score_test="epoch", progress=False
    )
    first, last = history["test_elbo"][0], history["test_elbo"][-1]
    # measured: about -36 after one epoch, about -24 after 25; we ask for 8 nats
    assert last - first > 8, history["test_elbo"]
    assert len(history["train_elbo"]) == 25 and all(v is not None for v in history["valid_elbo"])


def test_resume_equals_the_uninterrupted_run(digits, tmp_path):
    pyro.set_rng_seed(0)
    whole = VAE(64, 2, **SMALL)
    h_whole = pyrovae.fit(
        whole, digits, epochs=4, batch_size=200, progress=False, warmup_epochs=2, out=tmp_path / "a"
    )
    pyro.set_rng_seed(0)
    part = VAE(64, 2, **SMALL)
    pyrovae.fit(
        part, digits, epochs=2, batch_size=200, progress=False, warmup_epochs=2, out=tmp_path / "b"
    )
    pyro.clear_param_store()
    pyro.set_rng_seed(123)  # whatever the state now, resume restores the saved one
    resumed = VAE(64, 2, **SMALL)
    h_resumed = pyrovae.fit(
        resumed,
        digits,
        epochs=4,
        batch_size=200,
        progress=False,
        warmup_epochs=2,
        out=tmp_path / "b",
        resume=True,
    )
    assert torch.equal(_params(whole), _params(resumed))
    for key in ("train_elbo", "valid_elbo", "test_elbo", "beta"):
        assert h_whole[key] == h_resumed[key]
    on_disk = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert on_disk["test_elbo"] == h_whole["test_elbo"]


def test_kl_warmup_scales_only_latent_sites():
    vae = VAE(6, 2, **SMALL)
    x = torch.rand(3, 6).round()
    with scale_latents(beta=0.25):
        guide = pyro.poutine.trace(vae.guide).get_trace(x)
        model = pyro.poutine.trace(pyro.poutine.replay(vae.model, trace=guide)).get_trace(x)
    assert guide.nodes["z"]["scale"] == 0.25 and model.nodes["z"]["scale"] == 0.25
    assert model.nodes["x"]["scale"] == 1.0


def test_scale_latents_wraps_like_poutine_scale_and_warns_on_the_old_form():
    vae = VAE(6, 2, **SMALL)
    x = torch.rand(3, 6).round()
    guide = pyro.poutine.trace(scale_latents(vae.guide, beta=0.5)).get_trace(x)
    assert guide.nodes["z"]["scale"] == 0.5
    with pytest.warns(DeprecationWarning, match="scale_latents\\(beta=...\\)"):
        old = scale_latents(0.5)
    assert old.beta == 0.5


def test_warmup_beta_grows_linearly_to_one(digits):
    history = pyrovae.fit(
        VAE(64, 2, **SMALL), digits, epochs=4, batch_size=1150, warmup_epochs=2, progress=False
    )
    # one step per epoch: beta is step / warmup_steps, capped at 1
    assert history["beta"] == [0.5, 1.0, 1.0, 1.0]


def test_early_stopping_keeps_the_best_epoch(digits):
    model = VAE(64, 2, **SMALL)
    history = pyrovae.fit(
        model, digits, epochs=200, batch_size=64, lr=3e-2, patience=2, progress=False
    )
    valid = history["valid_elbo"]
    best = max(valid)
    # it stopped exactly `patience` epochs after the best one, none of which improved on it
    assert len(valid) == valid.index(best) + 1 + 2 < 200
    assert all(v < best for v in valid[-2:])
    # the test split was scored once, at the end, for the parameters returned
    assert history["test_elbo"][:-1] == [None] * (len(valid) - 1)
    test = pyrovae.infer.train.elbo_per_example(
        Trace_ELBO(num_particles=200, vectorize_particles=True, max_plate_nesting=1),
        model,
        digits.test.x,
    )
    assert abs(history["test_elbo"][-1] - test) < 1.0
    # the kept parameters are those of the best epoch: its validation ELBO comes back
    score = pyrovae.infer.train.elbo_per_example(
        Trace_ELBO(num_particles=200, vectorize_particles=True, max_plate_nesting=1),
        model,
        digits.valid.x,
    )
    assert abs(score - best) < 1.0


def test_the_default_elbo_follows_the_model():
    assert isinstance(default_elbo(VAE(4, 2)), Trace_ELBO)

    class Enumerated(VAE):
        has_enumerated_sites = True

    assert isinstance(default_elbo(Enumerated(4, 2)), TraceEnum_ELBO)


def test_any_pyro_elbo_may_be_passed(digits):
    model = VAE(64, 2, **SMALL)
    renyi = pyro.infer.RenyiELBO(alpha=0, num_particles=3)  # no differentiable_loss
    history = pyrovae.fit(
        model, digits.train.x[:300], epochs=3, batch_size=100, elbo=renyi, progress=False
    )
    bound = history["train_iwae_bound"]  # the history names what the loss estimates
    assert bound[-1] > bound[0] and history["train_elbo"] == [None] * 3


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": -1}, "batch_size must be a positive integer"),
        ({"lr": 0}, "lr must be a positive number"),
        ({"patience": 0}, "patience must be a positive integer"),
        ({"warmup_epochs": -1}, "warmup_epochs must be a number >= 0"),
        ({"score_test": "sometimes"}, "score_test must be one of end, epoch, never"),
        ({"epoch": 3}, "unknown fit option.s. epoch; fit options: epochs,"),
    ],
)
def test_bad_options_fail_before_training(options, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        pyrovae.fit(VAE(64, 2), torch.rand(10, 64), out=tmp_path, progress=False, **options)
    assert not list(tmp_path.iterdir())


def test_a_good_checkpoint_is_never_overwritten_or_mixed(digits, tmp_path):
    pyrovae.fit(VAE(64, 2, **SMALL), digits, epochs=1, progress=False, out=tmp_path)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        pyrovae.fit(VAE(64, 2, **SMALL), digits, epochs=1, progress=False, out=tmp_path)
    with pytest.raises(ValueError, match="different model"):
        pyrovae.fit(
            VAE(64, 3, **SMALL), digits, epochs=2, progress=False, out=tmp_path, resume=True
        )
    with pytest.raises(ValueError, match=r"data must have shape \(N, 64\)"):
        pyrovae.fit(VAE(64, 2, **SMALL), torch.rand(5, 8), epochs=2, out=tmp_path, resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None], ids=["empty", "junk", "cut"])
def test_unreadable_checkpoints_are_refused(content, digits, tmp_path):
    pyrovae.fit(VAE(64, 2, **SMALL), digits, epochs=1, progress=False, out=tmp_path)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:100] if content is None else content)
    with pytest.raises(ValueError, match="cannot read checkpoint|not a pyrovae checkpoint"):
        pyrovae.fit(
            VAE(64, 2, **SMALL), digits, epochs=2, progress=False, out=tmp_path, resume=True
        )


def test_resuming_an_early_stopped_run_trains_no_more(digits, tmp_path):
    options = {"epochs": 200, "batch_size": 64, "lr": 3e-2, "patience": 2, "progress": False}
    model = VAE(64, 2, **SMALL)
    history = pyrovae.fit(model, digits, out=tmp_path, **options)
    assert len(history["epoch"]) < 200
    again = VAE(64, 2, **SMALL)
    resumed = pyrovae.fit(again, digits, out=tmp_path, resume=True, **options)
    assert resumed["epoch"] == history["epoch"]
    # the best epoch's parameters come back, as at the end of the first call
    assert torch.equal(_params(again), _params(model))


def test_a_resume_in_the_middle_of_early_stopping_equals_the_uninterrupted_run(digits, tmp_path):
    """Split where the early-stopping state counts epochs without improvement (wait > 0): the
    resumed run restores that count, the best epoch and its parameters, and ends as the
    uninterrupted one does (the same stop, best epoch, history and returned parameters)."""
    options = {"batch_size": 64, "lr": 3e-2, "patience": 3, "progress": False}
    pyro.set_rng_seed(0)
    whole = VAE(64, 2, **SMALL)
    h_whole = pyrovae.fit(whole, digits, epochs=60, out=tmp_path / "a", **options)
    valid = h_whole["valid_elbo"]
    best_so_far = [max(valid[: i + 1]) for i in range(len(valid))]
    split = next(i + 1 for i in range(1, len(valid)) if valid[i] < best_so_far[i])
    assert split < len(valid) < 60  # a split with wait > 0, and an early stop after it
    pyro.set_rng_seed(0)
    pyrovae.fit(VAE(64, 2, **SMALL), digits, epochs=split, out=tmp_path / "b", **options)
    best = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["best"]
    assert best["wait"] > 0 and best["elbo"] == best_so_far[split - 1]
    pyro.clear_param_store()
    pyro.set_rng_seed(123)  # whatever the state now, resume restores the saved one
    resumed = VAE(64, 2, **SMALL)
    h_resumed = pyrovae.fit(resumed, digits, epochs=60, out=tmp_path / "b", resume=True, **options)
    assert h_resumed == h_whole | {"seconds": h_resumed["seconds"]}
    assert torch.equal(_params(whole), _params(resumed))
    on_disk = [json.loads((tmp_path / r / "metrics.json").read_text()) for r in "ab"]
    assert on_disk[0]["best_epoch"] == on_disk[1]["best_epoch"] < len(valid)


class _RecordLr(pyrovae.infer.Callback):
    def __init__(self):
        self.lrs = []

    def on_step_end(self, state):
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


def test_learning_rate_decay_follows_torch_step_lr_and_survives_a_resume(digits, tmp_path):
    # reference: torch's StepLR stepped once per epoch (one step per epoch at this batch size)
    reference = torch.optim.lr_scheduler.StepLR(
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-3), step_size=2, gamma=0.5
    )
    expected = []
    for _ in range(5):
        expected.append(reference.get_last_lr()[0])
        reference.optimizer.step()
        reference.step()
    runs = {}
    for name, stops in (("whole", (5,)), ("resumed", (3, 5))):
        pyro.set_rng_seed(0)
        model, seen = VAE(64, 2, **SMALL), _RecordLr()
        for epochs in stops:
            decay = pyrovae.infer.LearningRateDecay(0.5, every=2)
            pyrovae.fit(
                model, digits, epochs=epochs, batch_size=1150, lr=2e-3, progress=False,
                out=tmp_path / name, resume=True, callbacks=[decay, seen],
            )  # fmt: skip
        runs[name] = (seen.lrs, _params(model))
    assert runs["whole"][0] == pytest.approx(expected, rel=1e-12)
    assert runs["resumed"][0] == runs["whole"][0]
    assert torch.equal(runs["resumed"][1], runs["whole"][1])


def test_learning_rate_decay_stops_at_its_minimum_as_vades_schedule(digits):
    # reference: VaDE's code, lr <- max(lr * factor, minimum) at every period's start
    lr, expected = 2e-3, []
    for epoch in range(7):
        if epoch and epoch % 2 == 0:
            lr = max(lr * 0.5, 6e-4)
        expected.append(lr)
    seen = _RecordLr()
    decay = pyrovae.infer.LearningRateDecay(0.5, every=2, minimum=6e-4)
    pyrovae.fit(
        VAE(64, 2, **SMALL), digits, epochs=7, batch_size=1150, lr=2e-3, progress=False,
        callbacks=[decay, seen],
    )  # fmt: skip
    assert seen.lrs == pytest.approx(expected, rel=1e-12)
    assert expected[-1] == 6e-4 and expected[2] == 1e-3  # the floor is reached, and binds


@pytest.mark.parametrize(
    "factor, every, minimum", [(0.0, 1, 0.0), (1.5, 1, 0.0), (0.9, 0, 0.0), (0.9, 1, -1e-4)]
)
def test_learning_rate_decay_refuses_arguments_out_of_range(factor, every, minimum):
    with pytest.raises(ValueError, match="0 < factor <= 1, every >= 1 and minimum >= 0"):
        pyrovae.infer.LearningRateDecay(factor, every=every, minimum=minimum)
