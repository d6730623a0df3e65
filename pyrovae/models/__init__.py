"""Models: each an ``nn.Module`` with Pyro ``model(x)`` and ``guide(x)`` methods.

``models`` maps the names the CLI and config files use to model classes. A registered model
records the arguments it was built with (``build_options``, see
:class:`~pyrovae.parts.registry.Recorded`), so that a run's ``config.yaml`` can say how to
build it again. What a model must and may provide: :mod:`pyrovae.models.contract`.
"""

from ..parts.registry import Registry
from . import contract, vade
from .conditional import ConditionalVAE
from .linear_mixture import MixtureOfLinearDecoders
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
    "VAE",
    "ConditionalVAE",
    "GaussianMixture",
    "MixtureOfLinearDecoders",
    "SemiSupervisedVAE",
    "contract",
    "models",
    "vade",
]
