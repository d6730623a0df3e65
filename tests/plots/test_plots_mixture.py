"""Mixture pictures are written as PNG files; bad shapes are refused with a hint."""

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest
import torch

from pyrovae.models import VAE, GaussianMixture
from pyrovae.plots import mixture as mixture_plots
from pyrovae.plots import plot_gmm, plot_mixture_samples
from pyrovae.plots.canvas import MAX_COMPONENTS


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_plot_gmm_writes_png(tmp_path, covariance):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(50, 2), torch.randn(50, 2) + 4])
    model = GaussianMixture(2, 2, covariance)
    model.initialize(x)
    path = plot_gmm(model, x, tmp_path / "gmm.png")
    rgb = matplotlib.image.imread(path)[..., :3]
    assert rgb.shape[:2] == (600, 600)  # 6 × 6 inches at 100 dpi
    # both components are drawn in their colours (C0, C1): their points and ellipses
    for colour in ("#1f77b4", "#ff7f0e"):
        target = np.array(matplotlib.colors.to_rgb(colour))
        assert (np.abs(rgb - target).max(axis=-1) < 0.05).sum() > 100, colour


def test_all_pictures_of_a_one_component_gmm(tmp_path, digits):
    from pyrovae.plots import save_all

    model = GaussianMixture(1, 64)
    model.initialize(digits.train.x)
    paths = save_all(model, digits, {"epoch": [1], "train_elbo": [-1.0]}, tmp_path)
    assert paths and all(p.is_file() for p in paths)


def test_plot_gmm_needs_2d():
    with pytest.raises(ValueError, match="2-d"):
        plot_gmm(GaussianMixture(2, 3), torch.zeros(4, 3), "unused.png")


def test_plot_mixture_samples_writes_png(tmp_path):
    vae = VAE(16, 2, prior={"name": "mixture", "num_components": 3}, hidden=(8,))
    path = plot_mixture_samples(vae, (4, 4), tmp_path / "rows.png", per_component=5)
    rgb = matplotlib.image.imread(path)[..., :3]
    assert rgb.shape[:2] == (240, 400)  # (3 rows, 5 columns) × 0.8 inches at 100 dpi
    grey = np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).max(axis=-1) < 1e-6
    assert grey.all()  # decoder means drawn in grey levels
    with pytest.raises(ValueError, match="image_shape"):
        plot_mixture_samples(vae, (5, 5), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="prior='mixture'"):
        plot_mixture_samples(VAE(16, 2), (4, 4), tmp_path / "bad.png")


def test_pictures_of_many_components_draw_the_heaviest_rows(tmp_path):
    """A mixture of 1,150 components is drawn as 20 rows, those of the largest π_k (issue 34:
    one row per component ran out of memory), and a picture of ≤ 20 components is unchanged."""
    from pyrovae.models import MixtureOfLinearDecoders
    from pyrovae.plots.canvas import heaviest
    from pyrovae.plots.llgae import plot_components, plot_reconstructions

    torch.manual_seed(0)
    weights = torch.rand(1150)
    expected = np.sort(np.argsort(-weights.numpy(), kind="stable")[:MAX_COMPONENTS])
    assert heaviest(weights) == expected.tolist()
    assert heaviest(weights[:7]) == list(range(7))

    def shape(path):
        return matplotlib.image.imread(path).shape

    many = MixtureOfLinearDecoders(1150, 64, 2)
    few = MixtureOfLinearDecoders(MAX_COMPONENTS, 64, 2)
    x = torch.rand(30, 64)
    for plot in (plot_components, lambda m, s, p: plot_reconstructions(m, x, s, p)):
        assert shape(plot(many, (8, 8), tmp_path / "many.png")) == shape(
            plot(few, (8, 8), tmp_path / "few.png")
        )
    vaes = [VAE(16, 2, prior={"name": "mixture", "num_components": k}, hidden=(8,)) for k in
            (300, MAX_COMPONENTS)]  # fmt: skip
    assert shape(plot_mixture_samples(vaes[0], (4, 4), tmp_path / "a.png", per_component=3)) == (
        shape(plot_mixture_samples(vaes[1], (4, 4), tmp_path / "b.png", per_component=3))
    )


def test_plot_mixture_samples_of_many_components_shows_the_heaviest(tmp_path, monkeypatch):
    # 300 components once took minutes to lay out (issue 34's fuzz, case cli-291)
    vae = VAE(16, 2, prior={"name": "mixture", "num_components": 30}, hidden=(8,))
    with torch.no_grad():
        vae.prior.logits.copy_(torch.randn(30, generator=torch.Generator().manual_seed(0)))
    made = []
    figure = mixture_plots.figure
    monkeypatch.setattr(mixture_plots, "figure", lambda *a: made.append(figure(*a)) or made[-1])
    path = plot_mixture_samples(vae, (4, 4), tmp_path / "rows.png", per_component=5)
    assert matplotlib.image.imread(path).shape[:2] == (1600, 400)  # 20 rows of 0.8 inches
    weights = vae.prior.weights.detach()
    heaviest = sorted(range(30), key=lambda k: -weights[k])[:MAX_COMPONENTS]
    labels = [ax.get_ylabel() for ax in made[0][1][:, 0]]
    assert labels == [f"{weights[k]:.2f}" for k in sorted(heaviest)]
