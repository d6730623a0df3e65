"""Posterior families q(z | x): each turns the encoder's raw outputs into a distribution.

``param_dims`` tells the encoder which outputs to produce (name → size); ``posterior(params)``
maps the unconstrained outputs to a distribution with batch shape ``(batch,)`` and event shape
``(latent_dim,)``.
"""

import pyro.distributions as dist
from torch import nn
from torch.distributions import constraints
from torch.nn.functional import softplus

from .registry import Registry

posteriors = Registry("posterior")


@posteriors.register("normal")
class NormalPosterior(nn.Module):
    """q(z | x) = N(z; μ(x), diag σ(x)²) with σ = softplus(raw) + ``min_scale``."""

    support = constraints.real

    def __init__(self, latent_dim, min_scale=1e-5):
        super().__init__()
        if not min_scale >= 0:
            raise ValueError(f"min_scale must be >= 0, got {min_scale}")
        self.param_dims = {"loc": latent_dim, "scale": latent_dim}
        self.min_scale = min_scale

    def forward(self, params):
        scale = softplus(params["scale"]) + self.min_scale
        return dist.Normal(params["loc"], scale).to_event(1)
