"""VaDE-style start for a mixture-prior VAE (Jiang et al. 2017, "Variational Deep Embedding").

Trained from scratch, a mixture-prior VAE tends to settle with its components covering the
codes in ways unrelated to the classes. VaDE starts it in two stages instead:

1. :func:`pretrain_autoencoder`: train encoder and decoder as a deterministic auto-encoder,
   z = mode of q(z | x), minimising −log p(x | decoder(z)) (for the Bernoulli likelihood the
   binary cross-entropy);
2. :func:`init_mixture_prior`: fit a :class:`~pyrovae.models.GaussianMixture` (diagonal, K =
   the prior's number of components, k-means++ start) to the codes of the training rows and
   copy its π, μ, σ into the prior.

Then train the VAE as usual with :func:`pyrovae.fit`.
"""

import torch

from ..models.mixture import GaussianMixture
from .train import as_data, fit


def pretrain_autoencoder(vae, data, *, epochs=10, batch_size=256, lr=1e-3, seed=0):
    """Stage 1: fit ``vae``'s encoder (posterior mode) and decoder as an auto-encoder.

    :returns: the mean reconstruction loss −log p(x | decoder(mode)) per example, per epoch.
    """
    data = as_data(data)
    torch.manual_seed(seed)
    params = [p for part in (vae.encoder, vae.decoder, vae.likelihood) for p in part.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    device = next(vae.parameters()).device
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for x in data.batches(batch_size, epoch, seed):
            x = x.to(device)
            z = vae.posterior(vae.encoder(x)).mode
            loss = -vae.likelihood(vae.decoder(z)).log_prob(x).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        losses.append(total / len(data.train))
    return losses


def init_mixture_prior(vae, x, *, seed=0, steps=100, lr=0.05):
    """Stage 2: fit a diagonal Gaussian mixture to the codes of ``x`` and make it the prior.

    :param x: training rows ``(N, input_dim)``.
    :param int steps: full-batch gradient steps of the mixture after its k-means++ start.
    :returns: the fitted :class:`~pyrovae.models.GaussianMixture` (its ``assign`` clusters codes).
    """
    if not vae.has_clusters:
        raise ValueError("init_mixture_prior needs a VAE built with prior='mixture'")
    codes = torch.cat([vae.encode(chunk) for chunk in torch.split(x, 1000)])
    gmm = GaussianMixture(vae.prior.num_components, codes.shape[1], "diag", name="vade_init")
    gmm.to(codes)
    fit(gmm, codes, epochs=steps, batch_size=len(codes), lr=lr, seed=seed, progress=False)
    vae.prior.set_components(gmm.weights.detach(), gmm.locs.detach(), gmm.log_scales.exp().detach())
    return gmm
