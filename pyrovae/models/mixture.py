"""Gaussian mixtures: the GMM model, built on the one mixture block, and the k-means start.

:class:`~pyrovae.parts.mixture.Mixture` (in :mod:`pyrovae.parts`) holds π, μ_k, Σ_k and
turns them into distributions; :class:`GaussianMixture` (the ``"gmm"`` model: a mixture over
the data) and the ``"mixture"`` prior of the VAE (:class:`pyrovae.parts.MixturePrior`: a
mixture over the latent codes) are both this block. Every model samples its mixture component
at the site :data:`COMPONENT_SITE`.
"""

import logging
import math
import warnings
from typing import cast

import numpy.typing as npt
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import infer_discrete
from torch import nn

from ..checks import check_matrix, positive_int
from ..parts.mixture import COMPONENT_SITE, COVARIANCES, Mixture  # noqa: F401 (the GMM's block)
from ..parts.plate import batch_rows
from ..parts.registry import Recorded

log = logging.getLogger(__name__)  # the EM start's progress, at INFO (the CLI shows it)


def enough_rows(x: torch.Tensor, k: int) -> None:
    """Refuse fewer rows than clusters, which neither k-means nor EM can start from."""
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} rows, got {x.shape[0]}; lower k")


def kmeans_labels(x: torch.Tensor, k: int, seed: int = 0, n_init: int = 3) -> torch.Tensor:
    """k-means cluster of each row of ``x`` ``(N, D)``: an int64 tensor ``(N,)``.

    scikit-learn's :class:`~sklearn.cluster.KMeans`: k-means++ seeding, Lloyd iterations, the
    run of smallest inertia among ``n_init`` (``random_state=seed``), in float64.
    """
    from sklearn.cluster import KMeans  # scikit-learn loads in ~1 s: only when clustering

    enough_rows(x, k)
    rows = x.detach().cpu().double().numpy()
    labels = KMeans(k, n_init=n_init, random_state=seed).fit_predict(rows)
    return torch.as_tensor(labels, dtype=torch.long, device=x.device)


