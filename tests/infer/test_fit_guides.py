"""fit trains any model/guide object: Pyro's autoguides on a user's model, a VAE with a
non-amortised guide; parameters are found on a real batch."""

import pyro
import pyro.distributions as dist
import torch
from pyro.infer.autoguide import AutoNormal

import pyrovae
from pyrovae.models import VAE


class Regression:
    """y = w x + b + ε, ε ~ N(0, σ²), with priors on w, b and a local latent u_n ~ N(0, 1)
    shifting each row: conjugate in (w, b) given σ, with a per-row latent that makes the
    guide's parameters take the batch's shape."""

    def model(self, data):
        w = pyro.sample("w", dist.Normal(0.0, 10.0))
        b = pyro.sample("b", dist.Normal(0.0, 10.0))
        with pyro.plate("data", data.shape[0]):
            u = pyro.sample("u", dist.Normal(0.0, 1.0))
            pyro.sample("y", dist.Normal(w * data[:, 0] + b + 0.1 * u, 0.5), obs=data[:, 1])


def test_autonormal_on_a_users_model_recovers_the_least_squares_line():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, generator=gen)
    y = 2.0 * x - 1.0 + 0.5 * torch.randn(300, generator=gen)
    data = torch.stack([x, y], 1)
    user = Regression()
    user.guide = AutoNormal(user.model)
    history = pyrovae.fit(user, data, epochs=600, batch_size=300, lr=0.02, progress=False)
    assert pyro.get_param_store()["AutoNormal.locs.u"].shape == (300,)  # the real batch
    # the posterior mean of (w, b) under these flat priors is close to least squares
    design = torch.stack([x, torch.ones_like(x)], 1)
    w, b = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    median = user.guide.median(data)
    assert abs(median["w"] - w) < 0.05 and abs(median["b"] - b) < 0.05
    assert history["train_elbo"][-1] > history["train_elbo"][0]


def test_a_vae_with_an_autoguide_trains_full_batch(digits):
    rows = digits.train.x[:200]
    vae = VAE(64, 2, hidden=(32,), guide="auto_normal")
    history = pyrovae.fit(vae, rows, epochs=150, batch_size=200, lr=1e-2, progress=False)
    assert pyro.get_param_store()["AutoNormal.locs.z"].shape == (200, 2)
    assert history["train_elbo"][-1] - history["train_elbo"][0] > 5
    # the per-row posteriors sit where the rows are: z's guide mean reconstructs better than
    # the same means given to the wrong rows
    z = vae.autoguide.median(rows)["z"]
    good = vae.likelihood(vae.decoder(z)).log_prob(rows).mean()
    shuffled = vae.likelihood(vae.decoder(z.roll(1, 0))).log_prob(rows).mean()
    assert good > shuffled + 2
