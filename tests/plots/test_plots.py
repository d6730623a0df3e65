import matplotlib.image
import numpy as np
import pytest
import torch
from scipy.stats import norm

from pyrovae import VAE, data, plots

SHAPE = (8, 8)
SCALE = plots.image_scale(SHAPE)  # 10 for 8×8 digits
TOL = 2 / 255  # the grey colormap has 256 levels


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.fixture
def model():
    torch.manual_seed(0)
    return VAE(64, 2, hidden=(16,))


def read_png(path):
    """Grey levels in [0, 1] of a PNG written by the grid functions: ``(height, width)``."""
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    np.testing.assert_array_equal(image[..., 0], image[..., 1])  # grey
    return image[..., 0]


def tile(image, i, j, shape=SHAPE):
    """Image pixels of the grid cell (i, j): one screen pixel per image pixel."""
    h, w = shape
    top, left = (plots.PAD + i * (h + plots.PAD)) * SCALE, (plots.PAD + j * (w + plots.PAD)) * SCALE
    return image[top : top + h * SCALE : SCALE, left : left + w * SCALE : SCALE]


def grid_pixels(nrows, ncols, shape=SHAPE):
    h, w = shape
    return (nrows * (h + plots.PAD) + plots.PAD) * SCALE, (
        ncols * (w + plots.PAD) + plots.PAD
    ) * SCALE


@pytest.mark.parametrize("n, nrows, ncols", [(16, 4, 4), (10, 3, 4), (1, 1, 1)])
def test_sample_grid_size(model, tmp_path, n, nrows, ncols):
    path = plots.sample_grid(model, n, SHAPE, tmp_path / "s.png")
    image = read_png(path)
    assert image.shape == grid_pixels(nrows, ncols)
    assert image.std() > 0.01


def test_reconstructions_rows(model, digits, tmp_path):
    x = digits.test.x[:5]
    image = read_png(plots.reconstructions(model, x, SHAPE, tmp_path / "r.png"))
    assert image.shape == grid_pixels(2, 5)
    recon = model.reconstruct(x)
    for j in range(5):
        np.testing.assert_allclose(tile(image, 0, j), x[j].reshape(SHAPE), atol=TOL)
        np.testing.assert_allclose(tile(image, 1, j), recon[j].reshape(SHAPE), atol=TOL)


def test_learning_curves_skip_missing(tmp_path):
    history = {
        "epoch": [1, 2, 3],
        "train_elbo": [-90.0, -80.0, -75.0],
        "valid_elbo": [-91.0, None, -77.0],
        "test_elbo": [None, None, None],
    }
    image = matplotlib.image.imread(plots.learning_curves(history, tmp_path / "c.png"))
    assert image.shape[:2] == (400, 600)
    assert image[..., :3].std() > 0.01


def test_learning_curves_refuse_empty(tmp_path):
    with pytest.raises(ValueError, match="no ELBO values"):
        plots.learning_curves({"epoch": [1], "train_elbo": [None]}, tmp_path / "c.png")


def test_latent_scatter(model, digits, tmp_path):
    image = matplotlib.image.imread(
        plots.latent_scatter(model, digits.test.x, digits.test.y, tmp_path / "z.png")
    )
    assert image.shape[:2] == (550, 600)
    assert image[..., :3].std() > 0.01


def test_latent_scatter_needs_two_dims(digits, tmp_path):
    with pytest.raises(ValueError, match="latent_dim=2"):
        plots.latent_scatter(VAE(64, 3), digits.test.x, digits.test.y, tmp_path / "z.png")


def test_latent_grid_points_are_normal_quantiles():
    z = plots.latent_grid_points(5).reshape(5, 5, 2).numpy()
    q = norm.ppf(np.linspace(0.05, 0.95, 5))
    np.testing.assert_allclose(z[2, :, 0], q, atol=1e-5)  # z_1 grows to the right
    np.testing.assert_allclose(z[:, 2, 1], q[::-1], atol=1e-5)  # z_2 grows upwards


def test_latent_grid_decodes_expected_z(model, tmp_path):
    image = read_png(plots.latent_grid(model, SHAPE, tmp_path / "g.png", n=3))
    assert image.shape == grid_pixels(3, 3)
    top_right = torch.tensor([[norm.ppf(0.95), norm.ppf(0.95)]], dtype=torch.float32)
    bottom_left = -top_right
    for (i, j), z in (((0, 2), top_right), ((2, 0), bottom_left)):
        expected = model.decode(z).reshape(SHAPE).numpy()
        np.testing.assert_allclose(tile(image, i, j), expected, atol=TOL)


def test_save_all(model, digits, tmp_path):
    history = {"epoch": [1], "train_elbo": [-40.0], "valid_elbo": [-41.0], "test_elbo": [-41.5]}
    paths = plots.save_all(model, digits, history, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "learning_curves.png",
            "samples.png",
            "reconstructions.png",
            "latent_scatter.png",
            "latent_grid.png",
        ]
    )
    assert all(p.stat().st_size > 100 for p in paths)
    paths = plots.save_all(VAE(64, 3, hidden=(16,)), digits, history, tmp_path / "d3")
    assert sorted(p.name for p in paths) == [
        "learning_curves.png",
        "reconstructions.png",
        "samples.png",
    ]


def test_save_all_without_images(tmp_path):
    arrays = data.from_arrays(torch.rand(30, 5), torch.arange(30) % 3)
    history = {"epoch": [1], "train_elbo": [-4.0], "valid_elbo": [-4.1], "test_elbo": [-4.2]}
    paths = plots.save_all(VAE(5, 2, hidden=(8,)), arrays, history, tmp_path)
    assert sorted(p.name for p in paths) == ["latent_scatter.png", "learning_curves.png"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": None, "path": "s.png"}, "image_shape"),
        ({"image_shape": (7, 7), "path": "s.png"}, r"\(N, 49\)"),
        ({"image_shape": SHAPE, "path": "s.jpg"}, "PNG"),
    ],
)
def test_grid_errors(model, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.sample_grid(model, 4, kwargs["image_shape"], tmp_path / kwargs["path"])


def test_save_all_draws_what_the_model_offers(digits, tmp_path):
    from pyrovae.models import MixtureOfLinearDecoders

    history = {"epoch": [1], "train_elbo": [-1.0], "valid_elbo": [-1.0], "test_elbo": [None]}
    torch.manual_seed(0)
    vae = VAE(64, 3, prior={"name": "mixture", "num_components": 3}, hidden=(16,))
    llgae = MixtureOfLinearDecoders(3, 64, 3)
    names = {
        "vae": {p.name for p in plots.save_all(vae, digits, history, tmp_path / "v", n=4)},
        "llgae": {p.name for p in plots.save_all(llgae, digits, history, tmp_path / "l", n=4)},
    }
    generic = {"learning_curves.png", "samples.png", "reconstructions.png"}
    assert names["vae"] == generic | {"components.png"}
    assert names["llgae"] == generic | {"components.png", "reconstructions_by_component.png"}
