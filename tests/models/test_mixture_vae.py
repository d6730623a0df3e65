"""The mixture prior in a VAE: exact sum over c in the ELBO, clusters, composition with parts."""

import numpy as np
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.cluster import KMeans

import pyrovae
from pyrovae.infer.clustering import clustering_scores
from pyrovae.infer.starts import start
from pyrovae.infer.train import default_elbo
from pyrovae.models import VAE, vade
from pyrovae.models.mixture import COMPONENT_SITE, equal_weight_em
from pyrovae.parts import MixturePrior, priors

MIXTURE = {"name": "mixture", "num_components": 3}


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_sums_the_component_out_exactly(likelihood):
    """For one fixed draw z ~ q(z|x), the enumerated loss is
    −Σ_n [log p(x_n|z_n) + log Σ_k π_k N(z_n; μ_k, σ_k²) − log q(z_n|x_n)]."""
    torch.manual_seed(0)
    vae = VAE(6, 2, prior=MIXTURE, likelihood=likelihood, hidden=(8,)).double()
    with torch.no_grad():
        vae.prior.logits.copy_(torch.tensor([0.2, -0.5, 0.1]))
    x = torch.rand(5, 6, dtype=torch.float64).round()
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    z = guide_trace.nodes["z"]["value"]
    guide = poutine.replay(vae.guide, trace=guide_trace)
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(vae.model, guide, x)

    w = vae.prior.weights.detach().numpy()
    mu, sigma = vae.prior.locs.detach().numpy(), vae.prior.log_scales.exp().detach().numpy()
    zn = z.detach().numpy()
    log_pz = logsumexp(
        [np.log(w[k]) + norm(mu[k], sigma[k]).logpdf(zn).sum(-1) for k in range(3)], axis=0
    )
    with torch.no_grad():
        log_px = vae.likelihood(vae.decoder(z)).log_prob(x).numpy()
        log_q = vae.posterior(vae.encoder(x)).log_prob(z).numpy()
    assert loss == pytest.approx(-(log_px + log_pz - log_q).sum(), rel=1e-6)


def test_a_full_covariance_prior_sums_the_component_out_exactly():
    """covariance="full": the same exact sum with log N(z; μ_k, Σ_k) from scipy."""
    from scipy.stats import multivariate_normal

    torch.manual_seed(1)
    vae = VAE(6, 2, prior={**MIXTURE, "covariance": "full"}, hidden=(8,)).double()
    with torch.no_grad():
        vae.prior.unit_tril.copy_(torch.randn(3, 2, 2))
        vae.prior.log_scales.copy_(0.3 * torch.randn(3, 2))
    x = torch.rand(5, 6, dtype=torch.float64).round()
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    z = guide_trace.nodes["z"]["value"].detach().numpy()
    guide = poutine.replay(vae.guide, trace=guide_trace)
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(vae.model, guide, x)

    w, mu = vae.prior.weights.detach().numpy(), vae.prior.locs.detach().numpy()
    tril = vae.prior.scale_tril.detach().numpy()
    densities = [multivariate_normal(mu[k], tril[k] @ tril[k].T).logpdf(z) for k in range(3)]
    log_pz = logsumexp([np.log(w[k]) + densities[k] for k in range(3)], axis=0)
    zt = torch.as_tensor(z)
    with torch.no_grad():
        log_px = vae.likelihood(vae.decoder(zt)).log_prob(x).numpy()
        log_q = vae.posterior(vae.encoder(x)).log_prob(zt).numpy()
    assert loss == pytest.approx(-(log_px + log_pz - log_q).sum(), rel=1e-6)


def test_prior_marks_component_for_enumeration():
    prior = priors.build({"name": "mixture", "num_components": 4}, latent_dim=3)
    assert isinstance(prior, MixturePrior) and prior.has_enumerated_sites
    trace = poutine.trace(prior).get_trace("z")
    assert trace.nodes[COMPONENT_SITE]["infer"] == {"enumerate": "parallel"}
    assert trace.nodes["z"]["value"].shape == (3,)
    vae = VAE(5, 3, prior=prior)
    assert vae.has_enumerated_sites and vae.has_clusters
    assert isinstance(default_elbo(vae), TraceEnum_ELBO)
    assert not VAE(5, 3).has_enumerated_sites


