"""Pictures of the models that learn from labels (conditional and semi-supervised VAEs)."""

import pyro
import torch

from ..models import ConditionalVAE
from .canvas import ImageShape, P, save_image_grid


def samples_by_label(
    model: ConditionalVAE, image_shape: ImageShape, path: P, per_label: int = 8
) -> P:
    """A grid with one column per label y = 0 … K-1: means of p(x | z, y) for ``per_label``
    draws of z ~ p(z), the same z in each row, so that a row shows one style in every class."""
    k = model.num_classes
    if k is None:
        raise ValueError("samples_by_label lays out labels: the model conditions on real vectors")
    with torch.no_grad(), pyro.plate("data", per_label):
        z = model.prior("z").repeat_interleave(k, 0)
    y = torch.arange(k, device=z.device).repeat(per_label)
    return save_image_grid(model.decode(z, y), image_shape, path, ncols=k)


def reconstructions_with_labels(
    model: ConditionalVAE, x: torch.Tensor, y: torch.Tensor, image_shape: ImageShape, path: P
) -> P:
    """The rows ``x`` on top, ``model.reconstruct(x, y)`` below each."""
    recon = model.reconstruct(x, y)
    return save_image_grid(torch.cat([x.to(recon), recon]), image_shape, path, ncols=len(x))
