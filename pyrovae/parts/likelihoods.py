"""Likelihoods p(x | z): each turns the decoder's output into a distribution over ``x``.

``output_dim`` is the number of decoder outputs needed; ``likelihood(out)`` returns a
distribution with event shape ``(input_dim,)`` whose ``.mean`` is the reconstruction;
``check(x)`` refuses data outside the likelihood's support with a message saying what to do.
"""

import math

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import softplus

from ..checks import positive_real
from .registry import Registry

likelihoods = Registry("likelihood")


@likelihoods.register("bernoulli")
class BernoulliLikelihood(nn.Module):
    """p(x | z) = Π_i Bernoulli(x_i; sigmoid(logits_i)).

    Values in [0, 1] that are not 0 or 1 are accepted (cross-entropy against grey levels, as in
    many VAE papers), but then the log-likelihood is not that of a normalised density: binarize
    the data (``binarize="dynamic"`` or ``"static"``) for figures comparable with papers.
    """

    def __init__(self, input_dim):
        super().__init__()
        self.output_dim = input_dim

    def forward(self, logits):
        return dist.Bernoulli(logits=logits, validate_args=False).to_event(1)

    def check(self, x):
        if x.min() < 0 or x.max() > 1:
            raise ValueError(
                f"the Bernoulli likelihood needs data in [0, 1], got values in "
                f"[{x.min().item():.3g}, {x.max().item():.3g}]; rescale the data or use "
                "likelihood='gaussian'"
            )


@likelihoods.register("gaussian")
class GaussianLikelihood(nn.Module):
    """p(x | z) = N(x; decoder(z), σ² I) with σ a fixed number or ``"learned"`` (one shared σ,
    σ = softplus(raw), initialised at ``init_scale``)."""

    def __init__(self, input_dim, scale="learned", init_scale=0.1):
        super().__init__()
        self.output_dim = input_dim
        if positive_real("scale", scale, learned=True) == "learned":
            positive_real("init_scale", init_scale)
            raw = init_scale + math.log(-math.expm1(-init_scale))  # softplus⁻¹, also for large σ
            self.raw_scale = nn.Parameter(torch.tensor(raw))
        else:
            self.register_buffer("fixed_scale", torch.tensor(float(scale)))

    @property
    def scale(self):
        return softplus(self.raw_scale) if hasattr(self, "raw_scale") else self.fixed_scale

    def forward(self, loc):
        return dist.Normal(loc, self.scale).to_event(1)

    def check(self, x):
        pass
