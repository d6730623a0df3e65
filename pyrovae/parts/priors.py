"""Priors p(z): each is an ``nn.Module`` called as ``prior(name)`` inside the model's data plate.

Calling a prior emits the latent ``pyro.sample`` statement(s) and returns ``z`` of shape
``(batch, latent_dim)`` (with extra leading dims under enumeration or vectorised particles).
``support`` says where ``z`` lives, so that a posterior on another space is refused.
"""

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints

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
