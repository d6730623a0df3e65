"""
A Gaussian VAE in a plain Pyro SVI loop
=======================================

pyrovae's models are ordinary Pyro model/guide pairs: here ``VAE.model`` and ``VAE.guide`` go
straight into ``pyro.infer.SVI`` with ``pyro.optim.Adam``, no ``pyrovae.fit``. The data are
scikit-learn's 8×8 digits, binarized afresh every epoch. Two pictures are saved: test digits
above their reconstructions (the means of p(x | z) at the posterior mean of z), and samples
(the means of p(x | z) for z drawn from the prior). Run it with::

    python examples/gaussian_vae.py --num-steps 3000 --out runs/gaussian_vae

The gallery's pictures come from a 1,500-step run (84 epochs, seed 0), made while the
documentation was built; a few hundred steps are not enough: every sample is then the same
blur.
"""

# sphinx_gallery_multi_image = "single"

import argparse
from pathlib import Path

import pyro
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

import pyrovae
from pyrovae import plots


def main(args):
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    data = pyrovae.data.load("digits", binarize="dynamic")  # rows (N, 64) in {0, 1}
    vae = pyrovae.VAE(data.input_dim, args.latent_dim, hidden=(128, 64))
    svi = SVI(vae.model, vae.guide, Adam({"lr": args.lr}), Trace_ELBO())

    step, epoch = 0, 0
    while step < args.num_steps:
        for x in data.batches(args.batch_size, epoch, args.seed):
            loss = svi.step(x) / len(x)  # negative ELBO per image
            step += 1
            if step % args.log_every == 0 or step == args.num_steps:
                print(f"step {step:5d}  train ELBO {-loss:8.3f}")
            if step == args.num_steps:
                break
        epoch += 1

    test_elbo = -svi.evaluate_loss(data.test.x) / len(data.test)
    print(f"test ELBO {test_elbo:.3f} nats per image after {step} steps ({epoch} epochs)")
    out = Path(args.out)
    plots.reconstructions(vae, data.test.x[:16], data.image_shape, out / "reconstructions.png")
    path = plots.sample_grid(vae, 64, data.image_shape, out / "samples.png")
    print(f"reconstructions and samples written to {path.parent}")


if __name__ == "__main__":
    assert pyro.__version__.startswith("1.9")
    parser = argparse.ArgumentParser(description="Gaussian VAE with a plain Pyro SVI loop")
    parser.add_argument("-n", "--num-steps", default=3000, type=int)
    parser.add_argument("--latent-dim", default=8, type=int)
    parser.add_argument("--batch-size", default=64, type=int)
    parser.add_argument("--lr", default=1e-3, type=float)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--log-every", default=250, type=int)
    parser.add_argument("--out", default="runs/gaussian_vae", help="folder for samples.png")
    main(parser.parse_args())
