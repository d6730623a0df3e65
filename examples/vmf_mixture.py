"""
A mixture of von Mises–Fisher distributions in plain Pyro
=========================================================

pyrovae's ``VonMisesFisher`` used outside pyrovae's models: directions on the sphere S² are
drawn from three vMF components, and a mixture is fitted by maximum likelihood in a plain
Pyro model, its assignment c summed out by ``TraceEnum_ELBO`` (``config_enumerate``):

    c_n ~ Categorical(π),   x_n | c_n ~ vMF(μ_c, κ_c).

π, μ (constrained to the sphere) and κ are ``pyro.param`` sites, so the guide is empty.
``infer_discrete`` then gives each point its most probable component. The recovered κ, π and
mean directions are printed beside the true ones; the picture shows the points by assignment.

Run it with::

    python examples/vmf_mixture.py --num-steps 300 --out runs/vmf_mixture
"""

import argparse
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from matplotlib.figure import Figure
from pyro.distributions import constraints
from pyro.infer import SVI, TraceEnum_ELBO, config_enumerate, infer_discrete

from pyrovae.distributions import VonMisesFisher

TRUE_LOCS = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, -1, 1.0]]))
TRUE_KAPPAS, TRUE_WEIGHTS = torch.tensor([40.0, 15.0, 5.0]), torch.tensor([0.5, 0.3, 0.2])


@config_enumerate
def model(x, num_components=3):
    weights = pyro.param("weights", torch.ones(num_components) / 3, constraint=constraints.simplex)
    locs = pyro.param(
        "locs", lambda: x[torch.randperm(len(x))[:num_components]], constraint=constraints.sphere
    )
    kappas = pyro.param(
        "kappas", torch.full((num_components,), 2.0), constraint=constraints.positive
    )
    with pyro.plate("data", len(x)):
        c = pyro.sample("c", dist.Categorical(weights))
        pyro.sample("x", VonMisesFisher(locs[c], kappas[c]), obs=x)


def guide(x, num_components=3):
    pass  # every latent is enumerated, every global is a point estimate


def main(args):
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    c_true = dist.Categorical(TRUE_WEIGHTS).sample((args.num_points,))
    x = VonMisesFisher(TRUE_LOCS[c_true], TRUE_KAPPAS[c_true]).sample()

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), TraceEnum_ELBO(max_plate_nesting=1))
    for step in range(1, args.num_steps + 1):
        loss = svi.step(x) / len(x)
        if step % 100 == 0 or step == args.num_steps:
            print(f"step {step:4d}  log-likelihood per point {-loss:.4f}")

    c = infer_discrete(model, first_available_dim=-2, temperature=0)
    assignment = pyro.poutine.trace(c).get_trace(x).nodes["c"]["value"]
    locs, kappas = pyro.param("locs").detach(), pyro.param("kappas").detach()
    match = (locs @ TRUE_LOCS.T).argmax(0)  # the learned component nearest each true one
    for k in range(3):
        angle = torch.rad2deg(torch.acos((locs[match[k]] @ TRUE_LOCS[k]).clamp(-1, 1)))
        print(
            f"component {k}: κ {kappas[match[k]]:6.2f} (true {TRUE_KAPPAS[k]:4.1f})  "
            f"π {pyro.param('weights')[match[k]]:.3f} (true {TRUE_WEIGHTS[k]:.1f})  "
            f"mean direction off by {angle:.2f}°"
        )
    agree = (match[c_true] == assignment).float().mean()
    print(f"infer_discrete puts {100 * agree:.1f}% of the points in their true component")

    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    lon, lat = torch.atan2(x[:, 1], x[:, 0]), torch.asin(x[:, 2].clamp(-1, 1))
    ax.scatter(torch.rad2deg(lon), torch.rad2deg(lat), c=assignment, s=3, cmap="tab10")
    ax.set(xlabel="longitude (°)", ylabel="latitude (°)", title="points by infer_discrete")
    path = Path(args.out) / "vmf_mixture.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    print(f"assignments written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A vMF mixture in plain Pyro")
    parser.add_argument("-n", "--num-steps", default=300, type=int)
    parser.add_argument("--num-points", default=2000, type=int)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--out", default="runs/vmf_mixture")
    main(parser.parse_args())
