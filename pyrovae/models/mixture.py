"""Gaussian mixtures: the one mixture block, the GMM model built on it, and the k-means start.

:class:`Mixture` holds π, μ_k, Σ_k and turns them into distributions; :class:`GaussianMixture`
(the ``"gmm"`` model: a mixture over the data) and the ``"mixture"`` prior of the VAE
(:class:`pyrovae.parts.MixturePrior`: a mixture over the latent codes) are both this block.
Every model samples its mixture component at the site :data:`COMPONENT_SITE`.
"""

import logging
import math
import warnings

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import infer_discrete
from torch import nn

from ..checks import check_matrix, nonnegative_real, positive_int, positive_real

COVARIANCES = ("diag", "full")
COMPONENT_SITE = "assignment"
"""The name of the enumerated component index c_n in every mixture model of pyrovae."""

log = logging.getLogger(__name__)  # the EM start's progress, at INFO (the CLI shows it)


def enough_rows(x, k):
    """Refuse fewer rows than clusters, which neither k-means nor EM can start from."""
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} rows, got {x.shape[0]}; lower k")


def kmeans_labels(x, k, seed=0, n_init=3):
    """k-means cluster of each row of ``x`` ``(N, D)``: an int64 tensor ``(N,)``.

    scikit-learn's :class:`~sklearn.cluster.KMeans`: k-means++ seeding, Lloyd iterations, the
    run of smallest inertia among ``n_init`` (``random_state=seed``), in float64.
    """
    from sklearn.cluster import KMeans  # scikit-learn loads in ~1 s: only when clustering

    enough_rows(x, k)
    rows = x.detach().cpu().double().numpy()
    labels = KMeans(k, n_init=n_init, random_state=seed).fit_predict(rows)
    return torch.as_tensor(labels, dtype=torch.long, device=x.device)


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

    def __init__(self, num_components, dim, covariance="diag", reg_covar=0.0, init_scale=1.0):
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
    def weights(self):
        """π: ``(K,)``."""
        return self.logits.softmax(-1)

    @property
    def scales(self):
        """Diagonal covariance only: σ_k = (exp(2 ``log_scales``) + r)^{1/2}, ``(K, D)``."""
        return torch.hypot(self.log_scales.exp(), self.log_scales.new_tensor(self.reg_covar).sqrt())

    @property
    def scale_tril(self):
        """Cholesky factors of Σ_k: ``(K, D, D)`` (L_k itself when r = 0)."""
        if self.covariance == "diag":
            return torch.diag_embed(self.scales)
        unit = self.unit_tril
        eye = torch.eye(unit.shape[-1], dtype=unit.dtype, device=unit.device)
        factor = self.log_scales.exp()[..., None] * (eye + unit.tril(-1))
        if not self.reg_covar:
            return factor
        return torch.linalg.cholesky(factor @ factor.mT + self.reg_covar * eye)

    def components(self, index=None):
        """N(μ_k, Σ_k) for k in ``index`` (any integer tensor; all K when ``None``), event (D,)."""
        index = slice(None) if index is None else index
        if self.covariance == "diag":
            return dist.Normal(self.locs[index], self.scales[index]).to_event(1)
        return dist.MultivariateNormal(self.locs[index], scale_tril=self.scale_tril[index])

    def sample_component(self):
        """Emit c ~ Categorical(π) at :data:`COMPONENT_SITE`, marked for parallel enumeration,
        inside the caller's plate; returns c (``(K, 1)`` under enumeration)."""
        return pyro.sample(
            COMPONENT_SITE, dist.Categorical(self.weights), infer={"enumerate": "parallel"}
        )

    def precision_traces(self):
        """tr Σ_k⁻¹: ``(K,)``."""
        if self.covariance == "diag":
            return self.scales.pow(-2).sum(-1)
        tril = self.scale_tril
        eye = torch.eye(tril.shape[-1], dtype=tril.dtype, device=tril.device)
        return torch.linalg.solve_triangular(tril, eye, upper=False).square().sum((-2, -1))

    def joint_log_prob(self, v):
        """log π_k + log N(v_n; μ_k, Σ_k) for rows ``v`` ``(N, D)``: ``(N, K)``."""
        return self.weights.log() + self.components().log_prob(v[:, None, :])

    def log_prob(self, v):
        """Exact log p(v_n) = logsumexp_k of :meth:`joint_log_prob`: ``(N,)``."""
        return self.joint_log_prob(v).logsumexp(-1)

    @torch.no_grad()
    def responsibilities(self, v):
        """Posterior over components p(c_n = k | v_n): ``(N, K)``, rows sum to 1."""
        return self.joint_log_prob(v).softmax(-1)

    @torch.no_grad()
    def set_moments(self, weights, locs, covariances):
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
    def set_from_clusters(self, v, labels):
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


