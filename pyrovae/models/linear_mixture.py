"""Mixture of linear decoders (LLGAE), i.e. a mixture of probabilistic PCA models.

.. math::
    k_n \\sim \\mathrm{Categorical}(\\pi), \\quad z_n \\sim \\mathcal N(0, I_E), \\quad
    x_n \\mid k_n, z_n \\sim \\mathcal N(\\mu_k + W_k z_n, \\sigma_k^2 I_D)

Integrating z out gives the mixture of PPCA of Tipping & Bishop (1999),
p(x) = Σ_k π_k N(x; μ_k, C_k) with C_k = W_k W_kᵀ + σ_k² I_D. Everything exact is computed
through the E × E matrix M_k = W_kᵀ W_k + σ_k² I_E (never a D × D matrix):

* Woodbury: C_k⁻¹ = σ_k⁻² (I − W_k M_k⁻¹ W_kᵀ);
* matrix determinant lemma: log |C_k| = (D − E) log σ_k² + log |M_k|;
* posterior: p(z | x, k) = N(M_k⁻¹ W_kᵀ (x − μ_k), σ_k² M_k⁻¹).

The guide is a swappable part (:mod:`pyrovae.models.linear_mixture_guides`): ``"amortized"``
(an encoder), ``"iterative"`` (the LLGAE notes' unrolled decoder-only inference) or ``"exact"``
(the closed-form posterior, so that the ELBO equals log p(x)).
"""

import math
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.util import broadcast_shape
from torch import nn
from torch.nn.functional import softplus

from ..checks import check_matrix, positive_int, positive_real
from ..parts.plate import batch_rows
from ..parts.registry import Recorded
from .linear_mixture_guides import llgae_guides
from .mixture import COMPONENT_SITE, kmeans_labels

NOISE_RANGE = (1e-15, 1e15)  # a fixed σ whose σ² float32 holds with room to spare


