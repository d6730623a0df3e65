"""Encoder and decoder networks.

An encoder maps data ``x`` of shape ``(..., input_dim)`` to a dict of unconstrained posterior
parameters, one linear head per entry of the posterior's ``param_dims``; a decoder maps a latent
``z`` of shape ``(..., latent_dim)`` to the ``output_dim`` numbers the likelihood needs (for
example Bernoulli logits). Both are MLPs whose hidden sizes and activation are options.
"""

from torch import nn

from .. import checks
from .registry import Registry

encoders = Registry("encoder")
decoders = Registry("decoder")

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


def mlp(sizes, activation="relu"):
    """``Linear → activation`` for each consecutive pair of ``sizes``, no activation at the end."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; known activations: {', '.join(ACTIVATIONS)}"
        )
    checks.sizes("layer sizes", list(sizes))
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


@encoders.register("mlp")
class MLPEncoder(nn.Module):
    """``x (..., input_dim) → {name: (..., size)}``: an MLP trunk, then one linear head per
    posterior parameter."""

    def __init__(self, input_dim, param_dims, hidden=(256, 128), activation="relu"):
        super().__init__()
        hidden = list(checks.sizes("hidden", hidden))
        self.trunk = nn.Sequential(mlp([input_dim, *hidden], activation), ACTIVATIONS[activation]())
        self.heads = nn.ModuleDict(
            {name: nn.Linear(hidden[-1], size) for name, size in param_dims.items()}
        )

    def forward(self, x):
        h = self.trunk(x)
        return {name: head(h) for name, head in self.heads.items()}


@decoders.register("mlp")
class MLPDecoder(nn.Module):
    """``z (..., latent_dim) → (..., output_dim)``, hidden layers mirrored from the encoder."""

    def __init__(self, latent_dim, output_dim, hidden=(256, 128), activation="relu"):
        super().__init__()
        hidden = checks.sizes("hidden", hidden)
        self.net = mlp([latent_dim, *reversed(list(hidden)), output_dim], activation)

    def forward(self, z):
        return self.net(z)
