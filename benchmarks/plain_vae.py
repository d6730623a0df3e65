"""The reference of the speed benchmarks (``overhead``, ``gpu_check``): the VAE 784-256-128 →
d = 20 written in plain PyTorch, log densities spelled out (Gaussian posterior with softplus
scale, standard Normal prior, Bernoulli likelihood on logits), and its learning rate."""

import math

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN, LATENT, LR = (256, 128), 20, 1e-3
LOG_2PI = math.log(2 * math.pi)


class TorchVAE(nn.Module):
    """The same network and estimator in plain PyTorch."""

    def __init__(self, latent=LATENT):
        super().__init__()
        h1, h2 = HIDDEN
        self.trunk = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        self.loc, self.scale = nn.Linear(h2, latent), nn.Linear(h2, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU(), nn.Linear(h1, 784)
        )

    def forward(self, x):
        """Negative single-sample ELBO, summed over the batch (Trace_ELBO's loss)."""
        h = self.trunk(x)
        loc, scale = self.loc(h), F.softplus(self.scale(h)) + 1e-5
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        log_q = (-0.5 * eps**2 - scale.log() - 0.5 * LOG_2PI).sum()
        log_p_z = (-0.5 * z**2 - 0.5 * LOG_2PI).sum()
        log_p_x = -F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
        return -(log_p_x + log_p_z - log_q)
