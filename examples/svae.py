"""
Hyperspherical VAE and the von Mises–Fisher samplers
====================================================

The S-VAE of Davidson et al. 2018: latents on the unit sphere S² ⊂ R³ with a uniform prior and
a von Mises–Fisher posterior q(z | x) = vMF(μ(x), κ(x)), trained by ``pyrovae.fit`` on the 8×8
digits. Then the distribution on its own: its two samplers (Wood's rejection sampler and the
tabulated inverse CDF) draw w = μᵀz, whose density is ∝ exp(κw)(1 − w²)^((d−3)/2); both
histograms are drawn against it, and their means against the exact E[w] = A_d(κ).

Run it with::

    python examples/svae.py --num-epochs 100 --out runs/svae
"""

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure

import pyrovae
from pyrovae import plots
from pyrovae.distributions import VonMisesFisher
from pyrovae.ops.special import bessel_iv_ratio


def sampler_figure(d, kappa, n, path):
    loc = torch.zeros(d, dtype=torch.float64)
    loc[0] = 1.0
    w = torch.linspace(-1, 1, 401, dtype=torch.float64)[1:-1]
    density = (kappa * w + 0.5 * (d - 3) * torch.log1p(-w * w)).exp()
    density /= torch.trapezoid(density, w)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for sampler in VonMisesFisher.samplers:
        z = VonMisesFisher(loc, torch.tensor(kappa, dtype=torch.float64), sampler=sampler)
        w_drawn = z.rsample((n,))[:, 0]
        ax.hist(w_drawn.numpy(), bins=60, density=True, histtype="step", label=sampler)
        print(f"{sampler:12s} mean of w {w_drawn.mean():.4f}")
    exact = bessel_iv_ratio(0.5 * d, torch.tensor(kappa, dtype=torch.float64))
    print(f"{'exact A_d(κ)':12s} {exact.item():.4f}")
    ax.plot(w, density, "k", lw=1, label="exact density")
    ax.set(xlabel="w = μᵀz", title=f"vMF on $S^{{{d - 1}}}$, κ = {kappa}")
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def main(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    data = pyrovae.data.load("digits", binarize="dynamic")
    vae = pyrovae.VAE(
        data.input_dim,
        3,  # ambient dimension: z on the sphere S² in R³
        prior="hyperspherical_uniform",
        posterior="von_mises_fisher",
        hidden=(128, 64),
    )
    history = pyrovae.fit(vae, data, epochs=args.num_epochs, seed=args.seed, progress=False)
    print(f"test ELBO after {args.num_epochs} epochs: {history['test_elbo'][-1]:.3f} nats")
    path = plots.sample_grid(vae, 64, data.image_shape, out / "samples.png")
    print(f"samples written to {path}")
    path = sampler_figure(args.dim, args.kappa, args.num_draws, out / "samplers.png")
    print(f"sampler histograms written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Hyperspherical VAE and vMF samplers")
    parser.add_argument("-n", "--num-epochs", default=100, type=int)
    parser.add_argument("--dim", default=5, type=int, help="d of the vMF sampler demo")
    parser.add_argument("--kappa", default=10.0, type=float)
    parser.add_argument("--num-draws", default=20000, type=int)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--out", default="runs/svae")
    main(parser.parse_args())
