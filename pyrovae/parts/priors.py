"""Priors p(z): each is an ``nn.Module`` called as ``prior(name)`` inside the model's data plate.

Calling a prior emits the latent ``pyro.sample`` statement(s) and returns ``z`` of shape
``(batch, latent_dim)`` (with extra leading dims under enumeration or vectorised particles).
``support`` says where ``z`` lives, so that a posterior on another space is refused.
"""

import warnings

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import nn

from ..distributions import HypersphericalUniform
from ..models.mixture import Mixture
from .registry import Registry

priors = Registry("prior")


@priors.register("normal")
class NormalPrior(nn.Module):
    """p(z) = N(z; 0, I_d), d = ``latent_dim``."""

    support = constraints.real

    def __init__(self, latent_dim):
        super().__init__()
        self.register_buffer("loc", torch.zeros(latent_dim))

    def forward(self, name):
        return pyro.sample(name, dist.Normal(self.loc, 1.0).to_event(1))


@priors.register("hyperspherical_uniform")
class HypersphericalUniformPrior(nn.Module):
    """p(z) uniform on the unit sphere S^{d-1} in R^d, d = ``latent_dim`` (the ambient
    dimension, as for the von Mises–Fisher posterior; d >= 2)."""

    support = constraints.sphere

    def __init__(self, latent_dim):
        super().__init__()
        if latent_dim < 2:
            raise ValueError(
                f"a hyperspherical prior needs latent_dim >= 2 (vectors in R^d), got {latent_dim}"
            )
        self.latent_dim = latent_dim
        self.register_buffer("_like", torch.zeros(()))  # carries the module's dtype and device

    def forward(self, name):
        return pyro.sample(name, HypersphericalUniform(self.latent_dim, like=self._like))


@priors.register("mixture")
class MixturePrior(Mixture):
    """p(z) = Σ_k π_k N(z; μ_k, diag σ_k²), with the component c an explicit latent:

    .. math::
        c_n \\sim \\mathrm{Categorical}(\\pi), \\qquad z_n \\mid c_n \\sim N(\\mu_{c_n},
        \\mathrm{diag}\\,\\sigma_{c_n}^2)

    The diagonal :class:`~pyrovae.models.mixture.Mixture` block over the codes (the same block
    as the ``"gmm"`` model's), without a covariance floor: σ_k = exp(``log_scales``) (q(z | x)
    has a positive variance, so a collapsing component would only lower the ELBO).
    ``prior(name)`` emits the component at ``"assignment"`` (marked for parallel enumeration)
    and then ``z``, so a model using it must be trained with ``TraceEnum_ELBO``
    (``has_enumerated_sites``), which sums c out exactly; the guide needs no site for c.

    :param int latent_dim: d.
    :param int num_components: K.
    :param float init_scale: σ_k at the start. The μ_k start as draws from N(0, I); with σ_k
        well below that spread the components start apart instead of all covering the same
        points (with a broad start one component can take all the data). A VAE with this
        prior starts by default from VaDE's auto-encoder + GMM instead (its
        ``pretrain_epochs``), which overwrites π, μ and σ.
    """

    support = constraints.real
    has_enumerated_sites = True

    def __init__(self, latent_dim, num_components=10, init_scale=0.5):
        super().__init__(num_components, latent_dim, "diag", init_scale=init_scale)

    def forward(self, name):
        c = self.sample_component()
        return pyro.sample(name, self.components(c))

    def set_components(self, weights, locs, scales):
        """Deprecated: ``set_moments(weights, locs, scales ** 2)``."""
        warnings.warn(
            "MixturePrior.set_components(weights, locs, scales) is deprecated; use "
            "set_moments(weights, locs, variances)",
            DeprecationWarning,
            stacklevel=2,
        )
        self.set_moments(weights, locs, torch.as_tensor(scales, dtype=torch.float64) ** 2)
