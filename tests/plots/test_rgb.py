"""Colour pictures: a conv VAE trained on coloured 8×8 shapes, its grids written as RGB PNGs
whose pixels are the model's decoded means (the tensors themselves are the reference)."""

import numpy as np
import pytest
import torch
from PIL import Image

import pyrovae
from pyrovae import plots
from pyrovae.data import from_arrays

SHAPE = (3, 8, 8)
SCALE = plots.image_scale(SHAPE)  # 10 screen pixels per image pixel


def coloured_shapes(n, seed=0):
    """``n`` images ``(3, 8, 8)``: a 3×3 square or a 3-pixel-wide plus, at a random place, in
    red, green, blue, yellow, cyan or magenta on black."""
    rng = np.random.default_rng(seed)
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]])
    square = np.ones((3, 3))
    plus = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    x = np.zeros((n, 3, 8, 8), np.float32)
    for i in range(n):
        top, left = rng.integers(0, 6, size=2)
        shape = square if rng.random() < 0.5 else plus
        colour = colours[rng.integers(len(colours))]
        x[i, :, top : top + 3, left : left + 3] = colour[:, None, None] * shape
    return x


@pytest.fixture(scope="module")
def trained():
    data = from_arrays(coloured_shapes(400))
    torch.manual_seed(0)
    conv = {"name": "conv", "channels": (8, 16), "hidden": (32,)}
    vae = pyrovae.VAE(data.input_shape, 2, encoder=conv, decoder=conv)
    pyrovae.fit(vae, data, epochs=3, batch_size=50, progress=False)
    return vae, data


def read_rgb(path):
    """The PNG's pixels as floats in [0, 1], ``(H, W, 3)``, after checking it is RGB."""
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image, dtype=np.float64) / 255


def cell(picture, i, j):
    """Image pixels of grid cell (i, j): ``(8, 8, 3)``, one screen pixel per image pixel."""
    top, left = (plots.PAD + i * 9) * SCALE, (plots.PAD + j * 9) * SCALE
    return picture[top : top + 8 * SCALE : SCALE, left : left + 8 * SCALE : SCALE]


def expected(row):
    """A decoded mean ``(3·8·8,)`` as the PNG stores it: ``(8, 8, 3)`` bytes / 255."""
    return np.round(row.detach().reshape(SHAPE).permute(1, 2, 0).numpy() * 255) / 255


def test_rgb_data_know_their_picture_shape(trained):
    _, data = trained
    assert data.image_shape == SHAPE and data.input_shape == SHAPE


def test_an_rgb_sample_grid_holds_the_decoded_means(trained, tmp_path):
    vae, data = trained
    torch.manual_seed(1)
    path = plots.sample_grid(vae, 10, data.image_shape, tmp_path / "samples.png")
    torch.manual_seed(1)
    means = vae.sample(10)
    picture = read_rgb(path)
    assert picture.shape == ((3 * 9 + 1) * SCALE, (4 * 9 + 1) * SCALE, 3)  # 3 rows of 4
    for k in range(10):
        np.testing.assert_allclose(cell(picture, *divmod(k, 4)), expected(means[k]), atol=1e-9)
    assert np.ptp(picture[..., 0] - picture[..., 1]) > 0.1  # colour, not grey
    np.testing.assert_array_equal(cell(picture, 2, 3), 128 / 255)  # empty cell: the gap grey


def test_rgb_reconstructions_put_each_row_above_its_reconstruction(trained, tmp_path):
    vae, data = trained
    x = data.test.x[:5]
    picture = read_rgb(plots.reconstructions(vae, x, data.image_shape, tmp_path / "r.png"))
    assert picture.shape == ((2 * 9 + 1) * SCALE, (5 * 9 + 1) * SCALE, 3)
    recon = vae.reconstruct(x)
    for j in range(5):
        np.testing.assert_allclose(cell(picture, 0, j), expected(x[j]), atol=1e-9)
        np.testing.assert_allclose(cell(picture, 1, j), expected(recon[j]), atol=1e-9)


def test_save_all_draws_rgb_pictures_of_a_conv_run(trained, tmp_path):
    vae, data = trained
    history = {"epoch": [1], "train_elbo": [-10.0], "valid_elbo": [-11.0], "test_elbo": [None]}
    names = {p.name for p in plots.save_all(vae, data, history, tmp_path, n=16)}
    assert {"samples.png", "reconstructions.png"} <= names
    assert read_rgb(tmp_path / "samples.png").shape == (37 * SCALE, 37 * SCALE, 3)


def test_show_image_draws_grey_colour_and_signed_directions():
    """The pixels matplotlib is handed (the AxesImage's array): grey rows as (H, W) on [0, 1],
    colour rows as (H, W, C), a signed colour direction as 0.5 + v / (2 max|v|)."""
    from pyrovae.plots.canvas import figure, show_image

    torch.manual_seed(0)
    _, axes = figure(3, 1, 1, 3)
    grey, colour, direction = torch.rand(12), torch.rand(36), torch.randn(36)
    show_image(axes[0, 0], grey, (3, 4))
    show_image(axes[0, 1], colour, (3, 3, 4))
    show_image(axes[0, 2], direction, (3, 3, 4), signed=True)
    drawn = [np.asarray(ax.images[0].get_array()) for ax in axes[0]]
    np.testing.assert_array_equal(drawn[0], grey.reshape(3, 4).numpy())
    assert axes[0, 0].images[0].get_clim() == (0, 1)
    np.testing.assert_array_equal(drawn[1], colour.reshape(3, 3, 4).permute(1, 2, 0).numpy())
    halfway = 0.5 + direction / (2 * direction.abs().max())
    np.testing.assert_allclose(drawn[2], halfway.reshape(3, 3, 4).permute(1, 2, 0).numpy())


def test_mixture_samples_of_a_colour_vae_are_drawn_in_colour(tmp_path):
    vae = pyrovae.VAE(48, 2, prior={"name": "mixture", "num_components": 2}, hidden=(8,))
    path = plots.plot_mixture_samples(vae, (3, 4, 4), tmp_path / "rows.png", per_component=3)
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert rgb.shape[:2] == (160, 240)  # (2 rows, 3 columns) × 0.8 inches at 100 dpi
    assert (np.ptp(rgb, axis=-1) > 10).sum() > 100  # pixels whose channels differ: colour
