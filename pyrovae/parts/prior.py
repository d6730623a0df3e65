"""Priors p(z): each is an ``nn.Module`` called as ``prior(name)`` inside the model's data plate.

Calling a prior emits the latent ``pyro.sample`` statement(s) and returns ``z`` of shape
``(batch, latent_dim)`` (with extra leading dims under enumeration or vectorised particles).
``support`` says where ``z`` lives, so that a posterior on another space is refused.
"""

import math
import warnings
from typing import Any

import numpy.typing as npt
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import nn

from ..checks import positive_int
from ..distributions import HypersphericalUniform, UnitNormal
from .mixture import Mixture
from .registry import Registry

Shape = torch.Size | list[int] | tuple[int, ...]

priors = Registry("prior")


@priors.register("normal")
class NormalPrior(nn.Module):
    """p(z) = N(z; 0, I_d), d = ``latent_dim``."""

    support = constraints.real

    loc: torch.Tensor

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(latent_dim))

    def forward(self, name: str) -> torch.Tensor:
        return pyro.sample(name, UnitNormal(self.loc).to_event(1))


@priors.register("hyperspherical_uniform")
class HypersphericalUniformPrior(nn.Module):
    """p(z) uniform on the unit sphere S^{d-1} in R^d, d = ``latent_dim`` (the ambient
    dimension, as for the von Mises–Fisher posterior; d >= 2)."""

    support = constraints.sphere
    _like: torch.Tensor

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        if latent_dim < 2:
            raise ValueError(
                f"a hyperspherical prior needs latent_dim >= 2 (vectors in R^d), got {latent_dim}"
            )
        self.latent_dim = latent_dim
        self.register_buffer("_like", torch.zeros(()))  # carries the module's dtype and device

    def forward(self, name: str) -> torch.Tensor:
        return pyro.sample(name, HypersphericalUniform(self.latent_dim, like=self._like))


@priors.register("mixture")
class MixturePrior(Mixture):
    """p(z) = Σ_k π_k N(z; μ_k, Σ_k), with the component c an explicit latent:

    .. math::
        c_n \\sim \\mathrm{Categorical}(\\pi), \\qquad z_n \\mid c_n \\sim N(\\mu_{c_n},
        \\Sigma_{c_n})

    The :class:`~pyrovae.models.mixture.Mixture` block over the codes (the same block as the
    ``"gmm"`` model's), without a covariance floor (q(z | x) has a positive variance, so a
    collapsing component would only lower the ELBO): Σ_k = diag σ_k², σ_k = exp(``log_scales``)
    (``covariance="diag"``, VaDE's), or Σ_k = L_k L_kᵀ (``"full"``).
    ``prior(name)`` emits the component at ``"assignment"`` (marked for parallel enumeration)
    and then ``z``, so a model using it must be trained with ``TraceEnum_ELBO``
    (``has_enumerated_sites``), which sums c out exactly; the guide needs no site for c.

    :param int latent_dim: d.
    :param int num_components: K.
    :param str covariance: ``"diag"`` (the default) or ``"full"``.
    :param float init_scale: σ_k at the start. The μ_k start as draws from N(0, I); with σ_k
        well below that spread the components start apart instead of all covering the same
        points (with a broad start one component can take all the data). A VAE with this
        prior starts by default from VaDE's auto-encoder + GMM instead (its
        ``pretrain_epochs``), which overwrites π, μ and σ.
    """

    support = constraints.real
    has_enumerated_sites = True

    def __init__(
        self,
        latent_dim: int,
        num_components: int = 10,
        init_scale: float = 0.5,
        covariance: str = "diag",
    ) -> None:
        super().__init__(num_components, latent_dim, covariance, init_scale=init_scale)

    def forward(self, name: str) -> torch.Tensor:
        c = self.sample_component()
        return pyro.sample(name, self.components(c))

    def set_components(
        self, weights: npt.ArrayLike, locs: npt.ArrayLike, scales: npt.ArrayLike
    ) -> None:
        """Deprecated: ``set_moments(weights, locs, scales ** 2)``."""
        warnings.warn(
            "MixturePrior.set_components(weights, locs, scales) is deprecated; use "
            "set_moments(weights, locs, variances)",
            DeprecationWarning,
            stacklevel=2,
        )
        self.set_moments(weights, locs, torch.as_tensor(scales, dtype=torch.float64) ** 2)


