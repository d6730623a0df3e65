"""pyrovae: variational latent-variable models as Pyro model/guide pairs."""

from . import data, distributions, models, parts, special
from .infer import evaluate, fit
from .models import (
    VAE,
    ConditionalVAE,
    GaussianMixture,
    MixtureOfLinearDecoders,
    SemiSupervisedVAE,
)
from .run import load, load_config

__all__ = [
    "VAE",
    "ConditionalVAE",
    "GaussianMixture",
    "MixtureOfLinearDecoders",
    "SemiSupervisedVAE",
    "data",
    "distributions",
    "evaluate",
    "fit",
    "load",
    "load_config",
    "models",
    "parts",
    "special",
]
__version__ = "0.1.0"
