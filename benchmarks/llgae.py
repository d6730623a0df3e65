"""LLGAE benchmark: a mixture of K linear decoders (mixture of PPCA) against PCA and K = 1.

Images are centred (each image's mean pixel subtracted, pixels on the [0, 1] scale) and the
models are fitted to the 50,000 training images. On the 10,000 test images we report:

* ``mse``: the LLGAE notes' metric, mean squared error per pixel on the 0–255 scale of the
  centred images (the notes: 768.06 on Fashion-MNIST, K = 11, E = 20);
  ``mse_guide`` reconstructs with the guide's point estimate (k, z), ``mse_projection`` with
  the orthogonal projection onto the component of smallest residual (the best reconstruction
  the K subspaces allow; for PCA both are the PCA reconstruction);
* ``log_likelihood``: exact log p(x) in nats per image (mixture of PPCA, closed form) of the
  centred [0, 1] images; for PCA, scikit-learn's probabilistic-PCA score;
* ``elbo``: the ELBO of the guide the model was trained with (for ``iterative``: log p(x, k̂, ẑ)
  at its point estimate, not a bound);
* ``train_seconds``: SVI wall-clock time (initialisation timed separately).

Writes ``results/llgae/llgae_<dataset>.json``; the quick form runs on the digits.
"""

import json
import time

import pyro
import torch
from sklearn.decomposition import PCA

import pyrovae
from pyrovae.data import Data, Split
from pyrovae.infer.train import default_elbo, elbo_per_example
from pyrovae.models import MixtureOfLinearDecoders

QUICK = ["--num-components", "3", "--latent-dim", "4", "--epochs", "1"]
FULL = []
SEEDS = (0,)

PIXEL = 255.0**2  # MSE on the 0–255 scale from the [0, 1] scale


def centred(x):
    return x - x.mean(1, keepdim=True)


def scores(model, x):
    """Test metrics of a trained mixture of linear decoders."""
    return {
        "log_likelihood": model.log_likelihood_exact(x).mean().item(),
        "elbo": elbo_per_example(default_elbo(model), model, x),
        "mse_guide": (model.reconstruct(x) - x).pow(2).mean().item() * PIXEL,
        "mse_projection": (model.project(x)[0] - x).pow(2).mean().item() * PIXEL,
    }


def pca_scores(train, test, dim):
    tic = time.perf_counter()
    pca = PCA(dim, random_state=0).fit(train.numpy())
    seconds = time.perf_counter() - tic
    recon = torch.as_tensor(pca.inverse_transform(pca.transform(test.numpy())))
    mse = (recon - test).pow(2).mean().item() * PIXEL
    return {
        "log_likelihood": float(pca.score(test.numpy())),
        "mse_guide": mse,
        "mse_projection": mse,
        "train_seconds": seconds,
    }


def run(start, guide, train, test, args):
    """Copy the initial components of ``start``, fit the guide's own parameters to them, train."""
    pyro.clear_param_store()
    torch.manual_seed(args.seed)
    K, D, E = start.num_components, start.input_dim, start.latent_dim
    model = MixtureOfLinearDecoders(K, D, E, guide=guide)
    model.load_state_dict(start.state_dict(), strict=False)  # the components; guide is fresh
    tic = time.perf_counter()
    if hasattr(model.inference, "initialize"):
        model.inference.initialize(model, train, args.seed)
    guide_init = time.perf_counter() - tic
    tic = time.perf_counter()
    history = pyrovae.fit(
        model,
        Data(Split(train)),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr_iterative if guide == "iterative" else args.lr,
        seed=args.seed,
        initialize=False,
        progress=False,
    )
    seconds = time.perf_counter() - tic
    result = {"guide": guide, **scores(model, test), "train_seconds": seconds}
    result.update(guide_init_seconds=guide_init, train_elbo=history["train_elbo"])
    print(json.dumps(result), flush=True)
    return result


def main(args, session):
    torch.set_num_threads(args.threads)
    data = session.load(args.dataset)
    train, test = centred(data.train.x), centred(data.test.x)
    if args.limit:
        train, test = train[: args.limit], test[: args.limit]
    K, E = args.num_components, args.latent_dim
    results = {"pca": pca_scores(train, test, E)}
    print("pca", json.dumps(results["pca"]), flush=True)
    for k in (1, K):
        torch.manual_seed(args.seed)
        start = MixtureOfLinearDecoders(k, train.shape[1], E, guide="exact")
        tic = time.perf_counter()
        start.initialize(train, args.seed)
        init = {**scores(start, test), "init_seconds": time.perf_counter() - tic}
        print(f"K={k} k-means + PCA", json.dumps(init), flush=True)
        guides = ["exact"] if k == 1 else args.guides
        results[f"K={k}"] = {"init": init, **{g: run(start, g, train, test, args) for g in guides}}
    results["setup"] = {
        "dataset": data.name,
        "preprocessing": "pixels / 255, each image's mean subtracted; mse on the 0-255 scale",
        "train_rows": len(train),
        "test_rows": len(test),
        "num_components": K,
        "latent_dim": E,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_iterative": args.lr_iterative,
    }
    print("wrote", session.write(f"llgae_{data.name}.json", results))


def arguments(p):
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--num-components", type=int, default=11)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--guides", nargs="+", default=["exact", "amortized", "iterative"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4, help="Adam's lr (models start near optimum)")
    p.add_argument(
        "--lr-iterative",
        type=float,
        default=1e-3,
        help="lr with the iterative guide: its bases must grow to undo the short unrolled steps",
    )
    p.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, help="use only this many train and test rows (smoke run)")
