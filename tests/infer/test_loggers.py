"""Tracking and progress: the logger interface, TensorBoard event files read back, the ELBO
terms against closed forms, one clean line per epoch off a terminal and a heartbeat within
long epochs."""

import io
import itertools
import types

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import pyrovae
from pyrovae import cli
from pyrovae.infer import callbacks
from pyrovae.infer.callbacks import Callback, Progress
from pyrovae.infer.loggers import Logger, elbo_terms


class Recorder(Logger):
    def __init__(self):
        self.metrics, self.images, self.params, self.closed = [], [], None, False

    def log_metrics(self, metrics, step):
        self.metrics.append((step, dict(metrics)))

    def log_params(self, params):
        self.params = dict(params)

    def log_image(self, name, image, step):
        self.images.append((name, image, step))

    def close(self):
        self.closed = True


@pytest.mark.slow
def test_a_logger_gets_steps_epochs_terms_and_samples(digits):
    recorder = Recorder()
    history = pyrovae.fit(
        pyrovae.VAE(64, 2, hidden=(16,)),
        digits,
        epochs=2,
        batch_size=400,
        warmup_epochs=1,
        logger=recorder,
        progress=False,
    )
    steps = [(s, m["train/loss"]) for s, m in recorder.metrics if "train/loss" in m]
    assert [s for s, _ in steps] == [1, 2, 3, 4, 5, 6]  # 1150 rows: 400, 400, 350
    epochs = [m for _, m in recorder.metrics if "elbo/train" in m]
    assert [m["elbo/train"] for m in epochs] == history["train_elbo"]
    assert [m["beta"] for m in epochs] == history["beta"] == [1.0, 1.0]
    assert all({"elbo/valid", "terms/kl", "terms/reconstruction"} <= set(m) for m in epochs)
    assert recorder.metrics[-1][1] == {"elbo/test": history["test_elbo"][-1]}
    name, image, step = recorder.images[-1]
    assert name == "samples" and step == 6 and image.shape == (3, 73, 73)  # 8×8 grid of 8×8
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])  # grey
    assert recorder.closed
    given = {"model": "vae", "input_dim": 64, "latent_dim": 2, "epochs": 2, "batch_size": 400}
    assert given.items() <= recorder.params.items() and recorder.params["warmup_epochs"] == 1


def test_elbo_terms_match_the_closed_form_kl_and_reconstruction():
    """One row repeated 20,000 times: the one-sample estimates average to KL(q ‖ p) in closed
    form and to E_q[log p(x | z)] by a separate Monte Carlo estimate."""
    vae = pyrovae.VAE(6, 2, hidden=(8,))
    x = torch.rand(1, 6).round().expand(20_000, 6)
    terms = elbo_terms(vae, x)
    params = vae.encoder(x[:1])
    q = vae.posterior(params)
    kl = kl_divergence(Normal(q.base_dist.loc, q.base_dist.scale), Normal(0.0, 1.0)).sum()
    z = q.sample((20_000,))[:, 0]
    reconstruction = vae.likelihood(vae.decoder(z)).log_prob(x).mean()
    assert terms["kl"] == pytest.approx(kl.item(), abs=0.05)
    assert terms["reconstruction"] == pytest.approx(reconstruction.item(), abs=0.05)
    assert terms["elbo"] == pytest.approx(terms["reconstruction"] - terms["kl"])


def test_a_gmm_has_no_reconstruction_term_and_its_elbo_is_the_exact_log_likelihood():
    gmm = pyrovae.models.GaussianMixture(2, 3)
    x = torch.randn(10, 3)
    terms = elbo_terms(gmm, x)
    assert terms["reconstruction"] is None and terms["kl"] is None
    assert terms["elbo"] == pytest.approx(gmm.log_prob(x).mean().item(), rel=1e-5)


def test_off_a_terminal_each_epoch_is_one_clean_line(digits, capsys):
    pyrovae.fit(pyrovae.VAE(64, 2, hidden=(16,)), digits, epochs=2, batch_size=400)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == ""  # stdout is the caller's
    assert [line.split("  ")[0] for line in lines[:2]] == ["epoch 1", "epoch 2"]
    assert len(lines) == 3 and lines[2].startswith("test elbo -")
    assert "valid elbo" in lines[0] and "%|" not in captured.out + captured.err
    assert "\r" not in captured.out + captured.err


