"""Swappable parts: priors, posteriors, likelihoods, encoders and decoders, each a registry."""

from .likelihoods import BernoulliLikelihood, GaussianLikelihood, likelihoods
from .networks import MLPDecoder, MLPEncoder, decoders, encoders, mlp
from .posteriors import NormalPosterior, posteriors
from .priors import MixturePrior, NormalPrior, priors
from .registry import Registry

__all__ = [
    "BernoulliLikelihood",
    "GaussianLikelihood",
    "MLPDecoder",
    "MLPEncoder",
    "MixturePrior",
    "NormalPosterior",
    "NormalPrior",
    "Registry",
    "decoders",
    "encoders",
    "likelihoods",
    "mlp",
    "posteriors",
    "priors",
]
