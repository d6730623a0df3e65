"""Models: each an ``nn.Module`` with Pyro ``model(x)`` and ``guide(x)`` methods.

``models`` maps the names the CLI and config files use to model classes.
"""

from ..parts.registry import Registry
from .conditional import ConditionalVAE
from .linear_mixture import LLGAE, MixtureOfLinearDecoders
from .mixture import GaussianMixture
from .semi_supervised import SemiSupervisedVAE
from .vae import VAE

models = Registry("model")
models.register("vae")(VAE)
models.register("gmm")(GaussianMixture)
models.register("llgae")(MixtureOfLinearDecoders)
models.register("cvae")(ConditionalVAE)
models.register("ssvae")(SemiSupervisedVAE)

__all__ = [
    "LLGAE",
    "VAE",
    "ConditionalVAE",
    "GaussianMixture",
    "MixtureOfLinearDecoders",
    "SemiSupervisedVAE",
    "models",
]
