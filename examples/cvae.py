"""
Conditional VAE: digits of a chosen label
=========================================

A VAE conditioned on the class label y (Sohn et al. 2015): the decoder is p(x | z, y) and the
encoder q(z | x, y), each fed the one-hot code of y beside its usual input, so z is left to
model what the label does not say — the style. ``pyrovae.fit`` passes each batch's labels to
``model(x, y)`` and ``guide(x, y)``. The bound given the true labels is compared with the
bound given wrong ones (the model uses the label if the first is much higher), and
``sample(n, y)`` generates digits of a chosen label: in the picture, column y shows label y and
each row keeps one z, one style.

Run it with::

    python examples/cvae.py --num-epochs 200 --out runs/cvae
"""

import argparse
from pathlib import Path

import torch
from pyro.infer import Trace_ELBO

import pyrovae
from pyrovae.models import ConditionalVAE
from pyrovae.plots.labels import samples_by_label


def main(args):
    torch.manual_seed(args.seed)
    data = pyrovae.data.load("digits", binarize="dynamic")
    cvae = ConditionalVAE(data.input_dim, args.latent_dim, num_classes=10, hidden=(128, 64))
    history = pyrovae.fit(cvae, data, epochs=args.num_epochs, seed=args.seed, progress=False)
    print(f"test ELBO of log p(x | y): {history['test_elbo'][-1]:.3f} nats per digit")

    x, y = data.test.x, data.test.y
    elbo = Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=1)
    wrong = (y + torch.randint(1, 10, y.shape)) % 10
    for name, labels in (("true labels", y), ("wrong labels", wrong)):
        print(
            f"ELBO given {name:12s} {-elbo.loss(cvae.model, cvae.guide, x, labels) / len(x):8.3f}"
        )

    sevens = cvae.sample(5, y=7)  # generation for a chosen label: (5, 64)
    print(f"five sevens drawn, shape {tuple(sevens.shape)}")
    path = samples_by_label(cvae, data.image_shape, Path(args.out) / "samples_by_label.png")
    print(f"samples by label written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Conditional VAE on the digits")
    parser.add_argument("-n", "--num-epochs", default=200, type=int)
    parser.add_argument("--latent-dim", default=2, type=int)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--out", default="runs/cvae")
    main(parser.parse_args())
