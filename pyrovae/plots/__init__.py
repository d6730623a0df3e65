"""Pictures of trained models, written as PNG files without a display.

:func:`save_all` asks the model what it offers (:mod:`pyrovae.models.contract`): every
model with ``sample``/``reconstruct`` gets samples and reconstructions on image data, one
with a 2-d ``encode`` a latent scatter,
and a model lists its own pictures by name in its ``pictures`` attribute (the keys of
:data:`MODEL_PICTURES`: ``"mixture_components"``, ``"gmm"``, ``"linear_components"``,
``"reconstructions_by_component"``, ``"samples_by_label"``,
``"reconstructions_with_labels"``).

Modules: :mod:`.canvas` (figures, saving, image grids), :mod:`.images` (any model),
:mod:`.mixture` (mixtures), :mod:`.llgae` (mixtures of linear decoders), :mod:`.labels`
(models that learn from labels).
"""

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data import Data
from ..models import contract
from .canvas import PAD, image_grid, image_scale, save_image_grid
from .images import (
    latent_grid,
    latent_grid_points,
    latent_scatter,
    learning_curves,
    reconstructions,
    sample_grid,
)
from .labels import reconstructions_with_labels, samples_by_label
from .llgae import plot_components, plot_reconstructions
from .mixture import plot_gmm, plot_mixture_samples

# name → (file, draw(model, data, rows, path)); ``rows`` is the first of test/valid/train
Draw = Callable[[Any, Any, Any, Path], Path]  # (model, Data, its first split, path)
MODEL_PICTURES: dict[str, tuple[str, Draw]] = {
    "mixture_components": (
        "components.png",
        lambda model, data, rows, path: plot_mixture_samples(model, data.image_shape, path),
    ),
    "gmm": ("gmm.png", lambda model, data, rows, path: plot_gmm(model, data.train.x, path)),
    "linear_components": (
        "components.png",
        lambda model, data, rows, path: plot_components(model, data.image_shape, path),
    ),
    "reconstructions_by_component": (
        "reconstructions_by_component.png",
        lambda model, data, rows, path: plot_reconstructions(
            model, rows.x[:1000], data.image_shape, path
        ),
    ),
    "samples_by_label": (
        "samples_by_label.png",
        lambda model, data, rows, path: samples_by_label(model, data.image_shape, path),
    ),
    "reconstructions_with_labels": (
        "reconstructions.png",
        lambda model, data, rows, path: reconstructions_with_labels(
            model, rows.x[:10], rows.y[:10], data.image_shape, path
        ),
    ),
}
IMAGE_PICTURES = set(MODEL_PICTURES) - {"gmm"}


def save_all(
    model: object,
    data: Data,
    history: Mapping[str, Sequence[Any]],
    out: str | os.PathLike[str],
    n: int = 64,
) -> list[Path]:
    """Write the pictures that ``model`` offers for ``data`` into the folder ``out``.

    ``learning_curves.png`` always; on image data (``data.image_shape``) ``samples.png`` (``n``
    draws) and ``reconstructions.png`` (10 test rows) when the model has ``sample`` and
    ``reconstruct``; with a 2-d latent space and labels ``latent_scatter.png`` (test
    encodings by label) and, when the prior lives on R², ``latent_grid.png`` (decoded normal
    quantiles), the encoder's pictures only for an amortised guide (``model.amortized``, not an
    autoguide's per-row posteriors); then each picture named in ``model.pictures``
    (:data:`MODEL_PICTURES`), those of images only on image data. A model that
    ``uses_labels`` (its ``encode``, ``sample`` and ``reconstruct`` need y) gets only its own
    pictures besides the learning curves. Returns the paths.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = next(s for s in (data.test, data.valid, data.train) if s is not None)
    shape = data.image_shape
    paths = [learning_curves(history, out / "learning_curves.png")]
    generic = not contract.uses_labels(model)
    encodes = contract.amortized(model) and generic
    if generic and shape is not None and isinstance(model, contract.Samples):
        paths.append(sample_grid(model, n, shape, out / "samples.png"))
    if shape is not None and isinstance(model, contract.Reconstructs) and encodes:
        paths.append(reconstructions(model, rows.x[:10], shape, out / "reconstructions.png"))
    if (
        isinstance(model, contract.Encodes)
        and model.latent_dim == 2
        and encodes
        and rows.y is not None
    ):
        paths.append(latent_scatter(model, rows.x, rows.y, out / "latent_scatter.png"))
        if shape is not None and contract.latent_on_reals(model):
            paths.append(latent_grid(model, shape, out / "latent_grid.png"))
    for name in contract.pictures(model):
        if shape is not None or name not in IMAGE_PICTURES:
            file, draw = MODEL_PICTURES[name]
            paths.append(draw(model, data, rows, out / file))
    return paths


__all__ = [
    "MODEL_PICTURES",
    "PAD",
    "image_grid",
    "image_scale",
    "latent_grid",
    "latent_grid_points",
    "latent_scatter",
    "learning_curves",
    "plot_components",
    "plot_gmm",
    "plot_mixture_samples",
    "plot_reconstructions",
    "reconstructions",
    "reconstructions_with_labels",
    "sample_grid",
    "samples_by_label",
    "save_all",
    "save_image_grid",
]
