"""VaDE's start for a mixture-prior VAE (Jiang et al. 2017, "Variational Deep Embedding").

Trained from scratch, a mixture-prior VAE tends to settle with its components covering the
codes in ways unrelated to the classes (or with one component taking everything). VaDE starts
it in stages instead, which :func:`pyrovae.infer.starts.start` runs (and so
:func:`pyrovae.fit`, on a fresh start) when the VAE has ``pretrain_epochs > 0`` — the default
for a mixture prior:

1. :func:`pretrain_autoencoder`: train encoder and decoder as a deterministic auto-encoder,
   z = mode of q(z | x), minimising −log p(x | decoder(z)) (for the Bernoulli likelihood the
   binary cross-entropy) or the squared error ‖x − E[x | z]‖² (DEC's and IDEC's), optionally
   denoising (inputs with a fraction of pixels zeroed, as the stacked denoising auto-encoder
   of DEC and VaDE), on augmented rows by default for grey square images (DEC-DA's randomly
   turned and moved images, :func:`pyrovae.data.random_affine`);
2. :func:`init_mixture_prior`: fit a full-covariance (or diagonal) Gaussian mixture with
   equal weights by EM (K = the prior's number of components, 100 k-means starts) to the
   codes of the training rows and make its π, μ and covariances the prior's (a diagonal
   prior, VaDE's, takes their diagonals);
3. :func:`narrow_posterior`: q(z | x)'s scale, untrained by stage 1, starts small and the
   same for every x, so that the mixture VAE starts from the codes rather than from codes
   blurred by a random σ(x).

What makes the start robust, and so the clusters (issue 29). On the 8×8 digits (K = 10,
d = 10, 3,000 batches of pretraining) the former defaults, a plain auto-encoder and a
diagonal EM fit, made starts that clustered 70.5 % and 68.5 % of the test digits at seeds 0
and 1 (the README command then ended at 72.7 % for seed 0), and their spread came from both
stages: a diagonal fit splits the codes along the axes rather than by digit (the full fit's
clusters on the same codes: 72.7 % and 79.1 %), and an auto-encoder fitted to 1,150 images
places the same digit written a little turned or moved in different places. Pretraining on
randomly turned (±10°) and moved (±0.8 pixel) copies makes the codes invariant to those, and
the full fit then finds the digits better. scikit-learn runs on one thread here, so that the
fit does not depend on the thread count.

The networks. A mixture-prior VAE's MLPs default to VaDE's (and DEC's) auto-encoder,
D–500–500–2000–d (:data:`pyrovae.models.vae.VADE_HIDDEN`), instead of the (256, 128) of
other VAEs. On the digits the start's clusters (the prior's responsibilities at the codes of
the 359 test digits, after stage 2) were, at seeds 0–3, 91.9, 93.9, 81.1 and 82.2 % with those
networks against 89.1, 86.9, 76.6 and 78.0 % with (256, 128) (seeds 0–7 of the latter: 79.3 ±
6.2 %). Tried on the (256, 128) networks over seeds 0–5 or 0–7 (mean accuracy of the start; one
seed's spread is about 5 points), none clearly better: narrower networks
((128, 64): 72.6 %; (64,): 72.8 %), 100 or 500 epochs (75.8, 79.7 %), Adam at 3·10⁻⁴
(73.3 %), DEC-keras's SGD (81.2 %), denoising (20 % of the pixels zeroed: 75.1 %), the squared
error (78.3 %), stronger or milder augmentation (±20°, ±1.2 px: 75.3 %; ±5°, ±0.4 px: 82.1 %;
±3°, ±0.24 px: 79.8 %; none: 76.5 %), EM on the codes of four augmented copies as well
(79.1 %). Each figure: ``python tools/vade_start.py VARIANT SEEDS`` (its docstring), with the
stage 2 of then, ``"fits": [{"prior": "diag", "weights": "fitted", "n_init": 5}]``.

Equal weights, many starts, a full-covariance prior. With the former stage 2 (scikit-learn's
EM, weights fitted, 5 starts, a diagonal prior) the seeds split in two: every digit its own
cluster (about 90 %) or, at half the seeds, the 1s (written with and without a foot) split in
two clusters while 3 and 9 share one (about 80 %); the mixture-VAE stage keeps the start's
clusters rather than mending them, and the README command ended at 84.0 ± 5.9 % (90.5, 90.3,
78.3, 80.2, 80.8; seeds 0–4). A fitted weight pays for a cluster holding two classes; held at
π_k = 1/K it cannot, and on the codes looked at the class-by-class mixture is then the one of
highest likelihood (30 single-start fits, ``equal_weight_em(codes, 10, seed=1000 + s,
n_init=1)``: seed 0, −7.407 nats per code and 95.3 % of the test digits against −7.408 and
83.8 % for the next; seed 3, −7.167 and 90.0 % against at most 83.3 %), but a k-means start
reaches it rarely (1 in 30 at both), hence 100 starts (3.7 s of CPU on the digits). Start
clusters of the test digits, seeds 0–9, mean ± sd (``python tools/vade_start.py '{"fits":
[{"prior": "full", "weights": "fitted", "n_init": 5}, {"prior": "full", "n_init": 20},
{"prior": "full"}, {"prior": "diag"}]}' 0 1 2 3 4 5 6 7 8 9``): fitted weights, 5 starts
85.2 ± 4.4 % (93.0, 93.6, 83.6, 83.3, 83.6, 84.7, 83.3, 81.6, 82.2, 83.3); equal weights, 20
starts 87.8 ± 5.7 %, 100 starts 90.5 ± 4.7 % (95.3, 93.6, 93.6, 90.0, 93.9, 85.8, 90.3, 90.0,
93.3, 79.7). A diagonal prior, VaDE's, keeps only the fit's diagonals, which cluster the codes
differently: 89.4 ± 4.3 % at the start with a diagonal prior, 90.5 ± 4.7 % with a
full one. The README's command, now ``--prior "{name: mixture, num_components: 10,
covariance: full}"``, over seeds 0–4: 91.1 ± 3.3 % (92.8, 93.0, 91.6, 85.2, 92.8), NMI 0.879
± 0.020; seeds 5–9: 86.6 ± 4.2 % (84.4, 90.5, 90.3, 87.2, 80.5) (``python -m benchmarks
clustering_digits --full``, ``benchmarks/results/clustering_digits/clustering_digits.json``).
Tried before and not kept (each within a seed's noise, or worse): on the (256, 128) codes 20
EM starts with fitted weights, k-means++ or k-means-only starts, EM on standardised codes,
the start most agreeing with the others, pretraining twice as long; on these codes spectral
clustering of a nearest-neighbour graph and Ward's clustering as the start (below the EM
start at seeds 0–2, in a one-off script), and the medoid of three auto-encoders'
clusterings (seeds 0 and 3: 80.2 and 80.2 %).
"""

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ..data import Data, random_affine
from ..parts.posterior import NormalPosterior
from .mixture import GaussianMixture, equal_weight_em, kmeans_labels
from .vae import VAE

