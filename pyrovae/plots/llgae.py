"""Pictures of a mixture of linear decoders (matplotlib, written as PNG without a display).

Both draw one row per component, for at most :data:`~pyrovae.plots.canvas.MAX_COMPONENTS`
components: the heaviest by π_k (:func:`~pyrovae.plots.canvas.heaviest`).

* :func:`plot_components`: one row per component k: its mean μ_k, then its first principal
  directions — the left singular vectors u_j of W_k, shown as μ_k ± c·s_j u_j with s_j the
  singular value (so a row reads as "the mean and how it varies"), plus the direction alone.
* :func:`plot_reconstructions`: one row per component: test images the model assigns to it,
  each next to its reconstruction.
"""

import torch

from ..models import MixtureOfLinearDecoders
from .canvas import ImageShape, P, figure, heaviest, rows_title, save, show_image


def plot_components(
    model: MixtureOfLinearDecoders,
    image_shape: ImageShape,
    path: P,
    num_directions: int = 3,
    spread: float = 2.0,
) -> P:
    """Save a grid: row k = [μ_k, then for j < ``num_directions``: u_j, μ_k − c s_j u_j,
    μ_k + c s_j u_j] with c = ``spread``; returns ``path``.

    :param model: a :class:`~pyrovae.models.MixtureOfLinearDecoders` (K components, E ≥ 1).
    :param tuple image_shape: ``(height, width)`` or ``(channels, height, width)`` with their
        product = D (``Data.image_shape``). A direction u_j is drawn on a red-blue scale (grey
        images) or as 0.5 + u_j / (2 max|u_j|) per channel (colour), grey where it is 0.
    """
    weights, locs, bases = model.weights.detach(), model.locs.detach(), model.bases.detach()
    shown, J = heaviest(weights), min(num_directions, bases.shape[-1])
    fig, axes = figure(1.2 * (1 + 3 * J), 1.3 * len(shown), len(shown), 1 + 3 * J)
    for row, k in enumerate(shown):
        mean = locs[k].cpu()
        U, S, _ = torch.linalg.svd(bases[k].cpu(), full_matrices=False)
        show_image(axes[row, 0], mean, image_shape)
        axes[row, 0].set_ylabel(f"k={k}\nπ={weights[k]:.2f}", fontsize=8)
        for j in range(J):
            cells = (U[:, j], mean - spread * S[j] * U[:, j], mean + spread * S[j] * U[:, j])
            for i, image in enumerate(cells):
                show_image(axes[row, 1 + 3 * j + i], image, image_shape, signed=i == 0)
            if row == 0:
                axes[0, 1 + 3 * j].set_title(f"u{j + 1}", fontsize=8)
                axes[0, 2 + 3 * j].set_title(f"− {spread:g}s{j + 1}", fontsize=8)
                axes[0, 3 + 3 * j].set_title(f"+ {spread:g}s{j + 1}", fontsize=8)
    axes[0, 0].set_title("mean", fontsize=8)
    fig.suptitle(rows_title(len(shown), len(weights)), fontsize=9)
    return save(fig, path)


def plot_reconstructions(
    model: MixtureOfLinearDecoders,
    x: torch.Tensor,
    image_shape: ImageShape,
    path: P,
    per_component: int = 4,
) -> P:
    """Save a grid: row k = up to ``per_component`` rows of ``x`` that the guide assigns to
    component k, each as (original, reconstruction); returns ``path``."""
    with torch.no_grad():
        k = model.assign(x)
        recon = model.reconstruct(x)
    shown = heaviest(model.weights)
    fig, axes = figure(1.1 * 2 * per_component, 1.2 * len(shown), len(shown), 2 * per_component)
    for row, component in enumerate(shown):
        members = (k == component).nonzero()[:per_component, 0].tolist()
        for col in range(per_component):
            left, right = axes[row, 2 * col], axes[row, 2 * col + 1]
            left.axis("off")
            right.axis("off")
            if col < len(members):
                show_image(left, x[members[col]].cpu(), image_shape)
                show_image(right, recon[members[col]].cpu(), image_shape)
        axes[row, 0].axis("on")
        axes[row, 0].set_xticks([])
        axes[row, 0].set_yticks([])
        axes[row, 0].set_ylabel(f"k={component}", fontsize=8)
    for col in range(per_component):
        axes[0, 2 * col].set_title("x", fontsize=8)
        axes[0, 2 * col + 1].set_title("recon.", fontsize=8)
    return save(fig, path)
