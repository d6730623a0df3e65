"""
Your own model/guide pair from pyrovae's parts
==============================================

The model explains both the image x and its label y through one latent z, with a Gaussian
likelihood whose scale σ is learned:

    z ~ N(0, I),   x | z ~ N(decoder(z), σ² I),   y | z ~ Categorical(softmax(W z + b))
    q(z | x) = N(μ(x), diag s(x)²)

The guide sees only the image, so after training the encoder's mean classifies unseen images.
Training uses the same path as ``pyrovae.fit``: ``Trace_ELBO()(model, guide)`` is a torch
module whose forward is the loss, minimised with a plain ``torch.optim`` optimizer.

Run it with::

    python examples/custom_model.py --num-epochs 200 --out runs/custom_model
"""

import argparse
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO
from torch import nn

from pyrovae import data, parts, plots


class LabelledVAE(nn.Module):
    """p(x, y, z) with a shared latent z; x ``(N, D)`` grey levels, y ``(N,)`` class labels."""

    def __init__(self, input_dim, latent_dim, num_classes, hidden=(128,)):
        super().__init__()
        self.prior = parts.NormalPrior(latent_dim)
        self.posterior = parts.NormalPosterior(latent_dim)
        self.encoder = parts.MLPEncoder(input_dim, self.posterior.param_dims, hidden)
        self.decoder = parts.MLPDecoder(latent_dim, input_dim, hidden)
        self.likelihood = parts.GaussianLikelihood(input_dim, scale="learned")
        self.classifier = nn.Linear(latent_dim, num_classes)

    def model(self, x, y):
        pyro.module("labelled_vae", self)
        with pyro.plate("data", x.shape[0]):
            z = self.prior("z")
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)
            pyro.sample("y", dist.Categorical(logits=self.classifier(z)), obs=y)

    def guide(self, x, y):
        pyro.module("labelled_vae", self)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.posterior(self.encoder(x)))

    @torch.no_grad()
    def predict(self, x):
        """Most probable label of each row of ``x`` given the posterior mean of z: ``(N,)``."""
        return self.classifier(self.posterior(self.encoder(x)).mean).argmax(-1)

    @torch.no_grad()
    def reconstruct(self, x):
        return self.decoder(self.posterior(self.encoder(x)).mean)


def main(args):
    pyro.set_rng_seed(args.seed)
    digits = data.load("digits")  # grey levels in [0, 1], labels 0-9
    train, test = digits.train, digits.test
    vae = LabelledVAE(digits.input_dim, args.latent_dim, num_classes=10)
    loss_fn = Trace_ELBO()(vae.model, vae.guide)
    optimizer = torch.optim.Adam(vae.parameters(), lr=args.lr)

    for epoch in range(args.num_epochs):
        total = 0.0
        for idx in torch.randperm(len(train)).split(args.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(train.x[idx], train.y[idx]) / len(idx)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % args.log_every == 0 or epoch + 1 == args.num_epochs:
            sigma = vae.likelihood.scale.item()
            print(f"epoch {epoch + 1:4d}  ELBO {-total / len(train):8.3f}  σ {sigma:.3f}")

    accuracy = (vae.predict(test.x) == test.y).float().mean().item()
    print(f"test accuracy of q(z|x) + classifier: {accuracy:.1%}")
    path = plots.reconstructions(vae, test.x[:10], digits.image_shape, Path(args.out) / "recon.png")
    print(f"reconstructions written to {path}")


if __name__ == "__main__":
    assert pyro.__version__.startswith("1.9")
    parser = argparse.ArgumentParser(description="A custom model/guide pair from pyrovae's parts")
    parser.add_argument("-n", "--num-epochs", default=200, type=int)
    parser.add_argument("--latent-dim", default=8, type=int)
    parser.add_argument("--batch-size", default=64, type=int)
    parser.add_argument("--lr", default=3e-3, type=float)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--log-every", default=20, type=int)
    parser.add_argument("--out", default="runs/custom_model", help="folder for recon.png")
    main(parser.parse_args())