@pytest.mark.parametrize(
    "options",
    [
        {"likelihood": "bernoulli"},
        {"likelihood": {"name": "gaussian", "scale": 0.5}, "hidden": (16, 8), "activation": "tanh"},
    ],
)
def test_trains_with_any_likelihood_and_encoder(options):
    torch.manual_seed(0)
    x = torch.rand(40, 6).round()
    vae = VAE(6, 2, prior=MIXTURE, pretrain_epochs=2, **options)
    history = pyrovae.fit(vae, x, epochs=2, batch_size=16, progress=False)
    assert np.isfinite(history["train_elbo"]).all()
    probs, labels = vae.cluster(x)
    assert probs.shape == (40, 3) and torch.allclose(probs.sum(1), torch.ones(40))
    assert torch.equal(labels, probs.argmax(1))
    assert vae.sample(4).shape == (4, 6)


def test_cluster_needs_mixture_prior():
    with pytest.raises(ValueError, match="prior='mixture'"):
        VAE(6, 2).cluster(torch.rand(3, 6))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_components": 0}, "num_components"),
        ({"num_components": 2.5}, "num_components"),
        ({"init_scale": 0.0}, "init_scale"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        MixturePrior(2, **options)


def test_vade_start_is_on_by_default_for_a_mixture_prior_only():
    assert VAE(6, 2, prior=MIXTURE).pretrain_epochs is None  # auto: ~3000 batches
    assert VAE(6, 2, prior=MIXTURE, pretrain_epochs=0).pretrain_epochs == 0
    assert VAE(6, 2).pretrain_epochs == 0
    with pytest.raises(ValueError, match="pretrain_epochs is VaDE's start of a mixture prior"):
        VAE(6, 2, pretrain_epochs=3)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="pretrain_epochs must be an integer >= 0"):
            VAE(6, 2, prior=MIXTURE, pretrain_epochs=bad)


def test_initialize_fits_the_prior_to_the_codes_by_em():
    """VaDE's start: after the auto-encoder, the prior takes the equal-weight EM fit of the
    codes (100 starts); with weights="fitted" scikit-learn's full-covariance EM fit (weights,
    means, the covariances' diagonals)."""
    from sklearn.mixture import GaussianMixture as SklearnGMM

    torch.manual_seed(0)
    x = torch.rand(120, 6).round()
    vae = VAE(6, 2, prior=MIXTURE, hidden=(8,), pretrain_epochs=3).double()
    start(vae, x.double(), seed=4)
    codes = vae.encode(x.double())
    means, cov, _ = equal_weight_em(codes, 3, "full", seed=4, n_init=100)
    assert vae.prior.locs.detach().numpy() == pytest.approx(means.numpy(), rel=1e-6, abs=1e-9)
    vade.init_mixture_prior(vae, x.double(), seed=4, n_init=5, weights="fitted")
    codes = codes.numpy()
    ref = SklearnGMM(3, covariance_type="full", n_init=5, random_state=4, reg_covar=1e-6)
    ref.fit(codes)
    prior = vae.prior
    assert prior.weights.detach().numpy() == pytest.approx(ref.weights_, rel=1e-6)
    assert prior.locs.detach().numpy() == pytest.approx(ref.means_, rel=1e-6, abs=1e-9)
    diagonals = np.diagonal(ref.covariances_, axis1=1, axis2=2)
    assert (prior.scales**2).detach().numpy() == pytest.approx(diagonals, rel=1e-6)


def test_equal_weight_em_is_scikit_learns_em_where_the_weights_are_equal():
    """On three well-separated clusters of 300 rows each, EM with the weights held at 1/3
    ends where scikit-learn's EM (weights free, ending at 1/3 ± 1e-5) ends."""
    from sklearn.mixture import GaussianMixture as SklearnGMM

    torch.manual_seed(0)
    x = torch.cat([torch.randn(300, 3) + 6 * torch.eye(3)[i] for i in range(3)]).double()
    for covariance in ("full", "diag"):
        means, cov, loglik = equal_weight_em(x, 3, covariance, seed=0, n_init=3)
        ref = SklearnGMM(3, covariance_type=covariance, n_init=3, random_state=0, reg_covar=1e-6)
        ref.fit(x.numpy())
        assert ref.weights_ == pytest.approx(np.full(3, 1 / 3), abs=1e-4)
        order, ref_order = means.argmax(1).argsort().numpy(), ref.means_.argmax(1).argsort()
        assert means.numpy()[order] == pytest.approx(ref.means_[ref_order], abs=1e-5)
        assert cov.numpy()[order] == pytest.approx(ref.covariances_[ref_order], abs=1e-5)
        assert loglik == pytest.approx(ref.score(x.numpy()), abs=1e-6)


