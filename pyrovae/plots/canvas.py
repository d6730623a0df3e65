"""The canvas every picture is drawn on, and image grids through torchvision.

Nothing touches pyplot or the global matplotlib backend: charts are drawn on a ``Figure`` with
matplotlib's Agg canvas (:func:`figure`) and written by :func:`save`; grids of images are laid
out by ``torchvision.utils.make_grid`` and written by ``torchvision.utils.save_image``, each
image pixel enlarged to a ``scale × scale`` block (:func:`image_scale`), so everything works on
machines without a display.

Images are given as rows ``(N, C·H·W)`` with values in [0, 1] (likelihood means) together with
``image_shape``: ``(H, W)`` for grey levels or ``(C, H, W)`` with C = 3 (RGB) or 4 (RGBA), as
``Data.image_shape`` has them; they are laid out with a one-pixel gap (:data:`PAD`) of grey
:data:`GAP_VALUE`. Grids are RGB(A): a grey image is drawn in its three equal channels.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import torch
import torchvision.utils
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

P = TypeVar("P", bound=str | os.PathLike[str])
"""Where a picture goes: a path, returned as given."""
ImageShape = Sequence[int]
"""``(H, W)`` of grey images or ``(C, H, W)`` (C = 3 or 4) of colour ones."""

MAX_COMPONENTS = 20
"""A picture with one row per mixture component draws at most this many rows: the heaviest
components (:func:`heaviest`), so that a mixture of thousands of components draws in seconds
and bounded memory."""

PAD = 1  # gap between images in a grid, in image pixels
GAP_VALUE = 0.5  # grey of the gaps, so that black and white images stay apart


def heaviest(weights: torch.Tensor, limit: int = MAX_COMPONENTS) -> list[int]:
    """The indices k of the ``limit`` largest mixture weights π_k ``(K,)``, in increasing k
    (all K when K ≤ ``limit``)."""
    chosen = weights.detach().topk(min(limit, len(weights))).indices
    return sorted(chosen.tolist())


def rows_title(shown: int, total: int) -> str:
    """What a per-component picture shows: all ``total`` components, or the heaviest ``shown``."""
    return f"{total} components" if shown == total else f"the {shown} heaviest of {total}"


def image_scale(image_shape: ImageShape) -> int:
    """Screen pixels per image pixel: about 80 screen pixels per image side (3 for 28×28)."""
    return max(1, round(80 / max(image_shape[-2:])))


def image_grid(images: torch.Tensor, image_shape: ImageShape, ncols: int) -> torch.Tensor:
    """Lay rows ``(N, C·H·W)`` out row-major, ``ncols`` to a row (or N when fewer), with
    ``torchvision.utils.make_grid``: a ``(C', rows·(H+PAD)+PAD, ncols·(W+PAD)+PAD)`` tensor in
    [0, 1], C' = 3 for grey and RGB images, 4 for RGBA. Empty cells (when N is not a multiple
    of ``ncols``) stay at the gap grey."""
    c, h, w = check_images(images, image_shape)
    images = images.detach().cpu().float().reshape(-1, c, h, w).clamp(0, 1)
    grid = torchvision.utils.make_grid(images, nrow=ncols, padding=PAD, pad_value=GAP_VALUE)
    if len(images) == 1:  # make_grid returns a lone image as it is: frame it alike
        grid = torch.nn.functional.pad(grid.expand(max(c, 3), h, w), (PAD,) * 4, value=GAP_VALUE)
    return grid


def save_image_grid(images: torch.Tensor, image_shape: ImageShape, path: P, ncols: int) -> P:
    """Write :func:`image_grid` as an RGB(A) PNG (``torchvision.utils.save_image``: value v
    becomes the byte round(255 v)), each image pixel ``image_scale`` screen pixels wide."""
    grid = image_grid(images, image_shape, ncols)
    s = image_scale(image_shape)
    grid = grid.repeat_interleave(s, 1).repeat_interleave(s, 2)
    torchvision.utils.save_image(grid, _png(path), padding=0)
    return path


def check_images(images: torch.Tensor, image_shape: ImageShape | None) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``image_shape`` (C = 1 for ``(H, W)``), after checking that ``images``
    are rows of that many values."""
    shape = None if image_shape is None else tuple(int(s) for s in image_shape)
    if shape is None or len(shape) not in (2, 3) or (len(shape) == 3 and shape[0] not in (3, 4)):
        raise ValueError(
            f"image_shape must be (height, width) or (3 or 4 channels, height, width), got "
            f"{image_shape!r}; pictures of samples need image data (Data.image_shape is None "
            "for plain vectors)"
        )
    c, h, w = shape if len(shape) == 3 else (1, *shape)
    if images.dim() != 2 or images.shape[1] != c * h * w:
        raise ValueError(
            f"images must be rows of shape (N, {c * h * w}) for image_shape {shape}, "
            f"got {tuple(images.shape)}"
        )
    return c, h, w


def show_image(ax: Axes, row: torch.Tensor, image_shape: ImageShape, signed: bool = False) -> None:
    """Draw one row ``(C·H·W,)`` as an image on the axes ``ax``, without ticks: grey levels in
    [0, 1] (black to white) or RGB(A). With ``signed``, a direction rather than an image: grey
    levels on a red-blue scale symmetric about 0, colour channels as 0.5 + v / (2 max|v|)
    (grey where v = 0)."""
    c, h, w = check_images(row.reshape(1, -1), image_shape)
    image = row.detach().cpu().float().reshape(c, h, w)
    limit = float(image.abs().max()) or 1.0
    if c == 1:
        grey: dict[str, Any] = {"cmap": "gray", "vmin": 0, "vmax": 1}
        style = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit} if signed else {}
        ax.imshow(image[0].numpy(), **(grey | style))
    else:
        image = 0.5 + image / (2 * limit) if signed else image.clamp(0, 1)
        ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


@overload
def figure(width: float, height: float) -> tuple[Figure, Axes]: ...
@overload
def figure(width: float, height: float, nrows: int, ncols: int) -> tuple[Figure, Any]: ...
def figure(
    width: float, height: float, nrows: int | None = None, ncols: int | None = None
) -> tuple[Figure, Any]:
    """A ``width × height`` inch figure on the Agg canvas and its axes: one ``Axes``, or a
    ``(nrows, ncols)`` array of them when ``nrows`` is given."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    if nrows is None:
        return fig, fig.add_subplot()
    return fig, fig.subplots(nrows, 1 if ncols is None else ncols, squeeze=False)


def save(fig: Figure, path: P) -> P:
    """Write ``fig`` as the PNG ``path`` (its folder created) and return ``path``."""
    fig.savefig(_png(path))
    return path


def _png(path: P) -> P:
    """Check that ``path`` names a PNG and create its folder."""
    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"pictures are written as PNG; give a path ending in .png, got {path}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path
