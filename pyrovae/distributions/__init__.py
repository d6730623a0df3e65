"""Distributions for pyrovae, Pyro style (``TorchDistribution`` subclasses).

Importing this package also registers the closed-form KL divergences in :mod:`.kl`.
"""

from pyrovae.distributions import kl as _kl  # noqa: F401  (registers KL pairs)
from pyrovae.distributions.hyperspherical_uniform import HypersphericalUniform
from pyrovae.distributions.normal import Normal, UnitNormal
from pyrovae.distributions.von_mises_fisher import VonMisesFisher

__all__ = ["HypersphericalUniform", "Normal", "UnitNormal", "VonMisesFisher"]
