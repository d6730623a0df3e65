"""scikit-learn estimators over pyrovae's mixture models (``pip install 'pyrovae[sklearn]'``).

:class:`GaussianMixture` and :class:`MixtureOfPPCA` are thin estimators: ``fit(X)`` builds the
Pyro model (:class:`pyrovae.models.GaussianMixture`, :class:`pyrovae.models.MixtureOfLinearDecoders`
with its exact guide), starts it with the model's own ``initialize`` and trains it by SVI with
:func:`pyrovae.fit`, all in float64; the fitted model is ``model_``. The rest is scikit-learn's
conventions: ``predict``, ``predict_proba``, ``score`` (mean log-likelihood per row, nats),
``score_samples``, ``sample``, ``bic``, ``aic``, ``get_params``/``set_params``, and the fitted
attributes of :class:`sklearn.mixture.GaussianMixture` where they exist (``weights_``,
``means_``, ``covariances_``, ``converged_``, ``n_iter_``, ``lower_bound_``,
``n_features_in_``, ``labels_``).
"""

import math
import warnings
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

try:
    from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError(
        "pyrovae.estimators needs scikit-learn >= 1.6: pip install 'pyrovae[sklearn]'"
    ) from error

from .models import GaussianMixture as PyroGaussianMixture
from .models import MixtureOfLinearDecoders
from .runs import fit as svi_fit

E = TypeVar("E", bound="_Mixture")
M = TypeVar("M", bound=torch.nn.Module)

COVARIANCE_TYPES = ("full", "diag")
RandomState = int | np.random.RandomState | None
"""scikit-learn's ``random_state``: ``None``, a seed or a ``numpy.random.RandomState``."""
DRIFT = 0.005
"""Nats per row that SVI may lose from its start (the noise of Adam at an optimum) before
``fit`` warns."""


def _without_param_store_links(model: M) -> M:
    """``model`` with the ``unconstrained`` weak references that Pyro's parameter store puts
    on each parameter removed (they cannot be pickled; the next ``pyro.module`` puts them
    back), so that a fitted estimator pickles."""
    for parameter in model.parameters():
        vars(parameter).pop("unconstrained", None)
    return model