class MixtureOfLinearDecoders(Recorded, nn.Module):
    """K linear decoders x ≈ μ_k + W_k z with isotropic noise σ_k, one picked per data point.

    :param int num_components: K.
    :param int input_dim: D, data are ``(N, D)`` real rows.
    :param int latent_dim: E, the dimension of each component's subspace (E < D).
    :param noise: ``"learned"`` (one σ_k per component, σ = softplus(raw)) or a fixed σ in
        [10⁻¹⁵, 10¹⁵] (beyond, σ² overflows or underflows float32).
    :param guide: ``"amortized"``, ``"iterative"``, ``"exact"``, or ``{"name": ..., **options}``
        (see :mod:`pyrovae.models.linear_mixture_guides`); :meth:`set_guide` swaps it later.
    :param str name: the ``pyro.module`` prefix.

    The parameters π (as logits), μ_k, W_k and σ_k are point estimates. They start random;
    :meth:`initialize` (called by :func:`pyrovae.fit`) puts them at k-means + per-cluster PCA.
    """

    def __init__(
        self,
        num_components: int,
        input_dim: int,
        latent_dim: int,
        noise: str | float = "learned",
        guide: Any = "amortized",
        name: str = "llgae",
    ) -> None:
        super().__init__()
        positive_int("num_components", num_components)
        positive_int("input_dim", input_dim)
        positive_int("latent_dim", latent_dim)
        if latent_dim >= input_dim:
            raise ValueError(
                f"latent_dim ({latent_dim}) must be smaller than input_dim ({input_dim}): each "
                "component is a subspace of the data space"
            )
        self.num_components, self.input_dim, self.latent_dim = num_components, input_dim, latent_dim
        self.name = name
        K, D, E = num_components, input_dim, latent_dim
        self.inference: Any  # the guide part (set_guide)
        self.fixed_noise_scales: torch.Tensor  # a buffer, for a fixed noise
        self.logits = nn.Parameter(torch.zeros(K))
        self.locs = nn.Parameter(0.1 * torch.randn(K, D))
        self.bases = nn.Parameter(torch.randn(K, D, E) / math.sqrt(D))
        checked = positive_real("noise", noise, learned=True)  # "learned" or a number > 0
        if checked != "learned" and not NOISE_RANGE[0] <= checked <= NOISE_RANGE[1]:
            raise ValueError(
                f"noise must be 'learned' or a number in [{NOISE_RANGE[0]:g}, {NOISE_RANGE[1]:g}] "
                f"(its square must be a finite, nonzero float32 number), got {noise!r}"
            )
        if noise == "learned":
            self.raw_noise_scales = nn.Parameter(torch.full((K,), math.log(math.expm1(0.1))))
        else:
            self.register_buffer("fixed_noise_scales", torch.full((K,), float(noise)))
        self.set_guide(guide)

    def set_guide(self, guide: Any) -> None:
        """Swap the guide (a name, ``{"name": ..., **options}`` or a guide object)."""
        self.inference = llgae_guides.build(
            guide,
            num_components=self.num_components,
            input_dim=self.input_dim,
            latent_dim=self.latent_dim,
        )

    pictures = ("linear_components", "reconstructions_by_component")  # pyrovae.plots.save_all

    @property
    def has_enumerated_sites(self) -> bool:
        """True when the guide enumerates k, so that ``pyrovae.fit`` picks ``TraceEnum_ELBO``."""
        return self.inference.enumerates

    @property
    def noise_scales(self) -> torch.Tensor:
        """σ_k, ``(K,)``."""
        if hasattr(self, "raw_noise_scales"):
            return softplus(self.raw_noise_scales)
        return self.fixed_noise_scales

    @property
    def weights(self) -> torch.Tensor:
        """π: ``(K,)``."""
        return self.logits.softmax(-1)

    def components(self, index: torch.Tensor | None = None) -> dist.LowRankMultivariateNormal:
        """p(x | k) = N(μ_k, W_k W_kᵀ + σ_k² I_D), z integrated out, for k in ``index`` (any
        integer tensor; all K when ``None``): a low-rank Normal with event (D,), whose
        ``log_prob`` goes through the E × E capacitance matrix as :meth:`posterior` does."""
        rows = slice(None) if index is None else index
        locs, bases = self.locs[rows], self.bases[rows]  # (..., D), (..., D, E)
        noise = self.noise_scales[rows].square()[..., None].expand(locs.shape)  # (..., D)
        return dist.LowRankMultivariateNormal(locs, bases, noise)

    # Pyro model and guide

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """p(x, k, z) with k enumerated in parallel; ``x`` is ``(N, D)``. Without ``x``, ``x``
        is sampled: ``batch_size`` rows (default 1)."""
        pyro.module(self.name, self)
        with pyro.plate("data", batch_rows(x, batch_size)):
            k = pyro.sample(
                COMPONENT_SITE,
                dist.Categorical(logits=self.logits),
                infer={"enumerate": "parallel"},
            )
            z = pyro.sample("z", dist.Normal(self.locs.new_zeros(self.latent_dim), 1.0).to_event(1))
            pyro.sample(
                "x",
                dist.Normal(self.decode(z, k), self.noise_scales[k][..., None]).to_event(1),
                obs=x,
            )

    def guide(self, x: torch.Tensor) -> None:
        """q(k, z | x), given by the current guide part (``self.inference``)."""
        pyro.module(self.name, self)
        with pyro.plate("data", x.shape[0]):
            self.inference(self, x)

    def decode(self, z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """μ_k + W_k z for ``z`` ``(..., E)`` and component indices ``k`` broadcastable with
        ``z.shape[:-1]``: ``(..., D)``. Over the M = prod(shape) rows, each component's rows are
        found (``nonzero``), multiplied by its W_k and added in place into μ_k: O(M D E) for the
        products and O(K M) integer comparisons, with memory that of the output (no (M, D, E)
        gather of the bases, no copy of the output per component)."""
        shape = broadcast_shape(k.shape, z.shape[:-1])
        k = k.expand(shape).reshape(-1)  # (M,)
        z = z.expand(*shape, self.latent_dim).reshape(-1, self.latent_dim)  # (M, E)
        out = self.locs[k]  # (M, D)
        for c in range(self.num_components):
            rows = (k == c).nonzero().squeeze(-1)  # (M_c,)
            out.index_add_(0, rows, z.index_select(0, rows) @ self.bases[c].T)
        return out.reshape(*shape, self.input_dim)

    # Exact computations (Woodbury / matrix determinant lemma, O(K (D E + E²)) per row)

    def posterior(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Exact posterior quantities for rows ``x`` ``(N, D)``.

        :returns: a dict with ``log_joint`` (N, K) = log π_k + log N(x; μ_k, C_k), ``loc``
            (N, K, E) = M_k⁻¹ W_kᵀ (x − μ_k) (the mean of p(z | x, k), which equals the
            least-squares coefficients as σ_k → 0) and ``scale_tril`` (K, E, E), the lower
            Cholesky factor T_k of p(z | x, k)'s covariance σ_k² M_k⁻¹ (T_k T_kᵀ = σ_k² M_k⁻¹).

        T_k comes from the Cholesky factor of M_k with rows and columns reversed (J the reversal
        permutation, J M_k J = F Fᵀ, so M_k⁻¹ = (J F⁻ᵀ J)(J F⁻¹ J) and T_k = σ_k J F⁻ᵀ J is
        lower triangular with a positive diagonal by construction). A Normal built from it passes
        torch's argument check whatever the rounding, where one built from the precision matrix
        M_k / σ_k² fails when the product W_kᵀ W_k comes out asymmetric by more than 10⁻⁶.
        """
        W, s2 = self.bases, self.noise_scales**2
        D, E = self.input_dim, self.latent_dim
        eye = torch.eye(E, dtype=W.dtype, device=W.device)
        M = W.transpose(-1, -2) @ W + s2[:, None, None] * eye  # (K, E, E)
        L = torch.linalg.cholesky(M)
        r = x.unsqueeze(-2) - self.locs  # (N, K, D)
        a = torch.einsum("nkd,kde->nke", r, W)  # W_kᵀ r
        b = torch.linalg.solve_triangular(L, a.unsqueeze(-1), upper=False).squeeze(-1)
        maha = (r.pow(2).sum(-1) - b.pow(2).sum(-1)) / s2
        logdet = (D - E) * s2.log() + 2 * L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        log_normal = -0.5 * (D * math.log(2 * math.pi) + logdet + maha)
        return {
            "log_joint": self.logits.log_softmax(-1) + log_normal,
            "loc": torch.cholesky_solve(a.unsqueeze(-1), L).squeeze(-1),
            "scale_tril": s2.sqrt()[:, None, None] * _inverse_scale_tril(M),
        }

    def log_likelihood_exact(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """log p(x) = log Σ_k π_k N(x; μ_k, W_k W_kᵀ + σ_k² I) per row: ``(N,)``, in nats."""
        with torch.no_grad():
            return torch.cat(
                [self.posterior(c)["log_joint"].logsumexp(-1) for c in torch.split(x, batch_size)]
            )

    @torch.no_grad()
    def project(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """The best reconstruction in the model's K affine subspaces: for each row, the
        orthogonal projection x̂_k = μ_k + W_k (W_kᵀW_k)⁻¹ W_kᵀ (x − μ_k) onto the component
        with the smallest residual ‖x − x̂_k‖. :returns: ``(x̂, k)``, ``(N, D)`` and ``(N,)``."""
        W, out, ks = self.bases, [], []
        for chunk in torch.split(x, batch_size):
            r = chunk.unsqueeze(-2) - self.locs
            coef = torch.linalg.lstsq(W, r.transpose(0, 1).transpose(-1, -2)).solution  # (K,E,N)
            fit = self.locs[:, :, None] + W @ coef  # (K, D, N)
            err = (chunk.T - fit).pow(2).sum(1)  # (K, N)
            k = err.argmin(0)
            out.append(fit.permute(2, 0, 1)[torch.arange(len(chunk)), k])
            ks.append(k)
        return torch.cat(out), torch.cat(ks)

    # Uniform interface: sample, reconstruct, check_data, initialize

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Means μ_k + W_k z of ``n`` draws k ~ π, z ~ N(0, I): ``(n, D)``."""
        k = torch.multinomial(self.weights, n, replacement=True)
        z = torch.randn(n, self.latent_dim, dtype=self.locs.dtype, device=self.locs.device)
        return self.decode(z, k)

    @torch.no_grad()
    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """The guide's component for each row (its point estimate of k): ``(N,)``."""
        return self.inference.point(self, x)[0]

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The guide's point estimate of z, in the component it picks, for each row: ``(N, E)``."""
        return self.inference.point(self, x)[1]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """μ_k + W_k z at the guide's point estimate (k, z) of each row: ``(N, D)``."""
        k, z = self.inference.point(self, x)
        return self.decode(z, k)

    def check_data(self, x: torch.Tensor) -> None:
        """Refuse data this model cannot score, with what to do about it."""
        check_matrix(x, self.input_dim)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, seed: int = 0, n_init: int = 3) -> None:
        """Start from k-means + PCA in each cluster (the per-cluster PPCA maximum likelihood).

        k-means (:func:`~pyrovae.models.mixture.kmeans_labels`: ``n_init`` restarts, ``seed``)
        splits the rows into K clusters; for cluster k with n_k rows, mean m and covariance
        eigenvalues λ_1 ≥ … ≥ λ_D (eigenvectors U), Tipping & Bishop's closed form gives
        π_k = n_k / N, μ_k = m, σ_k² = mean(λ_{E+1}, …, λ_D) and W_k = U_E (Λ_E − σ_k² I)^{1/2}.
        σ_k² is floored at 10⁻⁶ × the mean pixel variance, so that a cluster of fewer than
        E + 1 rows stays finite. A fixed ``noise`` is kept. Then a guide with parameters of its
        own (the amortized encoder) is fitted to this starting model's posterior (its
        ``initialize``).
        """
        self.check_data(x)
        K, E = self.num_components, self.latent_dim
        if x.shape[0] < K:
            raise ValueError(f"initialize needs at least K = {K} rows, got {x.shape[0]}")
        xs = x.detach().cpu().double().numpy()
        labels = kmeans_labels(x, K, seed, n_init).cpu().numpy()
        floor = max(1e-6 * xs.var(0).mean(), 1e-12)
        weights, locs, bases, noise = [], [], [], []
        for k in range(K):
            rows = xs[labels == k]
            mean = rows.mean(0)
            cov = (
                np.cov(rows, rowvar=False, bias=True)
                if len(rows) > 1
                else np.zeros((xs.shape[1],) * 2)
            )
            lam, U = np.linalg.eigh(cov)
            lam, U = lam[::-1].clip(0), U[:, ::-1]
            s2 = max(lam[E:].mean(), floor)
            weights.append(len(rows) / len(xs))
            locs.append(mean)
            bases.append(U[:, :E] * np.sqrt(np.maximum(lam[:E] - s2, 0)))
            noise.append(np.sqrt(s2))
        like = self.locs
        self.logits.copy_(torch.as_tensor(np.log(weights)).to(like))
        self.locs.copy_(torch.as_tensor(np.stack(locs)).to(like))
        self.bases.copy_(torch.as_tensor(np.stack(bases)).to(like))
        if hasattr(self, "raw_noise_scales"):
            s = torch.as_tensor(np.array(noise)).to(like)
            self.raw_noise_scales.copy_(s + torch.log(-torch.expm1(-s)))  # softplus⁻¹
        if hasattr(self.inference, "initialize"):
            with torch.enable_grad():
                self.inference.initialize(self, x.detach(), seed)


def _inverse_scale_tril(M: torch.Tensor) -> torch.Tensor:
    """The lower-triangular T with T Tᵀ = M⁻¹ for symmetric positive-definite ``M`` (..., E, E):
    T = J F⁻ᵀ J with J M J = F Fᵀ (J reverses the order; M is taken as symmetric)."""
    flipped = torch.linalg.cholesky(M.flip(-2, -1))
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
    inv_t = torch.linalg.solve_triangular(flipped.mT, eye, upper=True)  # F⁻ᵀ, upper
    return inv_t.flip(-2, -1).tril()