def test_equal_weight_em_holds_the_weights_where_scikit_learn_fits_them():
    """900 rows around 0 and 100 around 8 (1-d): with π held at ½ the two means stay at the
    clusters' (EM's fixed point: each mean is its responsibilities' weighted mean, computed
    here from the returned fit), the weights scikit-learn fits are 0.9 and 0.1."""
    from sklearn.mixture import GaussianMixture as SklearnGMM

    torch.manual_seed(0)
    x = torch.cat([torch.randn(900, 1), torch.randn(100, 1) + 8]).double()
    means, variances, _ = equal_weight_em(x, 2, "diag", seed=0, n_init=2, tol=1e-12, max_iter=500)
    log_n = torch.distributions.Normal(means[:, 0], variances[:, 0].sqrt()).log_prob(x)  # (N, 2)
    resp = log_n.softmax(-1)
    fixed_point = (resp * x).sum(0) / resp.sum(0)
    assert means[:, 0].numpy() == pytest.approx(fixed_point.numpy(), abs=1e-5)
    assert sorted(means[:, 0].tolist()) == pytest.approx([0.0, 8.0], abs=0.3)
    ref = SklearnGMM(2, random_state=0).fit(x.numpy())
    assert sorted(ref.weights_) == pytest.approx([0.1, 0.9], abs=0.01)


def test_the_equal_weight_start_gives_the_prior_its_fit():
    """VaDE's start by default: the prior takes the equal-weight EM fit of the codes, all of Σ_k
    for a full-covariance prior and its diagonals for a diagonal one."""
    torch.manual_seed(0)
    x = torch.rand(150, 6).round().double()
    for covariance in ("full", "diag"):
        vae = VAE(6, 2, prior={**MIXTURE, "covariance": covariance}, hidden=(8,)).double()
        vade.init_mixture_prior(vae, x, seed=3)
        means, cov, _ = equal_weight_em(vae.encode(x), 3, "full", seed=3, n_init=100)
        prior = vae.prior
        assert prior.weights.detach().numpy() == pytest.approx(np.full(3, 1 / 3), rel=1e-9)
        assert prior.locs.detach().numpy() == pytest.approx(means.numpy(), rel=1e-6, abs=1e-9)
        tril = prior.scale_tril.detach()
        expected = cov if covariance == "full" else torch.diag_embed(cov.diagonal(0, -2, -1))
        assert (tril @ tril.mT).numpy() == pytest.approx(expected.numpy(), rel=1e-6, abs=1e-8)
    with pytest.raises(ValueError, match="weights must be 'equal' or 'fitted'"):
        vade.init_mixture_prior(vae, x, weights="uniform")