class _Mixture(DensityMixin, ClusterMixin, BaseEstimator):
    """What both estimators share: validation, training, scores and information criteria.

    A subclass builds and starts its model in :meth:`_start` and counts its free parameters in
    :meth:`_n_parameters`; the model must have ``log_prob``-like scores through
    :meth:`_log_joint` (log π_k + log p(x | k), ``(N, K)``) and ``sample(n)``.
    """

    def fit(self: E, X: npt.ArrayLike, y: object = None) -> E:
        """Start the model (``initialize``), then ``max_epochs`` epochs of SVI (Adam, ``lr``,
        batches of ``batch_size`` rows, all rows when ``None``). ``converged_`` says whether the
        last epoch changed the mean training log-likelihood by less than ``tol``. SVI that ends
        below its start by more than :data:`DRIFT` nats per row warns, and one that is no
        longer finite raises, naming what to change."""
        rows = validate_data(self, X, dtype=np.float64)
        self._check_parameters(rows)
        seed = self.random_state  # an int is the seed of the start and of SVI, as given
        if not isinstance(seed, int | np.integer):
            seed = int(check_random_state(seed).randint(2**31 - 1))
        x = torch.tensor(rows, dtype=torch.float64)
        torch.manual_seed(seed)
        self.model_ = model = self._start(x, seed)
        start = self._mean_log_likelihood(x)
        self.n_iter_ = 0
        history: dict[str, list[Any]] = {"train_elbo": []}
        if self.max_epochs:
            batch_size = len(x) if self.batch_size is None else min(self.batch_size, len(x))
            history = svi_fit(
                model, x, epochs=self.max_epochs, batch_size=batch_size, lr=self.lr,
                seed=seed, initialize=False, progress=False,
            )  # fmt: skip
            self.n_iter_ = len(history["train_elbo"])
        self.model_ = _without_param_store_links(model)
        self._check_drift(start, self._mean_log_likelihood(x))
        elbo = history["train_elbo"]
        self.converged_ = len(elbo) >= 2 and abs(elbo[-1] - elbo[-2]) < self.tol
        self._set_attributes()
        self.lower_bound_ = float(self.score(rows))
        self.labels_ = self.predict(rows)
        return self

    def _mean_log_likelihood(self, x: torch.Tensor) -> float:
        with torch.no_grad():
            return self._joint(x).logsumexp(-1).mean().item()

    def _check_drift(self, start: float, end: float) -> None:
        """Report SVI that left its start: an error when the fit is no longer finite, a
        :class:`~sklearn.exceptions.ConvergenceWarning` when it ends more than
        :data:`DRIFT` nats per row below the start (EM's optimum for the Gaussian mixture)."""
        if not math.isfinite(end):
            raise FloatingPointError(
                f"SVI diverged: the mean training log-likelihood is {end} (start {start:.4f}); "
                f"lower lr (now {self.lr})"
            )
        if end < start - DRIFT:
            warnings.warn(
                f"SVI lowered the mean training log-likelihood from its start, {start:.4f}, to "
                f"{end:.4f} nats per row: lower lr (now {self.lr}) or raise batch_size (now "
                f"{self.batch_size}), or keep the start with max_epochs=0",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _check_parameters(self, X: np.ndarray) -> None:
        for name in ("n_components",):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"n_samples = {X.shape[0]} is fewer than n_components = {self.n_components}; "
                "lower n_components or give more rows"
            )

    def _log_joint(self, X: npt.ArrayLike) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        with torch.no_grad():
            return self._joint(torch.tensor(X, dtype=torch.float64)).numpy()

    def score_samples(self, X: npt.ArrayLike) -> np.ndarray:
        """log p(x_n) for each row: ``(N,)``, nats."""
        joint = self._log_joint(X)
        top = joint.max(1, keepdims=True)
        return (top + np.log(np.exp(joint - top).sum(1, keepdims=True)))[:, 0]

    def score(self, X: npt.ArrayLike, y: object = None) -> float:
        """Mean log-likelihood per row (nats; higher is better)."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: npt.ArrayLike) -> np.ndarray:
        """p(c_n = k | x_n): ``(N, K)``, rows sum to 1."""
        joint = self._log_joint(X)
        joint = np.exp(joint - joint.max(1, keepdims=True))
        return joint / joint.sum(1, keepdims=True)

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """The most probable component of each row: ``(N,)``."""
        return self._log_joint(X).argmax(1)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(X, labels)``: ``n_samples`` draws from the fitted density and their components,
        as scikit-learn's ``GaussianMixture.sample`` (grouped by component)."""
        check_is_fitted(self)
        if not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        torch.manual_seed(int(rng.randint(2**31 - 1)))
        with torch.no_grad():
            rows = [self._component_samples(k, int(c)) for k, c in enumerate(counts) if c]
        labels = np.repeat(np.arange(self.n_components), counts)
        return np.concatenate(rows), labels

    def bic(self, X: npt.ArrayLike) -> float:
        """Bayesian information criterion −2 log L + p log N (lower is better)."""
        rows = validate_data(self, X, dtype=np.float64, reset=False)
        return -2 * self.score(rows) * rows.shape[0] + self._n_parameters() * math.log(
            rows.shape[0]
        )

    def aic(self, X: npt.ArrayLike) -> float:
        """Akaike information criterion −2 log L + 2p (lower is better)."""
        rows = validate_data(self, X, dtype=np.float64, reset=False)
        return -2 * self.score(rows) * rows.shape[0] + 2 * self._n_parameters()


class GaussianMixture(_Mixture):
    """scikit-learn's Gaussian mixture, fitted by pyrovae: scikit-learn's EM start
    (:meth:`pyrovae.models.GaussianMixture.initialize`: ``n_init`` k-means starts, up to
    ``max_iter`` EM steps), then SVI on the exact log-likelihood with ``reg_covar``.

    :param int n_components: K.
    :param str covariance_type: ``"full"`` or ``"diag"``.
    :param float reg_covar: r ≥ 0 added to every covariance's diagonal.
    :param int max_iter: EM steps of the start (0: the k-means start alone).
    :param int n_init: k-means/EM starts, the best kept.
    :param int max_epochs: SVI epochs after the start (0: none).
    :param float lr: Adam's learning rate.
    :param int batch_size: rows per SVI step; ``None``: all.
    :param float tol: ``converged_`` when the last epoch moved the mean log-likelihood less.
    :param random_state: ``None``, an int or a ``numpy.random.RandomState``.

    Fitted: ``model_`` (the Pyro model), ``weights_`` ``(K,)``, ``means_`` ``(K, D)``,
    ``covariances_`` ``(K, D, D)`` or ``(K, D)``, ``precisions_cholesky_`` (same shapes,
    scikit-learn's: Σ⁻¹ = P Pᵀ, P upper triangular), ``converged_``, ``n_iter_`` (SVI epochs),
    ``lower_bound_`` (mean training log-likelihood), ``labels_``, ``n_features_in_``.
    """

    def __init__(
        self, n_components: int = 1, *, covariance_type: str = "full", reg_covar: float = 1e-6,
        max_iter: int = 100, n_init: int = 1, max_epochs: int = 100, lr: float = 1e-3,
        batch_size: int | None = None, tol: float = 1e-3, random_state: RandomState = None,
    ) -> None:  # fmt: skip
        self.n_components, self.covariance_type, self.reg_covar = (
            n_components, covariance_type, reg_covar
        )  # fmt: skip
        self.max_iter, self.n_init, self.max_epochs, self.lr = max_iter, n_init, max_epochs, lr
        self.batch_size, self.tol, self.random_state = batch_size, tol, random_state

    def _check_parameters(self, X: np.ndarray) -> None:
        super()._check_parameters(X)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {', '.join(COVARIANCE_TYPES)} (pyrovae has no "
                f"'tied' or 'spherical'), got {self.covariance_type!r}"
            )

    def _start(self, x: torch.Tensor, seed: int) -> PyroGaussianMixture:
        model = PyroGaussianMixture(
            self.n_components, x.shape[1], self.covariance_type, self.reg_covar
        ).double()
        model.initialize(x, seed=seed, n_init=self.n_init, max_iter=self.max_iter)
        return model

    def _joint(self, x: torch.Tensor) -> torch.Tensor:
        return self.model_.joint_log_prob(x)

    def _component_samples(self, k: int, n: int) -> np.ndarray:
        return self.model_.components(torch.tensor([k])).sample((n,))[:, 0].numpy()

    def _set_attributes(self) -> None:
        model = self.model_
        with torch.no_grad():
            tril = model.scale_tril
            self.weights_ = model.weights.numpy().copy()
            self.means_ = model.locs.numpy().copy()
            eye = torch.eye(tril.shape[-1], dtype=tril.dtype).expand_as(tril)
            inverse = torch.linalg.solve_triangular(tril, eye, upper=False)  # L⁻¹
            if self.covariance_type == "full":
                self.covariances_ = (tril @ tril.mT).numpy()
                self.precisions_cholesky_ = inverse.mT.numpy()  # Σ⁻¹ = L⁻ᵀ L⁻¹
            else:
                self.covariances_ = tril.diagonal(dim1=-2, dim2=-1).square().numpy()
                self.precisions_cholesky_ = 1 / np.sqrt(self.covariances_)

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        covariance = k * d * (d + 1) / 2 if self.covariance_type == "full" else k * d
        return int(covariance + k * d + k - 1)


