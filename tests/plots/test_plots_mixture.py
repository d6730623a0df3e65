"""Mixture pictures are written as PNG files; bad shapes are refused with a hint."""

import pytest
import torch

from pyrovae.models import VAE, GaussianMixture
from pyrovae.plots import plot_gmm, plot_mixture_samples


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_plot_gmm_writes_png(tmp_path, covariance):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(50, 2), torch.randn(50, 2) + 4])
    model = GaussianMixture(2, 2, covariance)
    model.initialize(x)
    path = plot_gmm(model, x, tmp_path / "gmm.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_plot_gmm_needs_2d():
    with pytest.raises(ValueError, match="2-d"):
        plot_gmm(GaussianMixture(2, 3), torch.zeros(4, 3), "unused.png")


def test_plot_mixture_samples_writes_png(tmp_path):
    vae = VAE(16, 2, prior={"name": "mixture", "num_components": 3}, hidden=(8,))
    path = plot_mixture_samples(vae, (4, 4), tmp_path / "rows.png", per_component=5)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="image_shape"):
        plot_mixture_samples(vae, (5, 5), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="prior='mixture'"):
        plot_mixture_samples(VAE(16, 2), (4, 4), tmp_path / "bad.png")
