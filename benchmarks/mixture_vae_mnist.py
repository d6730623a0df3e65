"""Mixture-prior VAE (K = 10) on MNIST: clustering accuracy, NMI and ELBO on the 10k test images.

VaDE's recipe (Jiang et al. 2017): a 784-500-500-2000-d MLP auto-encoder is pre-trained, a
diagonal Gaussian mixture fitted to its codes becomes the prior, then the VAE is trained with
the mixture prior summed out exactly (TraceEnum_ELBO). Learning rate is lowered in stages
(each a fresh Adam). Pixels are grey levels in [0, 1] with a Bernoulli likelihood (no
binarisation), as in VaDE.

    nice -n 10 python benchmarks/mixture_vae_mnist.py --data-root /work/shared/data
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import pyrovae
from pyrovae.infer.clustering import clustering_scores
from pyrovae.infer.train import default_elbo, elbo_per_example
from pyrovae.models import VAE
from pyrovae.models.vade import init_mixture_prior, pretrain_autoencoder


def scores(model, split):
    pred = torch.cat([model.cluster(x)[1] for x in torch.split(split.x, 1000)])
    return clustering_scores(pred, split.y)


def main(args):
    torch.set_num_threads(args.threads)
    data = pyrovae.data.load("mnist", root=args.data_root)
    torch.manual_seed(args.seed)
    model = VAE(
        784,
        args.latent_dim,
        prior={"name": "mixture", "num_components": args.num_components},
        likelihood="bernoulli",
        hidden=tuple(args.hidden),
        pretrain_epochs=0,  # the start below is run (and scored) by hand
    )
    result = {"args": vars(args), "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    result["pretrain_loss"] = pretrain_autoencoder(
        model, data.train.x, epochs=args.pretrain_epochs, batch_size=256, lr=1e-3, seed=args.seed
    )
    print("pretraining loss:", result["pretrain_loss"], flush=True)
    gmm = init_mixture_prior(model, data.train.x, seed=args.seed)
    codes = torch.cat([model.encode(x) for x in torch.split(data.test.x, 1000)])
    result["after_pretraining"] = clustering_scores(gmm.assign(codes), data.test.y)
    result["pretrain_seconds"] = time.perf_counter() - tic
    print("after pretraining:", result["after_pretraining"], flush=True)
    out.write_text(json.dumps(result, indent=1))

    stages = []
    for stage, lr in enumerate(args.lrs):
        tic = time.perf_counter()
        history = pyrovae.fit(
            model,
            data,
            epochs=args.epochs_per_stage,
            batch_size=args.batch_size,
            lr=lr,
            seed=args.seed + stage,
            progress=False,
        )
        stages.append(
            {
                "lr": lr,
                "seconds": time.perf_counter() - tic,
                "valid_elbo": history["valid_elbo"][-1],
                **scores(model, data.test),
            }
        )
        print(stages[-1], flush=True)
        result["stages"] = stages
        out.write_text(json.dumps(result, indent=1))
    result["test"] = {
        "elbo": elbo_per_example(default_elbo(model), model, data.test.x),
        **scores(model, data.test),
    }
    result["total_seconds"] = result["pretrain_seconds"] + sum(s["seconds"] for s in stages)
    print(json.dumps(result["test"]))
    out.write_text(json.dumps(result, indent=1))
    if args.save_model:
        torch.save(model.state_dict(), args.save_model)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("PYROVAE_DATA"))
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--num-components", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500, 2000])
    parser.add_argument("--pretrain-epochs", type=int, default=15)
    parser.add_argument("--epochs-per-stage", type=int, default=5)
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-3, 1e-3, 5e-4])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/mixture_vae_mnist.json")
    parser.add_argument("--save-model", help="also write the trained state_dict to this file")
    main(parser.parse_args())
