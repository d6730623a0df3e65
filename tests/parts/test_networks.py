"""Encoder/decoder networks on image shapes: conv layers, leading batch shapes, image data."""

import numpy as np
import pytest
import torch
from torch import nn

import pyrovae
from pyrovae import data
from pyrovae.models import VAE
from pyrovae.parts import decoders, encoders

PARAM_DIMS = {"loc": 3, "scale": 3}


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 7, 9), (2, 5, 5)])
@pytest.mark.parametrize("channels", [[4], [4, 8, 8]])
def test_conv_decoder_restores_every_image_size(shape, channels):
    dec = decoders.build(
        {"name": "conv", "channels": channels},
        latent_dim=3,
        output_shape=shape,
        output_dim=int(np.prod(shape)),
    )
    enc = encoders.build(
        {"name": "conv", "channels": channels}, input_shape=shape, param_dims=PARAM_DIMS
    )
    z = torch.randn(2, 3)
    assert dec(z).shape == (2, int(np.prod(shape)))
    # the decoder's last transposed convolution maps onto exactly (C, H, W)
    maps = dec.net(z)
    assert maps.shape == (2, *shape)
    assert enc(torch.rand(2, int(np.prod(shape))))["loc"].shape == (2, 3)


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_networks_take_any_leading_batch_shape(name):
    """A batch (S, N, ...) gives the same numbers as each row on its own."""
    torch.manual_seed(0)
    shape = (1, 8, 8)
    enc = encoders.build(name, input_dim=64, input_shape=shape, param_dims=PARAM_DIMS)
    dec = decoders.build(name, latent_dim=3, output_dim=64, output_shape=shape)
    x, z = torch.rand(4, 5, 64), torch.randn(4, 5, 3)
    out, rec = enc(x), dec(z)
    assert out["loc"].shape == (4, 5, 3) and rec.shape == (4, 5, 64)
    for s, n in [(0, 0), (3, 4), (2, 1)]:
        torch.testing.assert_close(enc(x[s, n][None])["scale"][0], out["scale"][s, n])
        torch.testing.assert_close(dec(z[s, n][None])[0], rec[s, n])


def test_conv_encoder_is_a_convolution():
    """With one 1→1 channel layer, a 3×3 kernel of a single 1 at the centre-left and no
    bias, the feature map is the stride-2 sub-sampling of the image shifted by one column."""
    enc = encoders.build(
        {"name": "conv", "channels": [1], "hidden": []},
        input_shape=(1, 6, 6),
        param_dims={"loc": 9},
    )
    conv = enc.trunk[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 0] = 1.0
        conv.bias.zero_()
        head = enc.heads["loc"]
        head.weight.copy_(torch.eye(9))
        head.bias.zero_()
    image = torch.rand(6, 6)
    padded = nn.functional.pad(image, (1, 1, 1, 1))
    expected = padded[1:-1:2, 0:-2:2].relu().reshape(9)
    torch.testing.assert_close(enc(image.reshape(1, 36))["loc"][0], expected)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "conv", "channels": []}, "channels must be a non-empty list of positive"),
        ({"name": "conv", "kernel_size": 4}, "kernel_size must be an odd positive integer"),
        ({"name": "conv", "activation": "swish"}, "unknown activation 'swish'"),
        ({"name": "conv", "kernel_size": 101}, "kernel_size 101 is larger than the 8×8 images"),
        ({"name": "conv", "kernel_size": 9}, r"use kernel_size ≤ 8 \(3 or 5 is usual\)"),
    ],
)
def test_conv_refuses_bad_options(spec, message):
    with pytest.raises(ValueError, match=message):
        VAE((1, 8, 8), 2, encoder=spec)
    with pytest.raises(ValueError, match=message):
        VAE((1, 8, 8), 2, encoder="mlp", decoder=spec)


def test_a_kernel_as_large_as_the_longer_side_is_accepted():
    vae = VAE((1, 3, 7), 2, encoder={"name": "conv", "kernel_size": 7})
    assert vae.encoder.trunk[0].kernel_size == (7, 7)


def test_conv_needs_an_image_shape():
    with pytest.raises(ValueError, match=r"a conv network needs images: input_dim=\(C, H, W\)"):
        VAE(64, 2, encoder="conv")
    with pytest.raises(ValueError, match="input_dim must be a positive integer or an image"):
        VAE((8, 8), 2)


def test_data_keep_image_shape(digits):
    assert digits.input_shape == (1, 8, 8) and digits.image_shape == (8, 8)
    rgb = data.from_arrays(np.random.default_rng(0).random((10, 3, 4, 5)).astype(np.float32))
    assert rgb.input_shape == (3, 4, 5) and rgb.input_dim == 60 and rgb.image_shape == (3, 4, 5)
    assert rgb.train.x.shape[1:] == (60,)
    vectors = data.from_arrays(np.random.default_rng(0).random((10, 6)))
    assert vectors.input_shape == (6,) and vectors.image_shape is None
    with pytest.raises(ValueError, match=r"look channels-last .*transpose\(0, 3, 1, 2\)"):
        data.from_arrays(np.zeros((10, 32, 32, 3), dtype=np.float32))


def test_vae_takes_images_or_rows_alike(digits):
    model = VAE(digits.input_shape, 2, encoder="conv", decoder="conv")
    rows = digits.test.x[:7]
    images = rows.reshape(7, 1, 8, 8)
    model.check_data(images)
    model.check_data(rows.reshape(7, 8, 8))
    torch.testing.assert_close(model.encode(images), model.encode(rows))
    with pytest.raises(ValueError, match=r"give a VAE input_dim=\(1, 8, 8\)"):
        VAE(64, 2).check_data(rows.reshape(7, 8, 8))


def test_conv_vae_learns_digits(digits):
    """A few epochs of a conv VAE raise the test ELBO well above its untrained value."""
    model = VAE(digits.input_shape, 4, encoder="conv", decoder="conv", hidden=(64,))
    before = pyrovae.evaluate(model, digits, num_samples=5)["elbo"]
    pyrovae.fit(model, digits, epochs=4, batch_size=50, lr=3e-3, progress=False)
    after = pyrovae.evaluate(model, digits, num_samples=5)["elbo"]
    assert after > before + 10, (before, after)
