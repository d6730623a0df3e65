"""Gaussian mixture with its assignment as an enumerated discrete latent."""

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import infer_discrete
from torch import nn

from ..checks import check_matrix, positive_int
from .kmeans import kmeans
from .vae import batch_rows

COVARIANCES = ("diag", "full")


class GaussianMixture(nn.Module):
    """p(x) = Σ_k π_k N(x; μ_k, Σ_k), written with an explicit assignment c:

    .. math::
        c_n \\sim \\mathrm{Categorical}(\\pi), \\qquad
        x_n \\mid c_n \\sim N(\\mu_{c_n}, \\Sigma_{c_n})

    ``model(x)`` marks ``"assignment"`` for parallel enumeration, so ``TraceEnum_ELBO`` sums it
    out exactly: its loss is −Σ_n log p(x_n), the exact negative log-likelihood. π, μ and Σ are
    module parameters (point estimates, fitted by maximum likelihood), so ``guide(x)`` has no
    sample sites: it only registers the module. Σ_k is ``diag(σ_k²)`` (``covariance="diag"``) or
    ``L_k L_kᵀ`` with a lower-triangular Cholesky factor L_k with positive diagonal
    (``covariance="full"``). Parametrisation: π = softmax(``logits``), σ_k (or diag L_k) =
    exp(``log_scales``), the strict lower triangle of L_k = that of ``tril``.

    Maximum likelihood by gradient steps gets stuck when started badly (everything in one
    component); call :meth:`initialize` first — :func:`pyrovae.fit` does so itself.

    :param int num_components: K.
    :param int dim: D, data are ``(N, D)``.
    :param str covariance: ``"diag"`` or ``"full"``.
    :param str name: the prefix under which ``pyro.module`` registers the parameters.
    """

    has_enumerated_sites = True
    has_clusters = True

    @property
    def pictures(self):
        """What :func:`pyrovae.plots.save_all` draws besides the generic pictures: the
        components' ellipses over the data, for 2-d data."""
        return ("gmm",) if self.input_dim == 2 else ()

    def __init__(self, num_components, dim, covariance="diag", name="gmm"):
        super().__init__()
        positive_int("num_components", num_components)
        positive_int("dim", dim)
        if covariance not in COVARIANCES:
            raise ValueError(
                f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}"
            )
        self.num_components, self.input_dim = num_components, dim
        self.covariance, self.name = covariance, name
        self.logits = nn.Parameter(torch.zeros(num_components))
        self.locs = nn.Parameter(torch.randn(num_components, dim))
        self.log_scales = nn.Parameter(torch.zeros(num_components, dim))
        if covariance == "full":
            self.tril = nn.Parameter(torch.zeros(num_components, dim, dim))

    @property
    def weights(self):
        """π: ``(K,)``."""
        return self.logits.softmax(-1)

    @property
    def scale_tril(self):
        """Cholesky factors L_k of Σ_k: ``(K, D, D)``."""
        diag = torch.diag_embed(self.log_scales.exp())
        return diag if self.covariance == "diag" else diag + self.tril.tril(-1)

    def components(self, index=None):
        """N(μ_k, Σ_k) for k in ``index`` (any integer tensor; all K when ``None``), event (D,)."""
        index = slice(None) if index is None else index
        loc = self.locs[index]
        if self.covariance == "diag":
            return dist.Normal(loc, self.log_scales[index].exp()).to_event(1)
        return dist.MultivariateNormal(loc, scale_tril=self.scale_tril[index])

    def model(self, x=None, batch_size=None):
        """p(x, c); ``x`` is ``(N, D)``; under enumeration c is ``(K, 1)``. Without ``x``, ``x``
        is sampled: ``batch_size`` rows (default 1)."""
        pyro.module(self.name, self)
        with pyro.plate("data", batch_rows(x, batch_size)):
            c = pyro.sample(
                "assignment", dist.Categorical(self.weights), infer={"enumerate": "parallel"}
            )
            pyro.sample("x", self.components(c), obs=x)

    def guide(self, x=None, batch_size=None):
        """No latent sites to guess: c is enumerated, the globals are point estimates."""
        pyro.module(self.name, self)

    @torch.no_grad()
    def initialize(self, x, seed=0, n_init=3, reg_covar=1e-6):
        """Start from k-means: k-means++ seeding, Lloyd iterations, best of ``n_init`` runs.

        π_k = cluster fractions, μ_k = centroids, Σ_k = each cluster's (diagonal) covariance
        plus ``reg_covar`` I, so no component starts empty or collapsed onto one point.
        """
        self.check_data(x)
        x = x.to(self.locs)
        centres, labels = kmeans(x, self.num_components, seed=seed, n_init=n_init)
        counts = torch.bincount(labels, minlength=self.num_components).to(x).clamp(min=1)
        diff = x - centres[labels]
        eye = torch.eye(self.input_dim).to(x)
        cov = torch.zeros(self.num_components, self.input_dim, self.input_dim).to(x)
        cov = cov.index_add_(0, labels, diff[:, :, None] * diff[:, None, :])
        cov = cov / counts[:, None, None] + reg_covar * eye
        if self.covariance == "diag":
            self.log_scales.copy_(cov.diagonal(dim1=-2, dim2=-1).sqrt().log())
        else:
            chol = torch.linalg.cholesky(cov)
            self.log_scales.copy_(chol.diagonal(dim1=-2, dim2=-1).log())
            self.tril.copy_(chol)
        self.logits.copy_((counts / counts.sum()).log())
        self.locs.copy_(centres)

    def joint_log_prob(self, x):
        """log π_k + log N(x_n; μ_k, Σ_k): ``(N, K)``."""
        return self.weights.log() + self.components().log_prob(x[:, None, :])

    def log_prob(self, x):
        """Exact log p(x_n) = logsumexp_k of :meth:`joint_log_prob`: ``(N,)``."""
        return self.joint_log_prob(x).logsumexp(-1)

    @torch.no_grad()
    def responsibilities(self, x):
        """Posterior over assignments p(c_n = k | x_n): ``(N, K)``, rows sum to 1."""
        return self.joint_log_prob(x).softmax(-1)

    @torch.no_grad()
    def assign(self, x):
        """MAP assignments argmax_k p(c_n = k | x_n) ``(N,)``, by Pyro's ``infer_discrete``."""
        serving = infer_discrete(self.model, first_available_dim=-2, temperature=0)
        return pyro.poutine.trace(serving).get_trace(x).nodes["assignment"]["value"]

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