log = logging.getLogger(__name__)  # progress of the long start, at INFO (the CLI shows it)

PRETRAIN_BATCH_SIZE = 100
PRETRAIN_LR = 1e-3
PRETRAIN_LOSSES = ("likelihood", "squared_error")
NARROW_FRACTION = 0.1
"""q(z | x)'s σ at the start of the mixture VAE, as a fraction of the prior's median σ_kd."""


def pretrain_autoencoder(
    vae: VAE,
    x: torch.Tensor | Data,
    *,
    epochs: int = 10,
    batch_size: int = PRETRAIN_BATCH_SIZE,
    lr: float = PRETRAIN_LR,
    seed: int = 0,
    corruption: float = 0.0,
    loss: str = "likelihood",
    optimizer: torch.optim.Optimizer | None = None,
    augment: str | Callable[..., torch.Tensor] | None = "images",
) -> list[float]:
    """Stage 1: fit ``vae``'s encoder (posterior mode) and decoder as an auto-encoder.

    :param x: training rows ``(N, input_dim)`` (or a :class:`pyrovae.data.Data`: its training
        rows, as stored).
    :param int epochs: passes over ``x`` in shuffled batches of ``batch_size`` (Adam, ``lr``).
    :param float corruption: denoising: each input pixel is zeroed with this probability, the
        loss still scores the clean rows (0: a plain auto-encoder).
    :param augment: ``augment(rows, generator=...)`` → rows of the same shape, applied to each
        batch before the corruption; the loss then scores the augmented rows, which become the
        batch (DEC-DA's pretraining with :func:`pyrovae.data.random_affine`). ``None``: the rows
        as they are. ``"images"`` (the default): :func:`~pyrovae.data.random_affine` when the
        VAE's input is one grey square image (``input_shape`` (1, s, s), e.g. built with
        ``data.input_shape`` as the command line does), else ``None``. On the 8×8 digits it
        is what makes the start, and so the clusters, robust to the seed (see below).
    :param str loss: per row, ``"likelihood"``: −log p(x | decoder(z)); ``"squared_error"``:
        Σ_i (x_i − E[x_i | z])², with E[x | z] the likelihood's mean (for the Bernoulli
        likelihood the sigmoid of the decoder's logits), the loss DEC's and IDEC's
        auto-encoders are pretrained with.
    :param int seed: seeds the batch order, the augmentation and the corruption (a generator
        of its own: the caller's random state is untouched).
    :param optimizer: a ``torch.optim`` optimizer over the encoder's, decoder's and
        likelihood's parameters to continue with (a resumable program keeps and saves it);
        ``None``: a new Adam with ``lr``. On MNIST, DEC-keras's SGD with momentum 0.9 at
        ``lr = 1 / input_dim`` (its rate 1 on the per-pixel mean) made a far better start than
        Adam: after 100 epochs on the likelihood, the mixture of the k-means clusters of its
        codes clustered 91.8 % of the images, the starts after Adam 64–78 %
        (``benchmarks/README.md`` § VaDE).
    :returns: the mean of ``loss`` per example, per epoch.
    """
    x = x.train.x if isinstance(x, Data) else x
    if isinstance(augment, str):
        if augment != "images":
            raise ValueError(f"augment must be 'images', a function or None, got {augment!r}")
        shape = tuple(vae.input_shape)
        augment = (
            random_affine if len(shape) == 3 and shape[0] == 1 and shape[1] == shape[2] else None
        )
    if not 0 <= corruption < 1:
        raise ValueError(f"corruption must be in [0, 1), got {corruption!r}")
    if loss not in PRETRAIN_LOSSES:
        raise ValueError(f"loss must be one of {PRETRAIN_LOSSES}, got {loss!r}")
    gen = torch.Generator().manual_seed(seed)
    params = [p for part in (vae.encoder, vae.decoder, vae.likelihood) for p in part.parameters()]
    optimizer = optimizer or torch.optim.Adam(params, lr=lr)
    device = next(vae.parameters()).device
    losses, start, every = [], time.perf_counter(), max(1, epochs // 10)
    log.info(
        "VaDE start: pretraining the auto-encoder, %d epochs of %d batches",
        epochs,
        -(-len(x) // batch_size),
    )
    with torch.enable_grad():
        for epoch in range(epochs):
            total = 0.0
            for index in torch.randperm(len(x), generator=gen).split(batch_size):
                rows = x[index].to(device)
                if augment is not None:  # resamples on the model's device; draws from gen (CPU)
                    rows = augment(rows, generator=gen)
                seen = rows
                if corruption:
                    keep = torch.rand(rows.shape, generator=gen) >= corruption
                    seen = rows * keep.to(rows)
                z = vae.posterior(vae.encoder(seen)).mode
                p = vae.likelihood(vae.decoder(z))
                if loss == "likelihood":
                    value = -p.log_prob(rows).mean()
                else:
                    value = (rows - p.mean).square().sum(-1).mean()
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                total += value.item() * len(rows)
            losses.append(total / len(x))
            if (epoch + 1) % every == 0 or epoch + 1 == epochs:
                elapsed = time.perf_counter() - start
                log.info("auto-encoder epoch %d/%d: loss %.3f (%.0f s)", epoch + 1, epochs,
                         losses[-1], elapsed)  # fmt: skip
    return losses


@torch.no_grad()
def init_mixture_prior(
    vae: VAE,
    x: torch.Tensor,
    *,
    seed: int = 0,
    n_init: int = 100,
    covariance: str = "full",
    fit: str = "em",
    weights: str = "equal",
) -> GaussianMixture:
    """Stage 2: fit a Gaussian mixture to the codes of ``x`` (the posterior modes) and make it
    the prior: π, μ_k and Σ_k = its weights, means and covariances (a diagonal prior takes
    their diagonals, σ_k² = diag Σ_k).

    :param str fit: ``"em"``: a mixture fitted by EM, ``reg_covar`` 10⁻⁶, from ``n_init``
        k-means starts seeded by ``seed``, the one of highest likelihood kept (VaDE's code on
        MNIST did the same with one start: on 8×8 digits one start often lands in a poor
        optimum). ``"kmeans"`` (VaDE's on Reuters, DEC's): k-means (``n_init`` starts), then
        the maximum-likelihood mixture given its clusters: π_k = n_k / N, μ_k and Σ_k the
        mean and covariance of cluster k (diagonal or full as the prior; no EM iterations,
        which may trade the classes for a higher likelihood).
    :param str weights: EM only. ``"equal"`` (the default): the weights held at π_k = 1/K
        while EM fits the means and covariances (:func:`~pyrovae.models.mixture.
        equal_weight_em`), for classes of similar size; the mixture VAE then learns π.
        ``"fitted"`` (VaDE's): scikit-learn's ``GaussianMixture``, π fitted too
        (``random_state=seed``). See the module's docstring for why equal weights.
    :param str covariance: EM only. ``"full"`` (the default): the EM fit has full
        covariances. ``"diag"`` (VaDE's): the EM fit has diagonal covariances. The diagonal
        fit may reach a higher likelihood by splitting the codes along the axes rather than by
        class: on MNIST codes of a denoising auto-encoder (``benchmarks/vade_mnist.py``) its
        clusters scored 64 % accuracy against 77 % for the full fit's means and diagonals; on
        the digits see the module's docstring.
    :param x: training rows ``(N, input_dim)``.
    :returns: a :class:`~pyrovae.models.GaussianMixture` over the codes holding the fit (its
        ``assign`` clusters codes).
    """
    if not vae.has_clusters:
        raise ValueError("init_mixture_prior needs a VAE built with prior='mixture'")
    if covariance not in ("diag", "full"):
        raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
    if fit not in ("em", "kmeans"):
        raise ValueError(f"fit must be 'em' or 'kmeans', got {fit!r}")
    if weights not in ("equal", "fitted"):
        raise ValueError(f"weights must be 'equal' or 'fitted', got {weights!r}")
    codes = torch.cat([vae.encode(chunk) for chunk in torch.split(x, 1000)])
    k = vae.prior.num_components
    start = time.perf_counter()
    log.info("VaDE start: a %d-component Gaussian mixture on the codes of %d rows (%s, %d starts)",
             k, len(codes), "EM" if fit == "em" else "k-means", n_init)  # fmt: skip
    covariance = covariance if fit == "em" else vae.prior.covariance  # k-means: the prior's
    gmm = GaussianMixture(k, codes.shape[1], covariance, reg_covar=1e-6, name="vade_init")
    gmm = gmm.to(codes)
    from threadpoolctl import threadpool_limits  # scikit-learn's; loaded only when fitting

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums, so the same fit, whatever the threads
    try:
        with threadpool_limits(limits=1):
            if fit == "kmeans":
                gmm.set_from_clusters(codes, kmeans_labels(codes, k, seed=seed, n_init=n_init))
            elif weights == "fitted":
                gmm.initialize(codes, seed=seed, n_init=n_init)  # scikit-learn's EM
            else:
                fitted = equal_weight_em(codes, k, covariance, reg_covar=gmm.reg_covar,
                                         seed=seed, n_init=n_init)  # fmt: skip
                gmm.set_moments(torch.full((k,), 1.0 / k), fitted[0], fitted[1])
    finally:
        torch.set_num_threads(threads)
    log.info("VaDE start: mixture fitted (%.1f s)", time.perf_counter() - start)
    tril = gmm.scale_tril  # Σ_k = L_k L_kᵀ; a diagonal prior keeps its diagonals
    vae.prior.set_moments(gmm.weights.cpu(), gmm.locs.cpu(), (tril @ tril.mT).cpu())
    return gmm


@torch.no_grad()
def narrow_posterior(vae: VAE, fraction: float = NARROW_FRACTION) -> float | None:
    """Stage 3: start q(z | x) = N(μ(x), diag σ²) narrow around the auto-encoder's codes, with
    σ = ``fraction`` × the (lower) median of the prior's component scales σ_kd, for every x.

    The pretraining trains μ(x) only (z is the posterior mode), so the scale head is still at
    its random start: σ(x) = softplus(raw) ≈ 0.7 on average and up to 3 on the digits, where
    the codes spread about 1.5 per axis and each component less. The first epochs of the
    mixture VAE would then decode and cluster codes blurred across the components, and move
    them away from the start. Zeroing the scale head's weights and setting its bias to
    softplus⁻¹(σ − min_scale) starts from the codes; the ELBO then widens σ(x) as it needs. On
    the digits the end figures moved by less than their noise (the module's docstring).
    Other posteriors (the flows, whose transforms may widen q again) and encoders without a
    ``"scale"`` head are left as they are.

    :returns: σ, or ``None`` when left as it is.
    """
    heads = getattr(vae.encoder, "heads", {})
    if not isinstance(vae.posterior, NormalPosterior) or "scale" not in heads:
        return None
    head = heads["scale"]
    scales = vae.prior.scale_tril.detach().square().sum(-1).sqrt()  # (diag Σ_k)^½, (K, d)
    sigma = fraction * scales.median().item()  # the lower median
    raw = max(sigma - vae.posterior.min_scale, 1e-6)
    head.weight.zero_()
    head.bias.fill_(raw + math.log(-math.expm1(-raw)))  # softplus⁻¹(raw), stable for large raw
    log.info("VaDE start: q(z | x) narrowed to sigma %.3g around the codes", sigma)
    return sigma


def vade_start(
    vae: VAE,
    x: torch.Tensor | Data,
    *,
    epochs: int,
    seed: int = 0,
    corruption: float = 0.0,
    **pretrain_options: Any,
) -> tuple[list[float], GaussianMixture]:
    """All stages: :func:`pretrain_autoencoder` for ``epochs`` on ``x``, then
    :func:`init_mixture_prior`, then :func:`narrow_posterior`.

    :returns: ``(pretraining losses per epoch, the GaussianMixture fitted to the codes)``.
    """
    x = x.train.x if isinstance(x, Data) else x
    losses = pretrain_autoencoder(
        vae, x, epochs=epochs, seed=seed, corruption=corruption, **pretrain_options
    )
    gmm = init_mixture_prior(vae, x, seed=seed)
    narrow_posterior(vae)
    return losses, gmm
