"""Size bounds: the estimates against counts made by hand, and numbers users write accepted."""

import math
import re

import pytest
import torch
import yaml

from pyrovae import budget, cli
from pyrovae.models import VAE
from pyrovae.runs import config as cfg


def test_the_meta_build_counts_the_parameters_of_the_real_model_and_draws_no_numbers():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    meta = budget.check_model(lambda: VAE(64, 3, hidden=(16, 8)))
    assert torch.equal(torch.rand(3), expected)  # the meta build drew no random numbers
    real = VAE(64, 3, hidden=(16, 8))
    count = sum(p.numel() for p in meta.parameters())
    assert count == sum(p.numel() for p in real.parameters())
    # by hand: encoder 64·16+16, 16·8+8, heads 2·(8·3+3); decoder 3·8+8, 8·16+16, 16·64+64
    assert count == (64 * 16 + 16) + (16 * 8 + 8) + 2 * (8 * 3 + 3) + (3 * 8 + 8) + (
        8 * 16 + 16
    ) + (16 * 64 + 64)


def test_a_model_that_would_not_fit_is_refused_with_the_estimate(monkeypatch):
    monkeypatch.setattr(budget, "memory_bytes", lambda device=None: 1e6)
    config = cfg.resolve({"latent_dim": 1000, "hidden": [100]})
    count = (64 * 100 + 100) + 2 * (100 * 1000 + 1000) + (1000 * 100 + 100) + (100 * 64 + 64)
    gb = f"{count * 4 * 4 / 1e9:.3g} GB"
    with pytest.raises(
        ValueError, match=re.escape(f"({count:.3g} parameters) would need about {gb}")
    ):
        cfg.build_model(config, 64)


def test_per_row_numbers_of_an_mlp_vae_by_hand():
    with torch.device("meta"):
        model = VAE(64, 2, hidden=(16,))
    linear = (64 + 16) + 2 * (16 + 2) + (2 + 16) + (16 + 64)
    assert budget.per_row_numbers(model, 64) == linear + 4 * 64


def test_fixed_bounds_on_work_let_the_papers_protocols_through():
    budget.check_evaluation(10_000, 5_000)  # MNIST test set, 5,000 importance samples
    mnist_iwae = {"epochs": 3280, "num_particles": 50, "batch_size": 20}
    budget.check_training(mnist_iwae, 60_000, 784, None)
    with pytest.raises(ValueError, match="give --num-samples 1000000 or fewer"):
        budget.check_evaluation(10_000, 1_000_001)


def test_memory_of_a_sample_grid_by_hand(monkeypatch):
    monkeypatch.setattr(budget, "memory_bytes", lambda device=None: 1e9)
    n, scale = 1000, 10
    need = 20 * (n * 64 * 16 + n * (8 * scale + 1) ** 2 * 8)
    with pytest.raises(ValueError, match=f"about {need / 1e9:.3g} GB"):
        budget.check_sample_grid(n * 20, 64, (8, 8), scale)  # 20 × over
    budget.check_sample_grid(n, 64, (8, 8), scale)  # ~0.05 GB: fits


def test_yaml_numbers_in_exponent_notation_are_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "lr: 1e-3\nwarmup_epochs: 5E0\nlikelihood: {name: gaussian, scale: 1e-3}\n"
    )
    values = cfg.read_file(tmp_path / "c.yaml")
    assert values["lr"] == 1e-3 and values["warmup_epochs"] == 5.0
    assert values["likelihood"]["scale"] == 1e-3
    config = cfg.resolve(values)
    model = cfg.build_model(config, 64)
    assert math.isclose(model.likelihood.scale.item(), 1e-3, rel_tol=1e-6)
    assert yaml.safe_load("lr: 1e-3")["lr"] == "1e-3"  # what PyYAML alone gives


def test_inline_specs_take_exponent_numbers_and_integer_flags_take_1e_notation():
    args = cli.parser().parse_args(
        ["train", "--likelihood", "{name: gaussian, scale: 1e-3}", "--epochs", "1e2"]
    )
    assert args.likelihood == {"name": "gaussian", "scale": 1e-3}
    assert args.epochs == 100 and isinstance(args.epochs, int)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["train", "--epochs", "1.5e0"])


def test_llgae_takes_a_fixed_noise_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--quiet", "--model", "llgae", "--num-components", "2", "--noise", "0.1"]
    assert cli.main([*argv, "--epochs", "1", "--out", str(out)]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert torch.allclose(state["model"]["fixed_noise_scales"], torch.full((2,), 0.1))
