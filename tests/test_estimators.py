"""The scikit-learn estimators: scikit-learn's own checks, its conventions, BIC against its
GaussianMixture, scores against scipy, and the docs' Pipeline/GridSearchCV example."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGMM
from sklearn.utils.estimator_checks import parametrize_with_checks

from pyrovae.estimators import GaussianMixture, MixtureOfPPCA

# No check is skipped. check_clustering asserts ARI > 0.4 on three blobs and only sets
# n_clusters: our K is n_components (default 1, as scikit-learn's GaussianMixture), hence K = 3.
# check_array_api_input is skipped by scikit-learn itself unless SCIPY_ARRAY_API=1.
ESTIMATORS = [
    GaussianMixture(3, covariance_type="full", max_epochs=3),
    GaussianMixture(3, covariance_type="diag", max_epochs=3),
    MixtureOfPPCA(3, max_epochs=3),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=400, d=3, centers=4, seed=0):
    return make_blobs(n, n_features=d, centers=centers, random_state=seed)[0]


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_bic_picks_k_as_sklearn_does(covariance):
    """On four blobs, the K of smallest BIC over 1..7 is scikit-learn's (both 4)."""
    X, ks = blobs(), range(1, 8)
    ours = [
        GaussianMixture(k, covariance_type=covariance, max_epochs=10, random_state=0).fit(X).bic(X)
        for k in ks
    ]
    theirs = [SklearnGMM(k, covariance_type=covariance, random_state=0).fit(X).bic(X) for k in ks]
    assert ks[int(np.argmin(ours))] == ks[int(np.argmin(theirs))] == 4


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_start_alone_is_sklearn_em(covariance):
    """With no SVI epoch the fit is scikit-learn's EM at the same random_state: the same
    attributes, scores, BIC and AIC (its parameter count included)."""
    X = blobs()
    ours = GaussianMixture(4, covariance_type=covariance, max_epochs=0, random_state=3).fit(X)
    ref = SklearnGMM(4, covariance_type=covariance, random_state=3).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert getattr(ours, name) == pytest.approx(getattr(ref, name), rel=1e-6, abs=1e-9)
    assert ours.score_samples(X) == pytest.approx(ref.score_samples(X), abs=1e-6)
    assert ours.predict_proba(X) == pytest.approx(ref.predict_proba(X), abs=1e-6)
    assert ours.bic(X) == pytest.approx(ref.bic(X), rel=1e-9)
    assert ours.aic(X) == pytest.approx(ref.aic(X), rel=1e-9)
    assert ours.n_iter_ == 0 and not ours.converged_


def mixture_density(est, X):
    """log Σ_k π_k N(x; μ_k, Σ_k) from the fitted attributes, by scipy."""
    cov = est.covariances_
    cov = cov if cov.ndim == 3 else np.stack([np.diag(c) for c in cov])
    parts = zip(est.weights_, est.means_, cov, strict=True)
    dens = [w * multivariate_normal(m, c).pdf(X) for w, m, c in parts]
    return np.log(np.sum(dens, 0))


@pytest.mark.parametrize(
    "est",
    [
        GaussianMixture(3, covariance_type="diag", max_epochs=30, lr=1e-2, random_state=1),
        MixtureOfPPCA(3, latent_dim=2, max_epochs=30, lr=1e-2, random_state=1),
    ],  # fmt: skip
    ids=["gmm", "ppca"],
)
def test_scores_and_predictions_agree_with_attributes(est):
    X = blobs(300, d=4, centers=3)
    est.fit(X)
    assert est.score_samples(X) == pytest.approx(mixture_density(est, X), abs=1e-8)
    assert est.score(X) == pytest.approx(est.score_samples(X).mean())
    assert est.lower_bound_ == pytest.approx(est.score(X))
    proba = est.predict_proba(X)
    assert proba.sum(1) == pytest.approx(np.ones(len(X)))
    assert np.array_equal(est.predict(X), proba.argmax(1))
    assert np.array_equal(est.labels_, est.predict(X)) and est.n_iter_ == 30


@pytest.mark.parametrize(
    "est",
    [GaussianMixture(2, random_state=0), MixtureOfPPCA(2, random_state=0)],
    ids=["gmm", "ppca"],
)
def test_sample_follows_the_fitted_mixture(est):
    """20,000 draws: component counts within 5 sd of n π_k, each component's mean within 5 sd
    of μ_k (sd from the fitted covariance)."""
    X = blobs(300, d=3, centers=2, seed=2)
    est.set_params(max_epochs=5).fit(X)
    n = 20_000
    rows, labels = est.sample(n)
    assert rows.shape == (n, 3) and labels.shape == (n,)
    counts = np.bincount(labels, minlength=2)
    w = est.weights_
    assert np.all(np.abs(counts - n * w) < 5 * np.sqrt(n * w * (1 - w)))
    for k in range(2):
        sd = np.sqrt(np.diag(est.covariances_[k]) / counts[k])
        assert np.all(np.abs(rows[labels == k].mean(0) - est.means_[k]) < 5 * sd)


def test_refuses_what_it_cannot_fit():
    X = blobs()
    with pytest.raises(ValueError, match="'tied' or 'spherical'"):
        GaussianMixture(2, covariance_type="tied").fit(X)
    with pytest.raises(ValueError, match="fewer than n_components"):
        GaussianMixture(5).fit(X[:3])
    with pytest.raises(ValueError, match="latent_dim = 3 must be smaller than n_features = 3"):
        MixtureOfPPCA(2, latent_dim=3).fit(X)


def test_docs_examples_run(capsys):
    """Every python block of docs/estimators.md runs; the BIC one prints K = 4 and the
    GridSearchCV one picks what scikit-learn's GaussianMixture picks in the same search (same
    grid, folds and random_state): full covariances, 2 components."""
    text = (Path(__file__).parents[1] / "docs" / "estimators.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/estimators.md", "exec"), {})
    out = capsys.readouterr().out
    assert "K = 4" in out
    assert "{'gaussianmixture__covariance_type': 'full', 'gaussianmixture__n_components': 2}" in out


def test_a_fit_that_leaves_its_start_is_reported():
    """Singular blobs (a collinear and a constant feature), batches of 128: at lr 0.5 SVI ends
    below its EM start (a ConvergenceWarning that names lr), at lr 5 its covariances overflow
    (an error that says to lower it); at lr 10⁻² it stays (no warning)."""
    x, _ = make_blobs(600, n_features=5, centers=3, random_state=0)
    X = np.hstack([x, 2 * x[:, :1] + 1, np.ones((len(x), 1))])
    options = dict(max_epochs=20, batch_size=128, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        GaussianMixture(3, lr=1e-2, **options).fit(X)
    with pytest.warns(ConvergenceWarning, match=r"lower lr \(now 0.5\)"):
        GaussianMixture(3, lr=0.5, **options).fit(X)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        GaussianMixture(3, lr=5.0, **options).fit(X)
