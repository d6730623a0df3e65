"""Pictures of a trained model: samples, reconstructions, learning curves and the latent space.

Every function writes one PNG to ``path`` (creating its folder) and returns ``path``. Nothing
touches pyplot or the global matplotlib backend: grids of images are written pixel for pixel
(each image pixel becomes a ``scale × scale`` block, see :func:`image_scale`), charts are drawn
on a ``Figure`` with matplotlib's Agg canvas, so they work on machines without a display.

Images are given as rows ``(N, H*W)`` with values in [0, 1] (likelihood means) together with
``image_shape = (H, W)``; they are laid out with a one-pixel gap (:data:`PAD`).
"""

import math
from pathlib import Path

import matplotlib.image
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch.distributions import constraints

from .checks import device_dtype, positive_int

PAD = 1  # gap between images in a grid, in image pixels
GAP_VALUE = 0.5  # grey of the gaps, so that black and white images stay apart


def image_scale(image_shape):
    """Screen pixels per image pixel: about 80 screen pixels per image side (3 for 28×28)."""
    return max(1, round(80 / max(image_shape)))


def image_grid(images, image_shape, ncols):
    """Lay rows ``(N, H*W)`` out as one ``(rows*(H+PAD)+PAD, ncols*(W+PAD)+PAD)`` array, row-major.

    Empty cells (when N is not a multiple of ``ncols``) stay at the gap grey.
    """
    h, w = _check_images(images, image_shape)
    images = images.detach().cpu().double().reshape(-1, h, w).clamp(0, 1).numpy()
    nrows = math.ceil(len(images) / ncols)
    grid = np.full((nrows * (h + PAD) + PAD, ncols * (w + PAD) + PAD), GAP_VALUE)
    for k, image in enumerate(images):
        i, j = divmod(k, ncols)
        top, left = PAD + i * (h + PAD), PAD + j * (w + PAD)
        grid[top : top + h, left : left + w] = image
    return grid


def save_image_grid(images, image_shape, path, ncols):
    """Write :func:`image_grid` as a grey-scale PNG (white = 1), each pixel ``image_scale`` wide."""
    grid = image_grid(images, image_shape, ncols)
    s = image_scale(image_shape)
    grid = np.kron(grid, np.ones((s, s)))
    matplotlib.image.imsave(_png(path), grid, cmap="gray", vmin=0.0, vmax=1.0)
    return path


def sample_grid(model, n, image_shape, path):
    """``n`` samples ``model.sample(n)`` (likelihood means of z ~ p(z)) in a square-ish grid."""
    positive_int("n", n)
    return save_image_grid(model.sample(n), image_shape, path, ncols=math.ceil(math.sqrt(n)))


def reconstructions(model, x, image_shape, path):
    """The rows ``x`` ``(N, H*W)`` in the top row, ``model.reconstruct(x)`` below each."""
    recon = model.reconstruct(x)
    return save_image_grid(torch.cat([x.to(recon), recon]), image_shape, path, ncols=len(x))


def learning_curves(history, path):
    """Train, validation and test ELBO per epoch from the history :func:`pyrovae.fit` returns.

    ``None`` entries (a split that does not exist) are left out. The training ELBO is the
    β-weighted objective while KL warm-up lasts.
    """
    fig, ax = _figure(6.0, 4.0)
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
    return _save(fig, path)


def latent_scatter(model, x, y, path):
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
    fig, ax = _figure(6.0, 5.5)
    labels = y.unique().tolist()
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    for k, label in enumerate(labels):
        mask = y == label
        ax.scatter(*z[mask].T, s=4, color=cmap(k % cmap.N), label=str(label), alpha=0.7)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(markerscale=3, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def latent_grid_points(n=15):
    """The ``(n*n, 2)`` latents of :func:`latent_grid`, row-major from the top-left cell.

    Cell (i, j) holds z = (q_j, q_{n-1-i}) with q = Φ⁻¹(linspace(0.05, 0.95, n)), the standard
    normal quantiles: z_1 grows to the right and z_2 upwards, as in Kingma & Welling 2014, Fig. 4.
    """
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))
    z2, z1 = torch.meshgrid(q.flip(0), q, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)


def latent_grid(model, image_shape, path, n=15):
    """``model.decode(z)`` on an ``n × n`` grid of :func:`latent_grid_points` (2-d, real z)."""
    if getattr(model, "latent_dim", 2) != 2:
        raise ValueError(
            f"latent_grid needs a 2-d latent space, the model has latent_dim={model.latent_dim}"
        )
    z = latent_grid_points(n).to(*device_dtype(model))
    return save_image_grid(model.decode(z), image_shape, path, ncols=n)


def save_all(model, data, history, out, n=64):
    """Write the pictures that apply to ``model`` and ``data`` into the folder ``out``.

    ``samples.png``, ``reconstructions.png`` (10 test rows) when the data are images
    (``data.image_shape``); ``learning_curves.png`` always; ``latent_scatter.png`` (test
    encodings by label) and ``latent_grid.png`` when the model has a 2-d latent space, labels
    exist and the prior lives on R² (the grid runs over normal quantiles); for a mixture of
    linear decoders on images also ``components.png`` and ``reconstructions_by_component.png``
    (:mod:`pyrovae.plots_llgae`). Returns the paths.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = next(s for s in (data.test, data.valid, data.train) if s is not None)
    shape = data.image_shape
    paths = [learning_curves(history, out / "learning_curves.png")]
    if shape is not None:
        paths.append(sample_grid(model, n, shape, out / "samples.png"))
        paths.append(reconstructions(model, split.x[:10], shape, out / "reconstructions.png"))
    if getattr(model, "latent_dim", None) == 2 and split.y is not None:
        paths.append(latent_scatter(model, split.x, split.y, out / "latent_scatter.png"))
        real = getattr(getattr(model, "prior", None), "support", None) is constraints.real
        if shape is not None and real:
            paths.append(latent_grid(model, shape, out / "latent_grid.png"))
    from .models import MixtureOfLinearDecoders

    if shape is not None and isinstance(model, MixtureOfLinearDecoders):
        from .plots_llgae import plot_components, plot_reconstructions

        paths.append(plot_components(model, shape, out / "components.png"))
        path = out / "reconstructions_by_component.png"
        paths.append(plot_reconstructions(model, split.x[:1000], shape, path))
    return paths


def _check_images(images, image_shape):
    if image_shape is None or len(image_shape) != 2:
        raise ValueError(
            f"image_shape must be (height, width), got {image_shape!r}; pictures of samples need "
            "image data (Data.image_shape is None for plain vectors)"
        )
    h, w = (int(s) for s in image_shape)
    if images.dim() != 2 or images.shape[1] != h * w:
        raise ValueError(
            f"images must be rows of shape (N, {h * w}) for image_shape {tuple(image_shape)}, "
            f"got {tuple(images.shape)}"
        )
    return h, w


def _figure(width, height):
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path):
    fig.savefig(_png(path))
    return path


def _png(path):
    """Check that ``path`` names a PNG and create its folder."""
    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"pictures are written as PNG; give a path ending in .png, got {path}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path
