"""Swappable parts: priors, posteriors, likelihoods, encoders and decoders.

Each kind has a registry, ``priors``, ``posteriors``, ``likelihoods``, ``encoders`` and
``decoders``, from a name to a class; the classes live in the modules ``prior``,
``posterior``, ``likelihood`` and ``network``. A class of your own takes a name with its
registry's decorator and is then built by name like the others::

    from pyrovae.parts import priors

    @priors.register("laplace")
    class LaplacePrior(torch.nn.Module):
        support = constraints.real

        def __init__(self, latent_dim):
            super().__init__()
            self.register_buffer("loc", torch.zeros(latent_dim))

        def forward(self, name):
            return pyro.sample(name, dist.Laplace(self.loc, 1.0).to_event(1))

    vae = pyrovae.VAE(784, 10, prior="laplace")
"""

from .likelihood import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    LaplaceLikelihood,
    likelihoods,
)
from .network import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, decoders, encoders, mlp
from .posterior import (
    IAFPosterior,
    NormalPosterior,
    PlanarPosterior,
    VonMisesFisherPosterior,
    posteriors,
)
from .prior import (
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
