"""
Clustering with a mixture-prior VAE (VaDE)
==========================================

A VAE whose prior is a Gaussian mixture, p(z) = Σ_c π_c N(z; μ_c, diag σ_c²), with the
component c an explicit latent summed out by enumeration (``TraceEnum_ELBO``). Trained from
scratch its components rarely line up with the classes, so it starts as VaDE does (Jiang et
al. 2017): the encoder and decoder are first trained as an auto-encoder (on randomly turned
and moved copies of the images, DEC-DA's augmentation), then a Gaussian mixture fitted to the
codes (full covariances, their diagonals kept) becomes the prior and q(z | x) starts narrow
around the codes (the VAE's
``pretrain_epochs``; ``fit`` runs this start itself, here it is run first to score it), then
the whole VAE is trained by ``pyrovae.fit``. Each test digit's cluster is the most probable c
given its code; ``evaluate`` scores the clusters by accuracy (after Hungarian matching to the
labels) and NMI. The picture decodes samples of each component, one row per component.

Run it with::

    python examples/clustering.py --num-epochs 100 --out runs/clustering

(20 epochs of pretraining by default, to stay quick; the command line's default, about 3,000
batches, is ``--pretrain-epochs 250`` here.)
"""

import argparse
from pathlib import Path

import torch

import pyrovae
from pyrovae.infer import starts
from pyrovae.plots import plot_mixture_samples


def main(args):
    torch.manual_seed(args.seed)
    data = pyrovae.data.load("digits")  # grey levels in [0, 1], Bernoulli likelihood as in VaDE
    vae = pyrovae.VAE(
        data.input_shape,  # (1, 8, 8) images: the pretraining sees randomly turned, moved copies
        args.latent_dim,
        prior={"name": "mixture", "num_components": 10},
        hidden=(256, 128),
        pretrain_epochs=args.pretrain_epochs,
    )
    starts.start(vae, data.train.x, seed=args.seed)  # VaDE's start: auto-encoder, GMM on codes
    start = pyrovae.evaluate(vae, data, num_samples=10)
    print(f"after the VaDE start: accuracy {start['accuracy']:.3f}  NMI {start['nmi']:.3f}")

    pyrovae.fit(
        vae,
        data,
        epochs=args.num_epochs,
        lr=args.lr,
        seed=args.seed,
        initialize=False,
        progress=False,
    )  # initialize=False: the start above is done
    result = pyrovae.evaluate(vae, data, num_samples=100)
    print(
        f"after {args.num_epochs} epochs: accuracy {result['accuracy']:.3f}  "
        f"NMI {result['nmi']:.3f}  test log-likelihood {result['log_likelihood']:.2f} nats"
    )
    path = plot_mixture_samples(vae, data.image_shape, Path(args.out) / "components.png")
    print(f"samples of each component written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Mixture-prior VAE clustering with VaDE's start")
    parser.add_argument("-n", "--num-epochs", default=100, type=int)
    parser.add_argument("--pretrain-epochs", default=20, type=int)
    parser.add_argument("--latent-dim", default=10, type=int)
    parser.add_argument("--lr", default=1e-3, type=float)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--out", default="runs/clustering")
    main(parser.parse_args())
