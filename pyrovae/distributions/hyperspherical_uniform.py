"""The uniform distribution on the unit sphere."""

from __future__ import annotations

from typing import Any

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.distributions.util import broadcast_shape

from pyrovae.ops.special import log_sphere_area

_EMPTY = torch.Size()
Shape = torch.Size | list[int] | tuple[int, ...]

__all__ = ["HypersphericalUniform"]


class HypersphericalUniform(TorchDistribution):
    r"""Uniform distribution on the unit sphere :math:`S^{d-1} = \{x \in \mathbb{R}^d : |x| = 1\}`.

    ``dim`` is the **ambient** dimension d, as for :class:`VonMisesFisher` (whose ``loc`` has
    shape ``(..., d)``): samples are vectors of length ``dim``. Note that s-vae-pytorch counts
    the other way: its ``HypersphericalUniform(dim)`` lives on S^dim, i.e. in R^{dim+1}.

    Density with respect to the surface measure: :math:`1 / |S^{d-1}|`, with
    :math:`|S^{d-1}| = 2\pi^{d/2} / \Gamma(d/2)` (2 pi for d = 2, 4 pi for d = 3), so
    ``log_prob = -(log 2 + (d/2) log pi - lgamma(d/2))`` and ``entropy = log |S^{d-1}|``.
    ``rsample`` normalises a standard Gaussian vector (Muller, 1959).

    :param int dim: ambient dimension d >= 2.
    :param batch_shape: optional batch shape (or use :meth:`expand`).
    :param device: device of samples and of ``log_prob``/``entropy`` results.
    :param dtype: floating dtype of samples (default: torch's default dtype).
    :param like: optional tensor whose device and dtype are used when ``device``/``dtype``
        are not given, e.g. ``HypersphericalUniform(d, like=x)``.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    support = constraints.sphere
    has_rsample = True

    def __init__(
        self,
        dim: int,
        batch_shape: Shape = _EMPTY,
        validate_args: bool | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        like: torch.Tensor | None = None,
    ) -> None:
        dim = int(dim)
        if dim < 2:
            raise ValueError(f"HypersphericalUniform needs dim >= 2 (ambient dimension), got {dim}")
        if like is not None:
            device = like.device if device is None else device
            dtype = like.dtype if dtype is None else dtype
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        self._dim = dim
        self._proto = torch.zeros((), dtype=dtype, device=device)
        super().__init__(torch.Size(batch_shape), torch.Size([dim]), validate_args=validate_args)

    def expand(self, batch_shape: Shape, _instance: Any = None) -> HypersphericalUniform:
        new = self._get_checked_instance(HypersphericalUniform, _instance)
        new._dim = self._dim
        new._proto = self._proto
        super(HypersphericalUniform, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    @property
    def dim(self) -> int:
        """Ambient dimension d (the sphere is S^{d-1})."""
        return self._dim

    @property
    def log_surface_area(self) -> float:
        return log_sphere_area(self._dim)

    @property
    def mean(self) -> torch.Tensor:
        return self._proto.new_zeros(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        return self._proto.new_full(self.batch_shape + self.event_shape, 1.0 / self._dim)

    def rsample(self, sample_shape: Shape = _EMPTY) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        x = torch.randn(shape, dtype=self._proto.dtype, device=self._proto.device)
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        return x / norm.clamp(min=torch.finfo(x.dtype).tiny)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = broadcast_shape(value.shape[:-1], self.batch_shape)
        return value.new_full(shape, -self.log_surface_area)

    def entropy(self) -> torch.Tensor:
        return self._proto.new_full(self.batch_shape, self.log_surface_area)
