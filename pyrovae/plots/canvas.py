"""The canvas every picture is drawn on, and image grids written pixel for pixel.

Nothing touches pyplot or the global matplotlib backend: charts are drawn on a ``Figure`` with
matplotlib's Agg canvas (:func:`figure`) and written by :func:`save`, grids of images are written
pixel for pixel (each image pixel becomes a ``scale × scale`` block, see :func:`image_scale`), so
everything works on machines without a display.

Images are given as rows ``(N, H*W)`` with values in [0, 1] (likelihood means) together with
``image_shape = (H, W)``; they are laid out with a one-pixel gap (:data:`PAD`).
"""

import math
from pathlib import Path

import matplotlib.image
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PAD = 1  # gap between images in a grid, in image pixels
GAP_VALUE = 0.5  # grey of the gaps, so that black and white images stay apart


def image_scale(image_shape):
    """Screen pixels per image pixel: about 80 screen pixels per image side (3 for 28×28)."""
    return max(1, round(80 / max(image_shape)))


def image_grid(images, image_shape, ncols):
    """Lay rows ``(N, H*W)`` out as one ``(rows*(H+PAD)+PAD, ncols*(W+PAD)+PAD)`` array, row-major.

    Empty cells (when N is not a multiple of ``ncols``) stay at the gap grey.
    """
    h, w = check_images(images, image_shape)
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


def check_images(images, image_shape):
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


def figure(width, height, nrows=None, ncols=None):
    """A ``width × height`` inch figure on the Agg canvas and its axes: one ``Axes``, or a
    ``(nrows, ncols)`` array of them when ``nrows`` is given."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    if nrows is None:
        return fig, fig.add_subplot()
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save(fig, path):
    """Write ``fig`` as the PNG ``path`` (its folder created) and return ``path``."""
    fig.savefig(_png(path))
    return path


def _png(path):
    """Check that ``path`` names a PNG and create its folder."""
    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"pictures are written as PNG; give a path ending in .png, got {path}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path