class Steps(Callback):
    """Each step's (epoch, step, summed loss, rows), as the loop hands them to the hooks."""

    def __init__(self):
        self.seen = []

    def on_step_end(self, state):
        self.seen.append((state.epoch + 1, state.step, state.loss, state.batch_rows))


class Terminal(io.StringIO):
    def isatty(self):
        return True


def fake_clock(monkeypatch, seconds_per_call):
    """``callbacks.time.monotonic`` becomes a clock that moves ``seconds_per_call`` at each
    call: Progress reads it at each epoch's first step and after each step but the last."""
    ticks = itertools.count(0.0, seconds_per_call)
    monkeypatch.setattr(callbacks, "time", types.SimpleNamespace(monotonic=lambda: next(ticks)))


@pytest.mark.parametrize("interval, beats", [(30.0, [5, 10]), (100.0, [])])
def test_off_a_terminal_a_long_epoch_shows_its_running_elbo(digits, monkeypatch, interval, beats):
    # 1150 rows in batches of 100: 12 steps. The clock moves 7 s per read, so step s ends
    # 7 s after step s - 1: lines every 35 s, at steps 5 and 10 for a 30 s interval (never at
    # the last step: the summary line follows), none for 100 s (no epoch lasts 100 s)
    fake_clock(monkeypatch, 7.0)
    stream, steps = io.StringIO(), Steps()
    history = pyrovae.fit(
        pyrovae.VAE(64, 2, hidden=(16,)), digits, epochs=2, batch_size=100, progress=False,
        callbacks=[steps, Progress(stream, interval=interval)], score_test="never",
    )  # fmt: skip
    lines, want = stream.getvalue().splitlines(), []
    for epoch in (1, 2):
        rows = [s for s in steps.seen if s[0] == epoch]
        assert len(rows) == 12
        total = count = 0
        for _, step, loss, batch in rows:
            total, count = total + loss, count + batch
            if step in beats:
                want.append(f"epoch {epoch}/2  step {step}/12  elbo {-total / count:.3f} (so far)")
        assert -total / count == pytest.approx(history["train_elbo"][epoch - 1])
        want.append(f"epoch {epoch}")  # then its summary line
    assert [line if "(so far)" in line else line.split("  ")[0] for line in lines] == want


def test_on_a_terminal_the_bar_shows_progress_and_there_is_no_heartbeat(digits, monkeypatch):
    fake_clock(monkeypatch, 7.0)
    stream = Terminal()
    pyrovae.fit(
        pyrovae.VAE(64, 2, hidden=(16,)), digits, epochs=1, batch_size=100, progress=False,
        callbacks=[Progress(stream, interval=30.0)], score_test="never",
    )  # fmt: skip
    text = stream.getvalue()
    assert "(so far)" not in text
    assert "\repoch 1/1:   0%|" in text and "/12 [" in text  # the bar (tqdm redraws it at most
    # every 0.1 s of its own clock: a 12-step epoch shows its start)


def test_pyrovae_train_writes_tensorboard_events_with_the_expected_tags(tmp_path, capsys):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    tb = tmp_path / "run" / "tensorboard"
    argv = ["train", "--epochs", "2", "--hidden", "16", "--batch-size", "400", "--quiet"]
    argv += ["--num-samples", "2", "--out", str(tmp_path / "run"), "--logger", "tensorboard"]
    assert cli.main(argv) == 0
    events = event_accumulator.EventAccumulator(str(tb), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {"train/loss", "elbo/train", "elbo/valid", "elbo/test", "beta"}
    assert expected | {"terms/kl", "terms/reconstruction"} <= scalars
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert len(events.Scalars("elbo/valid")) == 2
    assert events.Tags()["images"] == ["samples"]
    assert len(events.Images("samples")) == 2


def test_tensorboard_without_the_package_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    from pyrovae.infer.loggers import TensorBoardLogger

    with pytest.raises(ValueError, match=r"pip install 'pyrovae\[tensorboard\]'"):
        TensorBoardLogger("runs/tb")