class MixtureOfPPCA(_Mixture):
    """Tipping & Bishop's mixture of probabilistic PCA, p(x) = Σ_k π_k N(x; μ_k, W_k W_kᵀ +
    σ_k² I), as :class:`pyrovae.models.MixtureOfLinearDecoders` with its exact guide (so that
    the ELBO is log p(x)): the k-means + per-cluster PCA start, then SVI.

    :param int n_components: K.
    :param int latent_dim: E < n_features, each component's subspace.
    :param int n_init: k-means starts of the start.
    :param int max_epochs, lr, batch_size, tol, random_state: as :class:`GaussianMixture`.

    Fitted: ``model_``, ``weights_`` ``(K,)``, ``means_`` ``(K, D)``, ``components_``
    ``(K, D, E)`` (W_k), ``noise_variance_`` ``(K,)`` (σ_k²), ``covariances_`` ``(K, D, D)``,
    ``converged_``, ``n_iter_``, ``lower_bound_``, ``labels_``, ``n_features_in_``.
    """

    def __init__(
        self, n_components: int = 1, *, latent_dim: int = 1, n_init: int = 1,
        max_epochs: int = 100, lr: float = 1e-3, batch_size: int | None = None,
        tol: float = 1e-3, random_state: RandomState = None,
    ) -> None:  # fmt: skip
        self.n_components, self.latent_dim, self.n_init = n_components, latent_dim, n_init
        self.max_epochs, self.lr, self.batch_size = max_epochs, lr, batch_size
        self.tol, self.random_state = tol, random_state

    def _check_parameters(self, X: np.ndarray) -> None:
        super()._check_parameters(X)
        if X.shape[1] <= self.latent_dim:
            raise ValueError(
                f"latent_dim = {self.latent_dim} must be smaller than n_features = {X.shape[1]}"
            )

    def _start(self, x: torch.Tensor, seed: int) -> MixtureOfLinearDecoders:
        model = MixtureOfLinearDecoders(
            self.n_components, x.shape[1], self.latent_dim, guide="exact"
        ).double()
        model.initialize(x, seed=seed, n_init=self.n_init)
        return model

    def _joint(self, x: torch.Tensor) -> torch.Tensor:
        return self.model_.posterior(x)["log_joint"]

    def _component_samples(self, k: int, n: int) -> np.ndarray:
        return self.model_.components(torch.tensor([k])).sample((n,))[:, 0].numpy()

    def _set_attributes(self) -> None:
        model = self.model_
        with torch.no_grad():
            self.weights_ = model.weights.numpy().copy()
            self.means_ = model.locs.numpy().copy()
            self.components_ = model.bases.numpy().copy()
            self.noise_variance_ = model.noise_scales.square().numpy().copy()
        eye = np.eye(self.means_.shape[1])
        self.covariances_ = (
            self.components_ @ self.components_.transpose(0, 2, 1)
            + self.noise_variance_[:, None, None] * eye
        )

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        e = self.latent_dim
        return int(k - 1 + k * d + k * (d * e - e * (e - 1) / 2) + k)