class GaussianMixture(Mixture):
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

    :param int num_components: K.
    :param int input_dim: D, data are ``(N, D)`` (``dim`` is its deprecated name).
    :param str covariance: ``"diag"`` or ``"full"``.
    :param float reg_covar: r ≥ 0, added to the diagonal of every covariance.
    :param str name: the prefix under which ``pyro.module`` registers the parameters.
    """

    has_enumerated_sites = True
    has_clusters = True

    @property
    def pictures(self):
        """What :func:`pyrovae.plots.save_all` draws besides the generic pictures: the
        components' ellipses over the data, for 2-d data."""
        return ("gmm",) if self.input_dim == 2 else ()

    def __init__(
        self, num_components, input_dim=None, covariance="diag", reg_covar=1e-6, name="gmm",
        dim=None,
    ):  # fmt: skip
        if dim is not None:
            warnings.warn(
                "GaussianMixture(dim=...) is deprecated; use input_dim=...",
                DeprecationWarning,
                stacklevel=2,
            )
            input_dim = dim if input_dim is None else input_dim
        super().__init__(num_components, input_dim, covariance, reg_covar)
        self.input_dim, self.name = input_dim, name

    def model(self, x=None, batch_size=None):
        """p(x, c); ``x`` is ``(N, D)``; under enumeration c is ``(K, 1)``. Without ``x``, ``x``
        is sampled: ``batch_size`` rows (default 1).

        With r > 0 a factor ``"reg_covar"`` of value 0 carries the gradient of
        −(r/2) Σ_k p(c_n = k | x_n) tr Σ_k⁻¹ per row (responsibilities held fixed, as in EM's
        M-step): the training gradient vanishes where scikit-learn's EM stops, Σ_k = the
        responsibility-weighted covariance + r I, while every reported ELBO stays the exact
        log-likelihood."""
        from .vae import batch_rows  # vae.py imports the parts, whose mixture prior imports us

        pyro.module(self.name, self)
        with pyro.plate("data", batch_rows(x, batch_size)):
            c = self.sample_component()
            pyro.sample("x", self.components(c), obs=x)
            if self.reg_covar and x is not None:
                resp = self.joint_log_prob(x).detach().softmax(-1)
                penalty = -0.5 * self.reg_covar * resp @ self.precision_traces()
                pyro.factor("reg_covar", penalty - penalty.detach())

    def guide(self, x=None, batch_size=None):
        """No latent sites to guess: c is enumerated, the globals are point estimates."""
        pyro.module(self.name, self)

    def initialize(self, x, seed=0, n_init=3, max_iter=100):
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
    def assign(self, x):
        """MAP assignments argmax_k p(c_n = k | x_n) ``(N,)``, by Pyro's ``infer_discrete``."""
        serving = infer_discrete(self.model, first_available_dim=-2, temperature=0)
        return pyro.poutine.trace(serving).get_trace(x).nodes[COMPONENT_SITE]["value"]

    def cluster(self, x):
        """``(responsibilities (N, K), MAP assignments (N,))``: the clustering protocol shared
        with the mixture-prior VAE."""
        return self.responsibilities(x), self.assign(x)

    @torch.no_grad()
    def sample(self, n):
        """``n`` draws x ~ p(x): ``(n, D)`` (a GMM has no decoder whose mean could stand in)."""
        c = dist.Categorical(self.weights).sample((n,))
        return self.components(c).sample()

    @torch.no_grad()
    def reconstruct(self, x):
        """μ of each row's MAP component: ``(N, D)``."""
        return self.locs[self.assign(x)]

    def check_data(self, x):
        """Refuse data this model cannot score, with what to do about it."""
        check_matrix(x, self.input_dim)
