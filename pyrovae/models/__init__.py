"""Models: each an ``nn.Module`` with Pyro ``model(x)`` and ``guide(x)`` methods.

``models`` maps the names the CLI and config files use to model classes.
"""

from ..parts.registry import Registry
from .mixture import GaussianMixture
from .vae import VAE

models = Registry("model")
models.register("vae")(VAE)
models.register("gmm")(GaussianMixture)

__all__ = ["VAE", "GaussianMixture", "models"]
