"""Encoder and decoder networks.

An encoder maps data ``x`` of shape ``(..., input_dim)`` (flat rows; a convolutional encoder
views each row as an image ``input_shape = (C, H, W)``) to a dict of unconstrained posterior
parameters, one linear head per entry of the posterior's ``param_dims``; a decoder maps a latent
``z`` of shape ``(..., latent_dim)`` to the ``output_dim`` numbers the likelihood needs (for
example Bernoulli logits). Every network takes any leading batch shape ``...`` (the data plate,
and the particle or importance-sampling plates left of it).

``"mlp"``: fully connected layers. ``"conv"``: strided convolutions (each halves height and
width, rounding up) then fully connected layers; the decoder mirrors it with transposed
convolutions that restore the exact image size.
"""

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .. import checks
from .registry import Registry

encoders = Registry("encoder")
decoders = Registry("decoder")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


def _activation(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        known = ", ".join(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; known activations: {known}")
    return ACTIVATIONS[name]


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """``Linear → activation`` for each consecutive pair of ``sizes``, no activation at the end."""
    _activation(activation)
    checks.sizes("layer sizes", list(sizes))
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


@encoders.register("mlp")
class MLPEncoder(nn.Module):
    """``x (..., input_dim) → {name: (..., size)}``: an MLP trunk, then one linear head per
    posterior parameter."""

    def __init__(
        self,
        input_dim: int,
        param_dims: Mapping[str, int],
        hidden: Sequence[int] = (256, 128),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = list(checks.sizes("hidden", hidden))
        self.trunk = nn.Sequential(mlp([input_dim, *hidden], activation), ACTIVATIONS[activation]())
        self.heads = nn.ModuleDict(
            {name: nn.Linear(hidden[-1], size) for name, size in param_dims.items()}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {name: head(h) for name, head in self.heads.items()}


@decoders.register("mlp")
class MLPDecoder(nn.Module):
    """``z (..., latent_dim) → (..., output_dim)``, hidden layers mirrored from the encoder."""

    def __init__(
        self,
        latent_dim: int,
        output_dim: int,
        hidden: Sequence[int] = (256, 128),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = checks.sizes("hidden", hidden)
        self.net = mlp([latent_dim, *reversed(list(hidden)), output_dim], activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def _conv_sizes(size: int, depth: int) -> list[int]:
    """Spatial sizes through ``depth`` stride-2 convolutions with odd kernel k and padding k // 2,
    each mapping n to ceil(n / 2): ``[n, ceil(n/2), …]``."""
    sizes = [size]
    for _ in range(depth):
        sizes.append(-(-sizes[-1] // 2))
    return sizes


def _check_conv(shape: Sequence[int], channels: Sequence[int], kernel_size: int) -> None:
    if len(shape) != 3 or not all(checks.is_int(s) and s >= 1 for s in shape):
        raise ValueError(
            f"a conv network needs images: input_dim=(C, H, W), got {tuple(shape)}; build the "
            "model with input_dim=data.input_shape, or use encoder/decoder 'mlp' for vectors"
        )
    checks.sizes("channels", channels)
    if not (checks.is_int(kernel_size) and kernel_size >= 1 and kernel_size % 2 == 1):
        raise ValueError(f"kernel_size must be an odd positive integer, got {kernel_size!r}")
    if kernel_size > max(shape[1:]):
        raise ValueError(
            f"kernel_size {kernel_size} is larger than the {shape[1]}×{shape[2]} images: every "
            f"window would cover the whole image and mostly padding; use kernel_size ≤ "
            f"{max(shape[1:])} (3 or 5 is usual)"
        )


@encoders.register("conv")
class ConvEncoder(nn.Module):
    """``x (..., C·H·W) → {name: (..., size)}``: rows viewed as images ``(C, H, W)``, then
    ``Conv2d(stride 2) → activation`` per entry of ``channels`` (n ↦ ceil(n/2) per layer), then
    an MLP of ``hidden`` sizes and one linear head per posterior parameter."""

    def __init__(
        self,
        input_shape: Sequence[int],
        param_dims: Mapping[str, int],
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        hidden: Sequence[int] = (256,),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        channels = list(checks.sizes("channels", channels))
        _check_conv(input_shape, channels, kernel_size)
        self.input_shape = tuple(input_shape)
        c, h, w = self.input_shape
        act = _activation(activation)
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels, strict=True):
            layers += [nn.Conv2d(c_in, c_out, kernel_size, 2, kernel_size // 2), act()]
        hs, ws = _conv_sizes(h, len(channels)), _conv_sizes(w, len(channels))
        flat = channels[-1] * hs[-1] * ws[-1]
        hidden = list(checks.sizes("hidden", hidden, empty=True))
        self.trunk = nn.Sequential(*layers, nn.Flatten(), mlp([flat, *hidden], activation))
        if hidden:
            self.trunk.append(act())
        out = hidden[-1] if hidden else flat
        self.heads = nn.ModuleDict(
            {name: nn.Linear(out, size) for name, size in param_dims.items()}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = x.shape[:-1]
        h = self.trunk(x.reshape(-1, *self.input_shape))
        return {name: head(h).reshape(*batch, -1) for name, head in self.heads.items()}


@decoders.register("conv")
class ConvDecoder(nn.Module):
    """``z (..., latent_dim) → (..., C·H·W)``: an MLP of the reversed ``hidden`` sizes to
    ``channels[-1]`` feature maps of the encoder's last spatial size, then ``ConvTranspose2d``
    layers (stride 2, output padding chosen so that each restores the encoder's size exactly)
    down to C output channels; one output per pixel and channel, flattened."""

    def __init__(
        self,
        latent_dim: int,
        output_shape: Sequence[int],
        output_dim: int,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        hidden: Sequence[int] = (256,),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        channels = list(checks.sizes("channels", channels))
        _check_conv(output_shape, channels, kernel_size)
        if output_dim != math.prod(output_shape):
            raise ValueError(
                f"the conv decoder gives one output per pixel ({math.prod(output_shape)}), the "
                f"likelihood needs {output_dim}; use decoder 'mlp' for this likelihood"
            )
        c, h, w = output_shape
        hs, ws = _conv_sizes(h, len(channels)), _conv_sizes(w, len(channels))
        self.start = (channels[-1], hs[-1], ws[-1])
        act = _activation(activation)
        hidden = checks.sizes("hidden", hidden, empty=True)
        dense = [latent_dim, *reversed(list(hidden)), math.prod(self.start)]
        layers = [mlp(dense, activation), act(), nn.Unflatten(1, self.start)]
        outs = [*reversed(channels[:-1]), c]
        k, p = kernel_size, kernel_size // 2
        for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs, strict=True)):
            n_in = (hs[-1 - i], ws[-1 - i])
            target = (hs[-2 - i], ws[-2 - i])
            pad = (target[0] - (2 * n_in[0] - 1), target[1] - (2 * n_in[1] - 1))
            layers.append(nn.ConvTranspose2d(c_in, c_out, k, 2, p, output_padding=pad))
            if i < len(channels) - 1:
                layers.append(act())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z.reshape(-1, z.shape[-1]))
        return out.reshape(*z.shape[:-1], -1)
