"""The mixture block: π, μ_k, Σ_k of a Gaussian mixture and the distributions they make.

:class:`Mixture` is shared by the ``"gmm"`` model (:class:`pyrovae.models.GaussianMixture`, a
mixture over the data) and the ``"mixture"`` prior (:class:`pyrovae.parts.MixturePrior`, a
mixture over the latent codes). Every model samples its mixture component at the site
:data:`COMPONENT_SITE`.
"""

import math

import numpy.typing as npt
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..checks import nonnegative_real, positive_int, positive_real

COVARIANCES = ("diag", "full")
COMPONENT_SITE = "assignment"
"""The name of the enumerated component index c_n in every mixture model of pyrovae."""


class Mixture(nn.Module):
    """π, μ_k, Σ_k of a K-component Gaussian mixture on R^D, and the distributions they make.

    .. math::
        p(c = k) = \\pi_k, \\qquad p(v \\mid c = k) = N(v; \\mu_k, \\Sigma_k), \\qquad
        \\Sigma_k = A_k + r I

    with π = softmax(``logits``), μ_k = ``locs[k]`` and a covariance floor r = ``reg_covar``
    (scikit-learn's ``reg_covar``): every Σ_k ⪰ r I, so a component cannot shrink onto a point
    or onto a constant or collinear feature and log N(v; μ_k, Σ_k) ≤ −(D/2) log 2πr stays
    bounded. A_k = diag(exp(2 ``log_scales[k]``)) (``covariance="diag"``) or A_k = L_k L_kᵀ
    with L_k = diag(exp(``log_scales[k]``)) (I + the strict lower triangle of ``unit_tril[k]``)
    (``covariance="full"``): row i of L_k is measured in units of its diagonal s_ki, so that a
    gradient step moves a near-constant feature's row as little, relative to its scale, as any
    other (with absolute entries, Adam's steps of fixed size swamp rows of scale ≪ 1).

    :param int num_components: K.
    :param int dim: D.
    :param str covariance: ``"diag"`` or ``"full"``.
    :param float reg_covar: r ≥ 0.
    :param float init_scale: the start of exp(``log_scales``); μ_k start as draws from N(0, I).
    """

    def __init__(
        self,
        num_components: int,
        dim: int,
        covariance: str = "diag",
        reg_covar: float = 0.0,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        positive_int("num_components", num_components)
        positive_int("input_dim", dim)
        if covariance not in COVARIANCES:
            raise ValueError(
                f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}"
            )
        nonnegative_real("reg_covar", reg_covar)
        positive_real("init_scale", init_scale)
        self.num_components, self.covariance, self.reg_covar = num_components, covariance, reg_covar
        self.logits = nn.Parameter(torch.zeros(num_components))
        self.locs = nn.Parameter(torch.randn(num_components, dim))
        self.log_scales = nn.Parameter(torch.full((num_components, dim), math.log(init_scale)))
        if covariance == "full":
            self.unit_tril = nn.Parameter(torch.zeros(num_components, dim, dim))

    @property
    def weights(self) -> torch.Tensor:
        """π: ``(K,)``."""
        return self.logits.softmax(-1)

    @property
    def scales(self) -> torch.Tensor:
        """Diagonal covariance only: σ_k = (exp(2 ``log_scales``) + r)^{1/2}, ``(K, D)``."""
        return torch.hypot(self.log_scales.exp(), self.log_scales.new_tensor(self.reg_covar).sqrt())

    @property
    def scale_tril(self) -> torch.Tensor:
        """Cholesky factors of Σ_k: ``(K, D, D)`` (L_k itself when r = 0)."""
        if self.covariance == "diag":
            return torch.diag_embed(self.scales)
        unit = self.unit_tril
        eye = torch.eye(unit.shape[-1], dtype=unit.dtype, device=unit.device)
        factor = self.log_scales.exp()[..., None] * (eye + unit.tril(-1))
        if not self.reg_covar:
            return factor
        return torch.linalg.cholesky(factor @ factor.mT + self.reg_covar * eye)

    def components(self, index: torch.Tensor | None = None) -> dist.TorchDistribution:
        """N(μ_k, Σ_k) for k in ``index`` (any integer tensor; all K when ``None``), event (D,)."""
        rows = slice(None) if index is None else index
        if self.covariance == "diag":
            return dist.Normal(self.locs[rows], self.scales[rows]).to_event(1)
        return dist.MultivariateNormal(self.locs[rows], scale_tril=self.scale_tril[rows])

    def sample_component(self) -> torch.Tensor:
        """Emit c ~ Categorical(π) at :data:`COMPONENT_SITE`, marked for parallel enumeration,
        inside the caller's plate; returns c (``(K, 1)`` under enumeration)."""
        return pyro.sample(
            COMPONENT_SITE, dist.Categorical(self.weights), infer={"enumerate": "parallel"}
        )

    def precision_traces(self) -> torch.Tensor:
        """tr Σ_k⁻¹: ``(K,)``."""
        if self.covariance == "diag":
            return self.scales.pow(-2).sum(-1)
        tril = self.scale_tril
        eye = torch.eye(tril.shape[-1], dtype=tril.dtype, device=tril.device)
        return torch.linalg.solve_triangular(tril, eye, upper=False).square().sum((-2, -1))

    def joint_log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """log π_k + log N(v_n; μ_k, Σ_k) for rows ``v`` ``(N, D)``: ``(N, K)``."""
        return self.weights.log() + self.components().log_prob(v[:, None, :])

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """Exact log p(v_n) = logsumexp_k of :meth:`joint_log_prob`: ``(N,)``."""
        return self.joint_log_prob(v).logsumexp(-1)

    @torch.no_grad()
    def responsibilities(self, v: torch.Tensor) -> torch.Tensor:
        """Posterior over components p(c_n = k | v_n): ``(N, K)``, rows sum to 1."""
        return self.joint_log_prob(v).softmax(-1)

    @torch.no_grad()
    def set_moments(
        self, weights: npt.ArrayLike, locs: npt.ArrayLike, covariances: npt.ArrayLike
    ) -> None:
        """Set π ``(K,)``, μ ``(K, D)`` and Σ: variances ``(K, D)`` (diag) or ``(K, D, D)``.

        The part of Σ_k above the floor, A_k = Σ_k − r I, becomes the parameters (in float64;
        where A_k is singular it is lifted by 10⁻⁹ of the mean variance, so that its logarithm
        and Cholesky factor exist). A ``"full"`` Σ given to a diagonal mixture keeps its diagonal.
        """
        like = self.locs
        cov = torch.as_tensor(covariances, dtype=torch.float64)
        if self.covariance == "diag" and cov.dim() == 3:
            cov = cov.diagonal(dim1=-2, dim2=-1)
        lift = 1e-9 * (1.0 + (cov.diagonal(dim1=-2, dim2=-1) if cov.dim() == 3 else cov).mean())
        if self.covariance == "diag":
            above = (cov - self.reg_covar).clamp(min=lift.item())
            self.log_scales.copy_(above.log().mul(0.5).to(like))
        else:
            eye = torch.eye(cov.shape[-1], dtype=torch.float64)
            factor = torch.linalg.cholesky(cov - self.reg_covar * eye + lift * eye)
            diagonal = factor.diagonal(dim1=-2, dim2=-1)
            self.log_scales.copy_(diagonal.log().to(like))
            self.unit_tril.copy_((factor / diagonal[..., None]).to(like))
        self.logits.copy_(torch.as_tensor(weights, dtype=torch.float64).log().to(like))
        self.locs.copy_(torch.as_tensor(locs).to(like))

    @torch.no_grad()
    def set_from_clusters(self, v: torch.Tensor, labels: torch.Tensor) -> None:
        """Maximum likelihood given hard clusters ``labels`` ``(N,)`` of the rows ``v`` ``(N, D)``
        (EM's M-step with 0/1 responsibilities, as scikit-learn's k-means start): π_k = n_k / N,
        μ_k = the mean of cluster k, Σ_k = its covariance + r I."""
        v, labels = v.detach().double(), labels.to(v.device)
        k, d = self.num_components, v.shape[1]
        counts = torch.bincount(labels, minlength=k).double().clamp(min=1)
        means = torch.zeros(k, d, dtype=v.dtype, device=v.device).index_add_(0, labels, v)
        means = means / counts[:, None]
        diff = v - means[labels]
        if self.covariance == "diag":
            cov = torch.zeros(k, d, dtype=v.dtype, device=v.device)
            cov = cov.index_add_(0, labels, diff.square()) / counts[:, None]
        else:
            cov = torch.zeros(k, d, d, dtype=v.dtype, device=v.device)
            cov = cov.index_add_(0, labels, diff[:, :, None] * diff[:, None, :])
            cov = cov / counts[:, None, None]
        eye = torch.eye(d, dtype=v.dtype, device=v.device)
        floor = self.reg_covar if self.covariance == "diag" else self.reg_covar * eye
        self.set_moments((counts / counts.sum()).cpu(), means.cpu(), (cov + floor).cpu())