def test_the_start_narrows_q_around_the_codes_and_keeps_them():
    """After VaDE's start q(z | x) = N(μ(x), σ²) with μ(x) the auto-encoder's codes, untouched,
    and σ = 0.1 × the median prior scale for every row; a flow posterior is left as it is."""
    torch.manual_seed(0)
    x = torch.rand(120, 6).round().double()
    vae = VAE(6, 2, prior=MIXTURE, hidden=(8,)).double()
    vade.pretrain_autoencoder(vae, x, epochs=3, seed=0)
    vade.init_mixture_prior(vae, x, seed=0)
    codes = vae.encode(x)
    sigma = vade.narrow_posterior(vae)
    scales = np.sort(vae.prior.scales.detach().numpy().ravel())
    assert sigma == pytest.approx(0.1 * scales[(len(scales) - 1) // 2])  # the lower median
    q = vae.posterior(vae.encoder(x)).base_dist
    assert torch.equal(q.loc, codes)
    assert q.scale.detach().numpy() == pytest.approx(np.full((120, 2), sigma), rel=1e-9)
    flow = VAE(6, 2, prior=MIXTURE, posterior="iaf", hidden=(8,)).double()
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    assert vade.narrow_posterior(flow) is None
    assert all(torch.equal(v, before[k]) for k, v in flow.state_dict().items())


def test_the_diagonal_start_gives_the_prior_scikit_learns_diagonal_fit():
    from sklearn.mixture import GaussianMixture as SklearnGMM

    torch.manual_seed(0)
    x = torch.rand(150, 6).round().double()
    vae = VAE(6, 3, prior=MIXTURE, hidden=(8,)).double()
    gmm = vade.init_mixture_prior(vae, x, seed=2, n_init=5, covariance="diag", weights="fitted")
    codes = vae.encode(x).numpy()
    ref = SklearnGMM(3, covariance_type="diag", n_init=5, random_state=2, reg_covar=1e-6)
    ref.fit(codes)
    prior = vae.prior
    assert prior.weights.detach().numpy() == pytest.approx(ref.weights_, rel=1e-6)
    assert prior.locs.detach().numpy() == pytest.approx(ref.means_, rel=1e-6, abs=1e-9)
    assert (prior.scales**2).detach().numpy() == pytest.approx(ref.covariances_, rel=1e-6)
    assert gmm.covariance == "diag"
    with pytest.raises(ValueError, match="covariance must be 'diag' or 'full'"):
        vade.init_mixture_prior(vae, x, covariance="spherical")


def test_the_kmeans_start_is_the_mixture_of_scikit_learns_clusters():
    torch.manual_seed(0)
    x = torch.rand(300, 6).round()
    vae = VAE(6, 2, prior=MIXTURE, hidden=(8,)).double()
    vade.init_mixture_prior(vae, x.double(), seed=2, n_init=4, fit="kmeans")
    codes = vae.encode(x.double()).numpy()
    labels = KMeans(3, n_init=4, random_state=2).fit_predict(codes)
    prior = vae.prior
    for k in range(3):
        rows = codes[labels == k]
        assert prior.weights[k].item() == pytest.approx(len(rows) / len(codes), rel=1e-9)
        assert prior.locs[k].detach().numpy() == pytest.approx(rows.mean(0), rel=1e-9)
        variances = rows.var(0) + 1e-6  # the covariance floor reg_covar
        assert (prior.scales[k] ** 2).detach().numpy() == pytest.approx(variances, rel=1e-6)
    with pytest.raises(ValueError, match="fit must be 'em' or 'kmeans'"):
        vade.init_mixture_prior(vae, x.double(), fit="agglomerative")


def test_pretraining_lowers_the_reconstruction_loss_and_is_seeded():
    torch.manual_seed(0)
    x = torch.rand(200, 6).round()
    vae = VAE(6, 2, prior=MIXTURE, hidden=(16,))
    again = VAE(6, 2, prior=MIXTURE, hidden=(16,))
    again.load_state_dict(vae.state_dict())
    losses = vade.pretrain_autoencoder(vae, x, epochs=20, seed=1, corruption=0.2)
    assert losses == vade.pretrain_autoencoder(again, x, epochs=20, seed=1, corruption=0.2)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="corruption"):
        vade.pretrain_autoencoder(vae, x, epochs=1, corruption=1.0)


def test_the_start_logs_its_progress_at_info(caplog):
    """The long silent phases say what they do, through the ``pyrovae`` logger (not print)."""
    torch.manual_seed(0)
    x = torch.rand(200, 6).round()
    vae = VAE(6, 2, prior=MIXTURE, hidden=(16,))
    with caplog.at_level("INFO", logger="pyrovae"):
        vade.pretrain_autoencoder(vae, x, epochs=20, batch_size=100, seed=1)
        vade.init_mixture_prior(vae, x, seed=1)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("pyrovae.")]
    assert messages[0] == "VaDE start: pretraining the auto-encoder, 20 epochs of 2 batches"
    epochs = [m.split(":")[0] for m in messages if m.startswith("auto-encoder epoch")]
    assert epochs == [f"auto-encoder epoch {e}/20" for e in range(2, 21, 2)]
    assert messages[-3:-1] == [
        "VaDE start: a 3-component Gaussian mixture on the codes of 200 rows (EM, 100 starts)",
        "GMM start: EM with equal weights, 100 starts of up to 100 steps",
    ]
    assert messages[-1].startswith("VaDE start: mixture fitted")


def test_pretraining_augments_square_grey_images_by_default_only():
    """The default ``augment="images"``: DEC-DA's random turns and moves for a VAE built on
    (1, s, s) images, the rows as they are for one built on flat rows."""
    x = torch.rand(60, 16)
    for shape, expected in (((1, 4, 4), pyrovae.data.random_affine), (16, None)):
        torch.manual_seed(0)
        vae = VAE(shape, 2, prior=MIXTURE, hidden=(8,))
        again = VAE(shape, 2, prior=MIXTURE, hidden=(8,))
        again.load_state_dict(vae.state_dict())
        losses = vade.pretrain_autoencoder(vae, x, epochs=2, batch_size=30, seed=3)
        assert losses == vade.pretrain_autoencoder(
            again, x, epochs=2, batch_size=30, seed=3, augment=expected
        )


