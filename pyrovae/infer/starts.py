"""Starts: what :func:`pyrovae.fit` does to a fresh model on its training rows before the first
step (never on a resume, which restores the trained parameters instead).

* A model with its own ``initialize(x, seed)`` (:class:`~pyrovae.models.contract.Initializes`:
  the Gaussian mixture's EM start, the mixture of linear decoders' PPCA start) runs it.
* A mixture-prior VAE runs VaDE's recipe (:func:`pyrovae.models.vade.vade_start`: auto-encoder,
  then a Gaussian mixture on its codes as the prior) for its ``pretrain_epochs``; ``None``, the
  default of a mixture prior, is as many epochs as make :data:`DEFAULT_PRETRAIN_STEPS`
  batches of :data:`~pyrovae.models.vade.PRETRAIN_BATCH_SIZE` rows.

The recipe lives here, outside the VAE class: the model records the option, the trainer
applies it.
"""

import math

import torch

from ..models import VAE, vade
from ..models.contract import Initializes, has_clusters

DEFAULT_PRETRAIN_STEPS = 3000
"""A mixture-prior VAE pretrains its auto-encoder for as many epochs as make this many
batches of 100 rows, unless told otherwise (8×8 digits: 250 epochs; MNIST: 5)."""


def vade_epochs(vae: VAE, rows: int) -> int:
    """The epochs of VaDE's pretraining for ``vae`` on ``rows`` training rows (0: none)."""
    epochs = vae.pretrain_epochs
    if epochs is None and has_clusters(vae):
        batches = math.ceil(rows / vade.PRETRAIN_BATCH_SIZE)
        epochs = math.ceil(DEFAULT_PRETRAIN_STEPS / batches)
    return epochs or 0


def needed(model: object, rows: int) -> bool:
    """Whether ``model`` has a start to run on ``rows`` training rows, so that a fresh run reads
    its training rows (all of them, which may be larger than memory) only when it does."""
    return isinstance(model, Initializes) or (
        isinstance(model, VAE) and vade_epochs(model, rows) > 0
    )


def start(model: object, x: torch.Tensor, seed: int = 0) -> None:
    """Start ``model`` on the training rows ``x`` ``(N, D)`` (see the module docstring)."""
    if isinstance(model, Initializes):
        model.initialize(x, seed)
    elif isinstance(model, VAE):
        epochs = vade_epochs(model, len(x))
        if epochs:
            vade.vade_start(model, x, epochs=epochs, seed=seed)
