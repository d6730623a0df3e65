"""Priors p(z): each is an ``nn.Module`` called as ``prior(name)`` inside the model's data plate.

Calling a prior emits the latent ``pyro.sample`` statement(s) and returns ``z`` of shape
``(batch, latent_dim)`` (with extra leading dims under enumeration or vectorised particles).
``support`` says where ``z`` lives, so that a posterior on another space is refused.
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import nn

from ..distributions import HypersphericalUniform
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