@torch.no_grad()
def equal_weight_em(
    x: torch.Tensor,
    k: int,
    covariance: str = "full",
    *,
    reg_covar: float = 1e-6,
    seed: int = 0,
    n_init: int = 100,
    max_iter: int = 100,
    tol: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The maximum-likelihood K-component Gaussian mixture of the rows ``x`` ``(N, D)`` whose
    weights are held equal, π_k = 1/K, by EM from ``n_init`` k-means starts.

    A start: one k-means run (:func:`kmeans_labels`, its seed drawn from ``seed``) gives 0/1
    responsibilities r_nk; then in turn the M-step, n_k = Σ_n r_nk, μ_k = Σ_n r_nk x_n / n_k,
    Σ_k = Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ / n_k + r I (``"diag"``: its diagonal), and the
    E-step r_nk = N(x_n; μ_k, Σ_k) / Σ_j N(x_n; μ_j, Σ_j) (π cancels), until the mean
    log-likelihood ℓ = (1/N) Σ_n log (1/K) Σ_k N(x_n; μ_k, Σ_k) moves by less than ``tol``
    (scikit-learn's rule) or after ``max_iter`` steps. The start of highest ℓ is kept. In
    float64; r = ``reg_covar`` as scikit-learn's.

    Held equal, the weights cannot pay for one cluster taking two classes while another class
    is split in two, which free weights (scikit-learn's EM) often prefer (see
    :mod:`pyrovae.models.vade`); it suits classes of similar size.

    :returns: ``(μ (K, D), Σ (K, D, D), or the variances (K, D) for "diag", ℓ)``.
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}")
    positive_int("n_init", n_init)
    positive_int("max_iter", max_iter)
    enough_rows(x, k)
    x = x.detach().cpu().double()
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    seeds = torch.randint(2**31 - 1, (n_init,), generator=torch.Generator().manual_seed(seed))
    log.info("GMM start: EM with equal weights, %d starts of up to %d steps", n_init, max_iter)
    best: tuple[torch.Tensor, torch.Tensor, float] | None = None
    for start in seeds.tolist():
        resp = nn.functional.one_hot(kmeans_labels(x, k, start, n_init=1), k).double()  # (N, K)
        previous = -math.inf
        for _ in range(max_iter):
            counts = resp.sum(0) + 10 * torch.finfo(x.dtype).eps  # (K,), as scikit-learn's
            means = resp.mT @ x / counts[:, None]  # (K, D)
            diff = x - means[:, None, :]  # (K, N, D)
            weighted = resp.mT[:, :, None] * diff  # (K, N, D)
            if covariance == "full":
                cov = weighted.mT @ diff / counts[:, None, None]  # (K, D, D)
                cov = 0.5 * (cov + cov.mT) + reg_covar * eye  # symmetric to the last digit
                tril = torch.linalg.cholesky(cov)
                log_n = dist.MultivariateNormal(means, scale_tril=tril).log_prob(x[:, None])
            else:
                cov = (weighted * diff).sum(1) / counts[:, None] + reg_covar  # (K, D)
                log_n = dist.Normal(means, cov.sqrt()).log_prob(x[:, None]).sum(-1)  # (N, K)
            log_p = log_n.logsumexp(-1) - math.log(k)  # (N,)
            loglik = log_p.mean().item()
            resp = (log_n - log_n.logsumexp(-1, keepdim=True)).exp()
            if abs(loglik - previous) < tol:
                break
            previous = loglik
        if best is None or loglik > best[2]:
            best = (means, cov, loglik)
    assert best is not None  # n_init >= 1
    return best


class GaussianMixture(Recorded, Mixture):
    """p(x) = Σ_k π_k N(x; μ_k, Σ_k), written with an explicit assignment c:

    .. math::
        c_n \\sim \\mathrm{Categorical}(\\pi), \\qquad
        x_n \\mid c_n \\sim N(\\mu_{c_n}, \\Sigma_{c_n}), \\qquad \\Sigma_k = A_k + r I

    ``model(x)`` marks ``"assignment"`` for parallel enumeration, so ``TraceEnum_ELBO`` sums it
    out exactly: its loss is −Σ_n log p(x_n), the exact negative log-likelihood. π, μ and Σ are
    module parameters (point estimates, fitted by maximum likelihood; the parametrisation is
    :class:`Mixture`'s), so ``guide(x)`` has no sample sites: it only registers the module.

    The covariance floor r = ``reg_covar`` (default 10⁻⁶, scikit-learn's) keeps the maximum
    likelihood well posed: without it, a component whose points share a constant pixel (or
    lie on a line) has an unbounded density there and its covariance collapses. As in
    scikit-learn, r is added to the fitted covariances: training converges where EM with the
    same ``reg_covar`` does (see :meth:`model`).

    Held-out log-likelihoods then have a long lower tail: with full covariances, a component
    fitted to about 100 of the 1,150 training digits (64 pixels) has a covariance that is
    singular but for r along about 20 directions, and a held-out image that departs from its
    training images along them pays (departure)² / r nats there. On the digits (K = 10, full,
    EM start, seed 0) one validation "4" scores −22,482 nats, 99 % of it from the 19
    directions at the floor, so that the validation mean is 21.8 nats beside a median of 110.3
    (100.2 without that image; test: mean 86.7, median 113.9). The mean is the honest
    log-likelihood of the model; the median says how typical images fare. A larger
    ``reg_covar`` shortens the tail at a cost in training likelihood.

    Maximum likelihood by gradient steps gets stuck when started badly (everything in one
    component); call :meth:`initialize` first — :func:`pyrovae.fit` does so itself.

    **Parameters, whitened by the start.** Adam moves every parameter by about ``lr`` per step,
    however small its gradient, so it needs parameters in which a step of ``lr`` is a small
    move for the likelihood in every direction. In data coordinates that fails where the
    floor binds: along a constant or collinear combination of features a component's
    standard deviation is √r = 10⁻³, and a step of 10⁻² in μ_k, or a 1 % change of the scale of
    a row of the Cholesky factor that carries the collinear relation, moves the rows by many
    standard deviations there (singular blobs at lr 10⁻²: 3.1 → −3.3 nats per row in 200
    epochs of batches of 128; → −0.41 in float64). So :meth:`set_moments` (hence :meth:`initialize`)
    keeps the start as buffers — its means c_k (``origin``), the Cholesky factors L⁰_k of its
    Σ_k (``loc_scale_tril``) and B⁰_k of its A_k (``cov_factor_tril``) — and the parameters
    measure the moves from it in the start's own units:

    .. math::
        \\mu_k = c_k + L^0_k \\nu_k / \\sqrt{D}, \\qquad A_k = F_k F_k^\\top, \\quad
        F_k = B^0_k M_k, \\quad M_k = \\mathrm{diag}(e^{s_k}) (I + U_k / \\sqrt{D})

    with ν_k = ``loc_offsets``, s_k = ``log_scales``, U_k = the strict lower triangle of
    ``unit_tril`` (``"diag"``: F_k = B⁰_k diag(e^{s_k}), B⁰_k, L⁰_k diagonal), all 0 at the
    start. The 1/√D makes Adam's first step (every entry ± ``lr``) move μ_k and each row of M_k
    by about ``lr`` whatever D (without it, breast cancer, D = 30, full, lost 0.036 nats per
    row in the first epoch at lr 10⁻², 0.006 with it). A step then moves μ_k within the
    start's ellipsoid and changes A_k's shape in the start's principal frame, where a
    collinear relation of features is a row of B⁰_k that no step of M_k breaks. Before any
    start, c_k ~ N(0, I) and L⁰_k = B⁰_k = I: the plain parameters. The Cholesky factor of
    Σ_k = A_k + r I is computed in float64, so that the floor survives float32 (there
    F_k F_kᵀ + r I loses r to rounding once ‖A_k‖ ≳ r/ε ≈ 8: the smallest eigenvalue of a
    fitted Σ_k fell to 8.3·10⁻⁷ at r = 10⁻⁶).

    :param int num_components: K.
    :param int input_dim: D, data are ``(N, D)``.
    :param str covariance: ``"diag"`` or ``"full"``.
    :param float reg_covar: r ≥ 0, added to the diagonal of every covariance.
    :param str name: the prefix under which ``pyro.module`` registers the parameters.
    """

    origin: torch.Tensor  # buffers: the start (see above)
    loc_scale_tril: torch.Tensor
    cov_factor_tril: torch.Tensor
    has_enumerated_sites = True
    has_clusters = True

    @property
    def pictures(self) -> tuple[str, ...]:
        """What :func:`pyrovae.plots.save_all` draws besides the generic pictures: the
        components' ellipses over the data, for 2-d data."""
        return ("gmm",) if self.input_dim == 2 else ()

    def __init__(
        self,
        num_components: int,
        input_dim: int,
        covariance: str = "diag",
        reg_covar: float = 1e-6,
        name: str = "gmm",
    ) -> None:
        super().__init__(num_components, input_dim, covariance, reg_covar)
        self.input_dim, self.name = input_dim, name
        origin = cast(
            torch.Tensor, self._parameters.pop("locs")
        ).detach()  # μ_k = origin + L⁰ ν (see above)
        self.register_buffer("origin", origin)
        self.loc_offsets = nn.Parameter(torch.zeros_like(origin))
        shape = origin.shape if covariance == "diag" else origin.shape + origin.shape[-1:]
        unit = torch.ones(shape) if covariance == "diag" else torch.eye(input_dim).expand(shape)
        self.register_buffer("loc_scale_tril", unit.clone())
        self.register_buffer("cov_factor_tril", unit.clone())

    @property
    def locs(self) -> torch.Tensor:  # type: ignore[override]  # a Parameter in Mixture
        """μ_k = c_k + L⁰_k ν_k: ``(K, D)``."""
        offsets = self.loc_offsets / math.sqrt(self.input_dim)
        if self.covariance == "diag":
            return self.origin + self.loc_scale_tril * offsets
        return self.origin + (self.loc_scale_tril @ offsets[..., None])[..., 0]

    @property
    def cov_factor(self) -> torch.Tensor:
        """F_k with A_k = F_k F_kᵀ: ``(K, D, D)`` lower triangular (``"diag"``: its diagonal,
        ``(K, D)``)."""
        scales = self.log_scales.exp()
        if self.covariance == "diag":
            return self.cov_factor_tril * scales
        eye = torch.eye(scales.shape[-1], dtype=scales.dtype, device=scales.device)
        unit = self.unit_tril.tril(-1) / math.sqrt(self.input_dim)
        return self.cov_factor_tril @ (scales[..., None] * (eye + unit))

    @property
    def scales(self) -> torch.Tensor:
        """Diagonal covariance only: σ_k = (F_k² + r)^{1/2}, ``(K, D)``."""
        return torch.hypot(self.cov_factor, self.log_scales.new_tensor(self.reg_covar).sqrt())

    @property
    def scale_tril(self) -> torch.Tensor:
        """Cholesky factors of Σ_k = F_k F_kᵀ + r I, computed in float64: ``(K, D, D)``."""
        if self.covariance == "diag":
            return torch.diag_embed(self.scales)
        factor = self.cov_factor
        if not self.reg_covar:
            return factor
        wide = factor.double()
        eye = torch.eye(wide.shape[-1], dtype=wide.dtype, device=wide.device)
        tril, info = torch.linalg.cholesky_ex(wide @ wide.mT + self.reg_covar * eye)
        if info.any():  # F F^T + r I is positive definite unless F is no longer finite
            raise FloatingPointError(
                "the Gaussian mixture's covariances are no longer finite: training diverged; "
                "lower the learning rate"
            )
        return tril.to(factor.dtype)

    @torch.no_grad()
    def set_moments(
        self, weights: npt.ArrayLike, locs: npt.ArrayLike, covariances: npt.ArrayLike
    ) -> None:
        """Make π ``(K,)``, μ ``(K, D)`` and Σ (variances ``(K, D)`` for ``"diag"``, or
        ``(K, D, D)``) the start: c_k = μ_k, L⁰_k = chol Σ_k, B⁰_k = chol A_k with
        A_k = Σ_k − r I (in float64; a singular A_k or Σ_k lifted by 10⁻⁹ of the mean variance,
        so that its Cholesky factor exists), ν = s = U = 0. A ``"full"`` Σ given to a diagonal
        mixture keeps its diagonal."""
        like = self.origin
        cov = torch.as_tensor(covariances, dtype=torch.float64)
        if self.covariance == "diag" and cov.dim() == 3:
            cov = cov.diagonal(dim1=-2, dim2=-1)
        lift = 1e-9 * (1.0 + (cov.diagonal(dim1=-2, dim2=-1) if cov.dim() == 3 else cov).mean())
        if self.covariance == "diag":
            self.loc_scale_tril.copy_(cov.clamp(min=lift.item()).sqrt())
            self.cov_factor_tril.copy_((cov - self.reg_covar).clamp(min=lift.item()).sqrt())
        else:
            eye = torch.eye(cov.shape[-1], dtype=torch.float64)
            self.loc_scale_tril.copy_(torch.linalg.cholesky(cov + lift * eye))
            self.cov_factor_tril.copy_(
                torch.linalg.cholesky(cov - self.reg_covar * eye + lift * eye)
            )
            self.unit_tril.zero_()
        self.log_scales.zero_()
        self.loc_offsets.zero_()
        self.logits.copy_(torch.as_tensor(weights, dtype=torch.float64).log().to(like))
        self.origin.copy_(torch.as_tensor(locs).to(like))

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """p(x, c); ``x`` is ``(N, D)``; under enumeration c is ``(K, 1)``. Without ``x``, ``x``
        is sampled: ``batch_size`` rows (default 1).

        With r > 0 a factor ``"reg_covar"`` of value 0 carries the gradient of
        −(r/2) Σ_k p(c_n = k | x_n) tr Σ_k⁻¹ per row (responsibilities held fixed, as in EM's
        M-step): the training gradient vanishes where scikit-learn's EM stops, Σ_k = the
        responsibility-weighted covariance + r I, while every reported ELBO stays the exact
        log-likelihood."""
        pyro.module(self.name, self)
        with pyro.plate("data", batch_rows(x, batch_size)):
            c = self.sample_component()
            pyro.sample("x", self.components(c), obs=x)
            if self.reg_covar and x is not None:
                resp = self.joint_log_prob(x).detach().softmax(-1)
                penalty = -0.5 * self.reg_covar * resp @ self.precision_traces()
                pyro.factor("reg_covar", penalty - penalty.detach())

    def guide(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """No latent sites to guess: c is enumerated, the globals are point estimates."""
        pyro.module(self.name, self)

    def initialize(
        self, x: torch.Tensor, seed: int = 0, n_init: int = 3, max_iter: int = 100
    ) -> None:
        """Start where scikit-learn's EM ends, so that SVI only refines a good optimum.

        Each of ``n_init`` starts (``random_state=seed``) is scikit-learn's: a k-means
        clustering (π_k = cluster fractions, μ_k = centroids, Σ_k = each cluster's covariance
        + r I), then up to ``max_iter`` EM steps of :class:`~sklearn.mixture.GaussianMixture`
        with the same K, covariance type and ``reg_covar``, in float64; the start of highest
        likelihood is kept. ``max_iter=0`` keeps the k-means start alone
        (:func:`kmeans_labels`, best of ``n_init`` by inertia): gradient steps then do all the
        fitting, which on small data sets stops short of EM's optimum.
        """
        self.check_data(x)
        positive_int("n_init", n_init)
        if not max_iter:
            self.set_from_clusters(x, kmeans_labels(x, self.num_components, seed, n_init))
            return
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture as EM

        positive_int("max_iter", max_iter)
        enough_rows(x, self.num_components)
        rows = x.detach().cpu().double().numpy()
        em = EM(self.num_components, covariance_type=self.covariance, reg_covar=self.reg_covar,
                max_iter=max_iter, n_init=n_init, random_state=seed)  # fmt: skip
        log.info("GMM start: scikit-learn's EM, %d starts of up to %d steps", n_init, max_iter)
        with warnings.catch_warnings():  # not converged within max_iter: SVI goes on from there
            warnings.simplefilter("ignore", ConvergenceWarning)
            em.fit(rows)
        self.set_moments(em.weights_, em.means_, em.covariances_)

    @torch.no_grad()
    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """MAP assignments argmax_k p(c_n = k | x_n) ``(N,)``, by Pyro's ``infer_discrete``."""
        if self.weights.shape[-1] == 1:  # Pyro would enumerate nothing, warn and give (1, 1)
            return torch.zeros(len(x), dtype=torch.long, device=x.device)
        serving = infer_discrete(self.model, first_available_dim=-2, temperature=0)
        value = pyro.poutine.trace(serving).get_trace(x).nodes[COMPONENT_SITE]["value"]
        return value.reshape(len(x))  # for one row infer_discrete gives a () value

    def cluster(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(responsibilities (N, K), MAP assignments (N,))``: the clustering protocol shared
        with the mixture-prior VAE."""
        return self.responsibilities(x), self.assign(x)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws x ~ p(x): ``(n, D)`` (a GMM has no decoder whose mean could stand in)."""
        c = dist.Categorical(self.weights).sample((n,))
        return self.components(c).sample()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """μ of each row's MAP component: ``(N, D)``."""
        return self.locs[self.assign(x)]

    def check_data(self, x: torch.Tensor) -> None:
        """Refuse data this model cannot score, with what to do about it."""
        check_matrix(x, self.input_dim)