class MixtureOfPosteriors(dist.TorchDistribution):
    """p(z) = (1/K) Σ_k q(z | u_k): the uniform mixture of K posteriors given as one
    distribution ``components`` of batch shape ``(K,)`` and event shape ``(d,)``.

    ``log_prob(z)`` evaluates every component at every z (``logsumexp`` over k), in chunks of
    rows so that memory stays near ``MAX_ELEMENTS`` numbers whatever the leading shape of z.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    MAX_ELEMENTS = 2**22

    def __init__(
        self,
        components: dist.TorchDistribution,
        batch_shape: Shape = (),
        validate_args: bool | None = None,
    ) -> None:
        self.components = components
        super().__init__(torch.Size(batch_shape), components.event_shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint | None:
        return self.components.support

    def expand(self, batch_shape: Shape, _instance: Any = None) -> "MixtureOfPosteriors":
        return MixtureOfPosteriors(self.components, batch_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        (k,), d = self.components.batch_shape, z.shape[-1]
        rows = z.reshape(-1, d)
        step = max(1, self.MAX_ELEMENTS // (k * d))
        parts = []
        for chunk in rows.split(step):
            lp = self.components.log_prob(chunk[:, None, :].expand(len(chunk), k, d))
            parts.append(lp.logsumexp(-1))
        return (torch.cat(parts) - math.log(k)).reshape(z.shape[:-1])

    def sample(self, sample_shape: Shape = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        (k,) = self.components.batch_shape
        draws = self.components.sample(shape)  # shape + (K, d)
        pick = torch.randint(k, shape, device=draws.device)
        index = pick[..., None, None].expand(*shape, 1, draws.shape[-1])
        return draws.gather(-2, index).squeeze(-2)


@priors.register("vamp")
class VampPrior(nn.Module):
    """The VampPrior (Tomczak & Welling 2018): the mixture of the model's own posterior at K
    learned pseudo-inputs u_k,

    .. math::
        p_λ(z) = \\frac1K \\sum_{k=1}^K q_φ(z \\mid u_k),

    with u_k ``(K, input_dim)`` module parameters (initialised uniform on [0, 1], the data
    range of pyrovae's data sets; they are not constrained afterwards) and q_φ the VAE's
    encoder and posterior, which it shares (:meth:`bind`). The KL term has no closed form;
    the ELBO estimates it by sampling.

    It works with any posterior whose density can be evaluated at points it did not sample:
    ``"normal"``, ``"iaf"`` (inverted in latent_dim sequential passes of its network per flow,
    at each of the K pseudo-inputs for every z: K × num_flows × latent_dim passes per row, which
    on a CPU takes seconds to minutes per step beyond latent_dim ≈ 20),
    ``"von_mises_fisher"``; ``"planar"`` has no inverse and is refused, as are the
    non-amortised autoguides, which have no encoder to apply to u_k.

    :param int num_pseudo_inputs: K (Tomczak & Welling use 500 on MNIST).

    Trained from a random start for a few epochs it can collapse (q(z | x) the same for every
    x, ELBO = log-likelihood); benchmarks/README.md reports it on MNIST at 8 epochs.
    """

    def __init__(self, latent_dim: int, input_dim: int, num_pseudo_inputs: int = 500) -> None:
        super().__init__()
        positive_int("num_pseudo_inputs", num_pseudo_inputs)
        self.pseudo_inputs = nn.Parameter(torch.rand(num_pseudo_inputs, input_dim))
        # (encoder, posterior), kept out of this module's parameters
        self._bound: tuple[nn.Module, Any] | None = None

    def bind(self, encoder: nn.Module, posterior: Any) -> None:
        """Share the VAE's ``encoder`` and ``posterior`` (they stay the VAE's modules)."""
        if not getattr(posterior, "invertible", True):
            name = getattr(posterior, "registered_name", type(posterior).__name__)
            raise ValueError(
                f"prior 'vamp' evaluates q(z | u_k) at every z, but posterior {name!r} can be "
                "evaluated only at its own samples (it has no inverse); use posterior 'normal' "
                "or 'iaf' with the VampPrior"
            )
        object.__setattr__(self, "_bound", (encoder, posterior))

    @property
    def support(self) -> constraints.Constraint:
        return self._bound[1].support if self._bound else constraints.real

    def distribution(self) -> MixtureOfPosteriors:
        """p(z) as :class:`MixtureOfPosteriors`, batch shape ``()``, event ``(latent_dim,)``."""
        if self._bound is None:
            raise ValueError(
                "the VampPrior has no encoder yet: it is built inside a VAE "
                "(pyrovae.models.VAE(..., prior='vamp'))"
            )
        encoder, posterior = self._bound
        return MixtureOfPosteriors(posterior(encoder(self.pseudo_inputs)))

    def forward(self, name: str) -> torch.Tensor:
        return pyro.sample(name, self.distribution())
