"""pyrovae: variational latent-variable models as Pyro model/guide pairs."""

from . import interrupt  # noqa: F401, I001 (first: Ctrl-C while the command starts)
from . import data, distributions, models, parts
from .infer import evaluate
from .models import (
    VAE,
    ConditionalVAE,
    GaussianMixture,
    MixtureOfLinearDecoders,
    SemiSupervisedVAE,
)
from .runs import fit, load, load_config

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
]
__version__ = "0.1.0"