def test_pretraining_on_the_squared_error_scores_the_bernoulli_mean():
    torch.manual_seed(0)
    x = torch.rand(200, 6)
    vae = VAE(6, 2, prior=MIXTURE, hidden=(16,))
    with torch.no_grad():  # one batch: the epoch's loss is the one before its only step
        mean = torch.sigmoid(vae.decoder(vae.encode(x)))
        expected = ((x - mean) ** 2).sum(-1).mean().item()
    (loss,) = vade.pretrain_autoencoder(vae, x, epochs=1, batch_size=200, loss="squared_error")
    assert loss == pytest.approx(expected, rel=1e-6)
    later = vade.pretrain_autoencoder(vae, x, epochs=30, batch_size=50, loss="squared_error")
    assert later[-1] < loss
    with pytest.raises(ValueError, match="loss must be one of"):
        vade.pretrain_autoencoder(vae, x, epochs=1, loss="mse")


def test_pretraining_scores_the_augmented_rows_and_seeds_the_augmentation():
    torch.manual_seed(0)
    x = torch.rand(200, 16)
    vae = VAE(16, 2, prior=MIXTURE, hidden=(16,))
    again = VAE(16, 2, prior=MIXTURE, hidden=(16,))
    again.load_state_dict(vae.state_dict())
    with torch.no_grad():  # one batch: the epoch's loss is the one before its only step
        flipped = x.flip(-1)
        expected = -vae.likelihood(vae.decoder(vae.encode(flipped))).log_prob(flipped).mean()

    def flip(rows, generator):
        return rows.flip(-1)

    (loss,) = vade.pretrain_autoencoder(vae, x, epochs=1, batch_size=200, augment=flip)
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    losses = vade.pretrain_autoencoder(vae, x, epochs=3, seed=2, augment=pyrovae.data.random_affine)
    vade.pretrain_autoencoder(again, x, epochs=1, batch_size=200, augment=flip)
    assert losses == vade.pretrain_autoencoder(
        again, x, epochs=3, seed=2, augment=pyrovae.data.random_affine
    )


def test_the_old_set_components_warns_and_still_works():
    vae = VAE(6, 2, prior=MIXTURE, hidden=(8,))
    with pytest.warns(DeprecationWarning, match="set_moments"):
        vae.prior.set_components(torch.ones(3) / 3, torch.zeros(3, 2), torch.full((3, 2), 0.5))
    assert torch.allclose(vae.prior.scales, torch.full((3, 2), 0.5))


@pytest.mark.slow
def test_clusters_digits_well_above_chance():
    """The README's route: a mixture prior starts from VaDE's auto-encoder + GMM by default
    (pretrain_epochs), then the mixture VAE trains, on 8×8 digits.

    Chance is 10 % accuracy and NMI 0; we require accuracy ≥ 60 % and NMI ≥ 0.5 on the 359
    test images.
    """
    torch.manual_seed(0)
    data = pyrovae.data.load("digits")
    mixture = {"name": "mixture", "num_components": 10}  # the smaller networks: a faster test
    vae = VAE(64, 10, prior=mixture, hidden=(256, 128), pretrain_epochs=50)
    pyrovae.fit(vae, data, epochs=20, batch_size=100, lr=1e-3, progress=False)
    scores = clustering_scores(vae.cluster(data.test.x)[1], data.test.y)
    assert scores["accuracy"] >= 0.6 and scores["nmi"] >= 0.5, scores


def test_a_mixture_prior_has_vades_networks_unless_told_otherwise():
    def widths(vae):
        layers = [m for m in vae.encoder.trunk.modules() if isinstance(m, torch.nn.Linear)]
        return [m.out_features for m in layers]

    assert widths(VAE(64, 10, prior=MIXTURE)) == [500, 500, 2000]  # VaDE's D-500-500-2000-d
    assert widths(VAE(64, 10)) == [256, 128]
    assert widths(VAE(64, 10, prior=MIXTURE, hidden=(32,))) == [32]
    assert VAE(64, 10, prior=MIXTURE).build_options["hidden"] == (500, 500, 2000)  # config.yaml


def test_default_pretraining_length_is_about_3000_batches(monkeypatch):
    calls = []
    monkeypatch.setattr(vade, "vade_start", lambda vae, x, epochs, seed: calls.append(epochs))
    start(VAE(6, 2, prior=MIXTURE), torch.rand(250, 6).round())  # 3 batches of 100
    start(VAE(6, 2, prior=MIXTURE, pretrain_epochs=7), torch.rand(250, 6).round())
    start(VAE(6, 2), torch.rand(250, 6).round())
    assert calls == [1000, 7]
