"""Likelihoods p(x | z): each turns the decoder's output into a distribution over ``x``.

``output_dim`` is the number of decoder outputs needed; ``likelihood(out)`` returns a
distribution with event shape ``(input_dim,)`` whose ``.mean`` is the reconstruction;
``check(x)`` refuses data outside the likelihood's support with a message saying what to do.
"""

import math

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits, softplus

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
        return _BernoulliRows(dist.Bernoulli(logits=logits, validate_args=False), 1)

    def check(self, x):
        if x.min() < 0 or x.max() > 1:
            raise ValueError(
                f"the Bernoulli likelihood needs data in [0, 1], got values in "
                f"[{x.min().item():.3g}, {x.max().item():.3g}]; rescale the data or use "
                "likelihood='gaussian'"
            )


class _BernoulliRows(dist.Independent):
    """``Bernoulli(logits=…).to_event(1)`` whose ``log_prob`` negates the cross-entropy after
    summing it over the row, not the whole ``(…, D)`` array: log p(x) = −Σ_i BCE(logits_i, x_i)."""

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits = self.base_dist.logits
        if logits.shape != value.shape:
            logits, value = torch.broadcast_tensors(logits, value)
        return -binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)


@likelihoods.register("gaussian")
class GaussianLikelihood(nn.Module):
    """p(x | z) = N(x; decoder(z), σ² I) with σ a fixed number or ``"learned"`` (one shared σ,
    σ = softplus(raw), initialised at ``init_scale``)."""

    def __init__(self, input_dim, scale="learned", init_scale=0.1):
        super().__init__()
        self.output_dim = input_dim
        if scale == "learned":
            if not init_scale > 0:
                raise ValueError(f"init_scale must be > 0, got {init_scale}")
            raw = math.log(math.expm1(init_scale))
            self.raw_scale = nn.Parameter(torch.tensor(raw))
        elif isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0:
            self.register_buffer("fixed_scale", torch.tensor(float(scale)))
        else:
            raise ValueError(f"scale must be a positive number or 'learned', got {scale!r}")

    @property
    def scale(self):
        return softplus(self.raw_scale) if hasattr(self, "raw_scale") else self.fixed_scale

    def forward(self, loc):
        return dist.Normal(loc, self.scale).to_event(1)

    def check(self, x):
        pass
