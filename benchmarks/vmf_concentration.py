"""How the S-VAE's learned concentration is parameterised: 1 + exp(raw) against softplus(raw) + 1.

The S-VAE of Davidson et al. 2018 (784-256-128 encoder, mirrored decoder, hyperspherical prior)
on the first 20,000 dynamically binarized MNIST training images for a few epochs, once with our
default κ = 1 + exp(raw) and once with the paper's κ = softplus(raw) + 1. Prints the validation
ELBO per epoch and the median κ on 500 validation images; writes
benchmarks/results/vmf_concentration/vmf_concentration.json.
"""

import pyro
from torch.nn.functional import normalize, softplus

import pyrovae
from pyrovae.distributions import VonMisesFisher
from pyrovae.parts import VonMisesFisherPosterior

QUICK = ["--dim", "3", "--epochs", "2", "--rows", "500"]
FULL = []
SEEDS = (0,)


class SoftplusConcentration(VonMisesFisherPosterior):
    """Davidson et al.'s parameterisation: κ(x) = softplus(raw) + 1."""

    def forward(self, params):
        loc = normalize(params["loc"], dim=-1)
        kappa = softplus(params["concentration"]).squeeze(-1) + self.min_concentration
        return VonMisesFisher(loc, kappa, sampler=self.sampler)


def run(posterior, data, args):
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    model = pyrovae.VAE(
        data.input_dim, args.dim, prior="hyperspherical_uniform", posterior=posterior
    )
    history = pyrovae.fit(
        model,
        data,
        epochs=args.epochs,
        batch_size=100,
        warmup_epochs=2,
        seed=args.seed,
        progress=False,
    )
    q = model.posterior(model.encoder(data.valid.x[:500]))
    return {"valid_elbo": history["valid_elbo"], "median_kappa": q.concentration.median().item()}


def main(args, session):
    mnist = session.load("mnist", binarize="dynamic")
    train = pyrovae.data.Split(mnist.train.x[: args.rows])
    data = pyrovae.data.Data(train, mnist.valid, None, binarize="dynamic")
    results = {
        "exp": run(VonMisesFisherPosterior(args.dim), data, args),
        "softplus": run(SoftplusConcentration(args.dim), data, args),
    }
    for name, r in results.items():
        print(name, [round(v, 1) for v in r["valid_elbo"]], f"median κ {r['median_kappa']:.0f}")
    session.write("vmf_concentration.json", {"args": vars(args), "results": results})


def arguments(p):
    p.add_argument("--dim", type=int, default=10)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
