"""Pictures of the models that learn from labels (conditional and semi-supervised VAEs)."""

from pathlib import Path

import pyro
import torch

from .canvas import save_image_grid
from .images import learning_curves


def samples_by_label(model, image_shape, path, per_label=8):
    """A grid with one column per label y = 0 … K-1: means of p(x | z, y) for ``per_label``
    draws of z ~ p(z), the same z in each row, so that a row shows one style in every class."""
    k = model.num_classes
    with torch.no_grad(), pyro.plate("data", per_label):
        z = model.prior("z").repeat_interleave(k, 0)
    y = torch.arange(k, device=z.device).repeat(per_label)
    return save_image_grid(model.decode(z, y), image_shape, path, ncols=k)


def reconstructions_with_labels(model, x, y, image_shape, path):
    """The rows ``x`` on top, ``model.reconstruct(x, y)`` below each."""
    recon = model.reconstruct(x, y)
    return save_image_grid(torch.cat([x.to(recon), recon]), image_shape, path, ncols=len(x))


def save_label_pictures(model, data, history, out):
    """``learning_curves.png`` always; on images ``samples_by_label.png`` and
    ``reconstructions.png`` (10 test rows given their labels). Returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [learning_curves(history, out / "learning_curves.png")]
    split = next(s for s in (data.test, data.valid, data.train) if s is not None)
    if data.image_shape is not None:
        paths.append(samples_by_label(model, data.image_shape, out / "samples_by_label.png"))
        x, y = split.x[:10], split.y[:10]
        path = out / "reconstructions.png"
        paths.append(reconstructions_with_labels(model, x, y, data.image_shape, path))
    return paths
