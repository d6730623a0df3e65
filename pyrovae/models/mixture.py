"""Gaussian mixtures: the GMM model, built on the one mixture block, and the k-means start.

:class:`~pyrovae.parts.mixture.Mixture` (in :mod:`pyrovae.parts`) holds π, μ_k, Σ_k and
turns them into distributions; :class:`GaussianMixture` (the ``"gmm"`` model: a mixture over
the data) and the ``"mixture"`` prior of the VAE (:class:`pyrovae.parts.MixturePrior`: a
mixture over the latent codes) are both this block. Every model samples its mixture component
at the site :data:`COMPONENT_SITE`.
"""

import warnings

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import infer_discrete

from ..checks import check_matrix, positive_int
from ..parts.mixture import COMPONENT_SITE, COVARIANCES, Mixture  # noqa: F401 (the GMM's block)
from ..parts.plate import batch_rows
from ..parts.registry import Recorded


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

    Maximum likelihood by gradient steps gets stuck when started badly (everything in one
    component); call :meth:`initialize` first — :func:`pyrovae.fit` does so itself.

    :param int num_components: K.
    :param int input_dim: D, data are ``(N, D)``.
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

    def __init__(self, num_components, input_dim, covariance="diag", reg_covar=1e-6, name="gmm"):
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
