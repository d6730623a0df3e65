"""The size of a model's data plate."""

import torch

from ..checks import positive_int


def batch_rows(x: torch.Tensor | None, batch_size: int | None = None) -> int:
    """The size of the data plate: the rows of ``x``, or ``batch_size`` (default 1) when a
    model generates ``x``."""
    if x is not None:
        return x.shape[0]
    if batch_size is None:
        return 1
    return positive_int("batch_size", batch_size)
