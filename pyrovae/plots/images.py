"""Pictures of any model with images: samples, reconstructions, learning curves, latent space.

Every function writes one PNG to ``path`` (creating its folder) and returns ``path``; images
are drawn as :mod:`.canvas` lays them out (``image_shape``: ``(H, W)`` grey or ``(C, H, W)``
colour, as ``Data.image_shape``).
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import torch

from ..checks import device_dtype, positive_int
from ..models import contract
from .canvas import ImageShape, P, figure, save, save_image_grid


def sample_grid(model: contract.Samples, n: int, image_shape: ImageShape, path: P) -> P:
    """``n`` samples ``model.sample(n)`` (likelihood means of z ~ p(z)) in a square-ish grid."""
    positive_int("n", n)
    return save_image_grid(model.sample(n), image_shape, path, ncols=math.ceil(math.sqrt(n)))


def reconstructions(
    model: contract.Reconstructs, x: torch.Tensor, image_shape: ImageShape, path: P
) -> P:
    """The rows ``x`` ``(N, C·H·W)`` in the top row, ``model.reconstruct(x)`` below each."""
    recon = model.reconstruct(x)
    return save_image_grid(torch.cat([x.to(recon), recon]), image_shape, path, ncols=len(x))


def learning_curves(history: Mapping[str, Sequence[Any]], path: P) -> P:
    """Train, validation and test ELBO per epoch from the history :func:`pyrovae.fit` returns.

    ``None`` entries (a split that does not exist) are left out. The training ELBO is the
    β-weighted objective while KL warm-up lasts.
    """
    fig, ax = figure(6.0, 4.0)
    drawn = 0
    for key, label in (
        ("train_elbo", "train (β-weighted during warm-up)"),
        ("valid_elbo", "validation"),
        ("test_elbo", "test"),
    ):
        points = [(e, v) for e, v in zip(history["epoch"], history.get(key, ()), strict=False)]
        points = [(e, v) for e, v in points if v is not None]
        if points:
            ax.plot(
                *zip(*points, strict=True), marker="." if len(points) < 30 else None, label=label
            )
            drawn += 1
    if not drawn:
        raise ValueError("the history holds no ELBO values; pass the dict pyrovae.fit returned")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per example)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def latent_scatter(model: contract.Encodes, x: torch.Tensor, y: torch.Tensor, path: P) -> P:
    """Encodings ``model.encode(x)`` of a 2-d latent space, one colour per label ``y`` ``(N,)``."""
    z = model.encode(x).detach().cpu()
    if z.dim() != 2 or z.shape[1] != 2:
        raise ValueError(
            f"latent_scatter draws a 2-d latent space, got encodings of shape {tuple(z.shape)}; "
            "train a model with latent_dim=2"
        )
    y = torch.as_tensor(y).cpu()
    if y.shape != z.shape[:1]:
        raise ValueError(f"need one label per row of x ({z.shape[0]}), got {tuple(y.shape)}")
    fig, ax = figure(6.0, 5.5)
    labels = y.unique().tolist()
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    for k, label in enumerate(labels):
        mask = y == label
        ax.scatter(z[mask, 0], z[mask, 1], s=4, color=cmap(k % cmap.N), label=str(label), alpha=0.7)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(markerscale=3, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, path)


def latent_grid_points(n: int = 15) -> torch.Tensor:
    """The ``(n*n, 2)`` latents of :func:`latent_grid`, row-major from the top-left cell.

    Cell (i, j) holds z = (q_j, q_{n-1-i}) with q = Φ⁻¹(linspace(0.05, 0.95, n)), the standard
    normal quantiles: z_1 grows to the right and z_2 upwards, as in Kingma & Welling 2014, Fig. 4.
    """
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))
    z2, z1 = torch.meshgrid(q.flip(0), q, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)


def latent_grid(model: Any, image_shape: ImageShape, path: P, n: int = 15) -> P:
    """``model.decode(z)`` on an ``n × n`` grid of :func:`latent_grid_points` (a model with
    ``latent_dim`` 2 and real z: :class:`~pyrovae.models.contract.Encodes`)."""
    if model.latent_dim != 2:
        raise ValueError(
            f"latent_grid needs a 2-d latent space, the model has latent_dim={model.latent_dim}"
        )
    z = latent_grid_points(n).to(*device_dtype(model))
    return save_image_grid(model.decode(z), image_shape, path, ncols=n)
