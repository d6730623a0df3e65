"""Deprecated home of VaDE's start: use :mod:`pyrovae.models.vade`, or simply
``VAE(..., prior="mixture")``, whose ``pretrain_epochs`` (on by default) runs it inside
:func:`pyrovae.fit`. This module will be removed in the next release."""

import warnings

from ..models import vade

warnings.warn(
    "pyrovae.infer.pretrain is deprecated; use pyrovae.models.vade, or VAE(pretrain_epochs=...)",
    DeprecationWarning,
    stacklevel=2,
)


def pretrain_autoencoder(vae, data, *, epochs=10, batch_size=256, lr=1e-3, seed=0):
    """Deprecated: :func:`pyrovae.models.vade.pretrain_autoencoder`."""
    return vade.pretrain_autoencoder(
        vae, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed
    )


def init_mixture_prior(vae, x, *, seed=0, steps=None, lr=None):
    """Deprecated: :func:`pyrovae.models.vade.init_mixture_prior` (EM now: ``steps`` and ``lr``
    of the former gradient fit are ignored)."""
    return vade.init_mixture_prior(vae, x, seed=seed)
