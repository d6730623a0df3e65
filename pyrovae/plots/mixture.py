"""Pictures of mixtures: a 2-d Gaussian mixture with its components, mixture-VAE samples.

Each function writes one PNG (:mod:`~pyrovae.plots.canvas`) and returns the path it wrote.
"""

import numpy as np
import torch
from matplotlib.patches import Ellipse

from ..models import VAE, GaussianMixture
from .canvas import ImageShape, P, figure, heaviest, rows_title, save, show_image


@torch.no_grad()
def plot_gmm(model: GaussianMixture, x: torch.Tensor, path: P, num_std: float = 2.0) -> P:
    """2-d data ``x`` ``(N, 2)``, points coloured by MAP assignment, each component drawn as its
    ``num_std``-σ ellipse: the set {x : (x − μ_k)ᵀ Σ_k⁻¹ (x − μ_k) = num_std²}, with half-axes
    num_std √λ along the eigenvectors of Σ_k, and its centre as a cross."""
    if model.input_dim != 2:
        raise ValueError(
            f"plot_gmm draws 2-d data, the model has dim={model.input_dim}; project the data "
            "to 2 dimensions (e.g. PCA) and fit a 2-d mixture to picture it"
        )
    x = x.to(model.locs)
    labels = model.assign(x).cpu().numpy()
    cov = (model.scale_tril @ model.scale_tril.transpose(-1, -2)).cpu().double().numpy()
    locs, weights = model.locs.cpu().numpy(), model.weights.cpu().numpy()
    fig, ax = figure(6.0, 6.0)
    colours = [f"C{k % 10}" for k in range(model.num_components)]
    xy = x.cpu().numpy()
    ax.scatter(xy[:, 0], xy[:, 1], s=4, c=[colours[k] for k in labels], alpha=0.5, linewidths=0)
    for k in range(model.num_components):
        eigval, eigvec = np.linalg.eigh(cov[k])
        angle = np.degrees(np.arctan2(eigvec[1, 1], eigvec[0, 1]))
        width, height = 2 * num_std * np.sqrt(eigval[::-1])
        ax.add_patch(
            Ellipse(locs[k], width, height, angle=angle, fill=False, color=colours[k], lw=1.5)
        )
        ax.plot(*locs[k], "x", color="black")
        ax.annotate(f"{weights[k]:.2f}", locs[k], textcoords="offset points", xytext=(4, 4))
    ax.set_title(f"{model.num_components} components ({model.covariance}), {num_std:g}σ ellipses")
    ax.set_aspect("equal", adjustable="datalim")
    return save(fig, path)


@torch.no_grad()
def plot_mixture_samples(
    vae: VAE, image_shape: ImageShape | None, path: P, per_component: int = 10, seed: int = 0
) -> P:
    """Mixture-prior VAE: row k shows decoder means of ``per_component`` draws
    z ~ N(μ_k, Σ_k) from component k; the row label is its weight π_k. At most
    :data:`~pyrovae.plots.canvas.MAX_COMPONENTS` rows: the heaviest components. ``image_shape``:
    ``(H, W)`` or ``(C, H, W)``, as ``Data.image_shape``."""
    prior = vae.prior
    if not vae.has_clusters:
        raise ValueError("plot_mixture_samples needs a VAE built with prior='mixture'")
    if image_shape is None or int(np.prod(image_shape)) != vae.input_dim:
        raise ValueError(
            f"image_shape {image_shape} does not match input_dim={vae.input_dim}; pass the data "
            "set's image_shape, e.g. (28, 28) for MNIST"
        )
    gen = torch.Generator().manual_seed(seed)
    shown = heaviest(prior.weights)
    k = len(shown)
    tril = prior.scale_tril[shown]  # (k, d, d)
    eps = torch.randn(k, per_component, vae.latent_dim, generator=gen).to(tril)
    z = prior.locs[shown][:, None, :] + eps @ tril.mT
    images = vae.decode(z.reshape(-1, vae.latent_dim)).reshape(k, per_component, -1)
    weights = prior.weights.cpu().numpy()
    fig, axes = figure(per_component * 0.8, k * 0.8, k, per_component)
    for i, component in enumerate(shown):
        for j in range(per_component):
            show_image(axes[i, j], images[i, j], image_shape)
        axes[i, 0].set_ylabel(f"{weights[component]:.2f}", rotation=0, ha="right", va="center")
    what = rows_title(k, prior.num_components)
    fig.suptitle(f"one row per mixture component, {what} (row label: weight)")
    return save(fig, path)
