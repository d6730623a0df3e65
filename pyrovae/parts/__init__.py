"""Swappable parts: priors, posteriors, likelihoods, encoders and decoders, each a registry."""

from .likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    LaplaceLikelihood,
    likelihoods,
)
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, decoders, encoders, mlp
from .posteriors import (
    IAFPosterior,
    NormalPosterior,
    PlanarPosterior,
    VonMisesFisherPosterior,
    posteriors,
)
from .priors import (
    HypersphericalUniformPrior,
    MixtureOfPosteriors,
    MixturePrior,
    NormalPrior,
    VampPrior,
    priors,
)
from .registry import Registry

__all__ = [
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "ConvDecoder",
    "ConvEncoder",
    "GaussianLikelihood",
    "LaplaceLikelihood",
    "HypersphericalUniformPrior",
    "MLPDecoder",
    "MLPEncoder",
    "MixtureOfPosteriors",
    "MixturePrior",
    "IAFPosterior",
    "NormalPosterior",
    "PlanarPosterior",
    "NormalPrior",
    "VampPrior",
    "VonMisesFisherPosterior",
    "Registry",
    "decoders",
    "encoders",
    "likelihoods",
    "mlp",
    "posteriors",
    "priors",
]
