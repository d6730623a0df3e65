"""The accuracy of VaDE's start on the 8×8 digits, for variants of its pretraining: the study
behind the figures in :mod:`pyrovae.models.vade`'s docstring.

For each seed: the README command's model (10-component mixture prior, d = 10) built as the
command line builds it, the auto-encoder pretrained
(:func:`pyrovae.models.vade.pretrain_autoencoder`) and the mixture fitted to its codes
(:func:`~pyrovae.models.vade.init_mixture_prior`); printed: the accuracy and NMI of the
prior's clusters of the 359 test digits, one JSON line a seed.

    OMP_NUM_THREADS=1 python tools/vade_start.py '{}' 0 1 2 3 4 5 6 7        # the defaults
    OMP_NUM_THREADS=1 python tools/vade_start.py '{"hidden": [256, 128]}' 0 1 2 3
    OMP_NUM_THREADS=1 python tools/vade_start.py '{"deg": 5, "shift": 0.05}' 0 1 2 3 4 5

Variant keys: ``hidden`` (list), ``epochs`` (250), ``lr``, ``corr`` (pixels zeroed),
``loss`` ("likelihood" or "squared_error"), ``sgd`` (DEC-keras's SGD, momentum 0.9, at this
rate over D), ``deg``/``shift`` (the augmentation's range), ``noaug`` (none), ``emaug`` (EM on
this many augmented copies of the rows as well), ``fits`` (a list of stage-2 fits scored on
the same auto-encoder, one line each: dicts of ``prior`` (the prior's covariance, "diag" or
"full"), ``weights`` ("equal" or "fitted") and ``n_init``; default: the defaults, one fit).

    OMP_NUM_THREADS=1 python tools/vade_start.py \
        '{"fits": [{"prior": "diag", "weights": "fitted", "n_init": 5}, {"prior": "full"}]}' 0 1
"""

import functools
import json
import sys

import pyro
import torch

from pyrovae import data as D
from pyrovae.infer.clustering import clustering_scores
from pyrovae.models import vade
from pyrovae.runs import config as C


def config(variant, seed, covariance="diag"):
    """The README command's config with the variant's ``hidden`` and the prior's covariance."""
    prior = {"name": "mixture", "num_components": 10, "covariance": covariance}
    flags = {"prior": prior, "latent_dim": 10, "seed": seed}
    if "hidden" in variant:
        flags["hidden"] = variant["hidden"]
    return C.resolve(None, flags)


def build(cfg, seed, input_shape):
    pyro.set_rng_seed(seed)  # the same networks for either covariance (the prior draws alike)
    return C.build_model(cfg, input_shape)


def start_scores(variant, seed):
    """``[(fit, scores)]``: each of the variant's stage-2 fits on one pretrained auto-encoder."""
    cfg = config(variant, seed)
    data = C.load_data(cfg)
    vae = build(cfg, seed, data.input_shape)
    x = data.train.x
    options = {k: variant[k] for k in ("lr", "loss") if k in variant}
    if "corr" in variant:
        options["corruption"] = variant["corr"]
    if "deg" in variant:
        degrees, shift = variant["deg"], variant.get("shift", 0.1)
        options["augment"] = functools.partial(D.random_affine, degrees=degrees, shift=shift)
    if variant.get("noaug"):
        options["augment"] = None
    if "sgd" in variant:
        params = [p for m in (vae.encoder, vae.decoder, vae.likelihood) for p in m.parameters()]
        options["optimizer"] = torch.optim.SGD(params, lr=variant["sgd"] / x.shape[1], momentum=0.9)
    vade.pretrain_autoencoder(vae, x, epochs=variant.get("epochs", 250), seed=seed, **options)
    rows = x
    if variant.get("emaug"):
        gen = torch.Generator().manual_seed(seed)
        rows = torch.cat([x] + [D.random_affine(x, generator=gen) for _ in range(variant["emaug"])])
    out = []
    for fit in variant.get("fits", [{}]):
        prior_cfg = config(variant, seed, fit.get("prior", "diag"))
        prior_vae = build(prior_cfg, seed, data.input_shape)
        prior_vae.load_state_dict(vae.state_dict(), strict=False)  # the pretrained networks
        options = {k: fit[k] for k in ("weights", "n_init") if k in fit}
        vade.init_mixture_prior(prior_vae, rows, seed=seed, **options)
        out.append((fit, clustering_scores(prior_vae.cluster(data.test.x)[1], data.test.y)))
    return out


if __name__ == "__main__":
    variant = json.loads(sys.argv[1])
    for seed in map(int, sys.argv[2:]):
        for fit, scores in start_scores(variant, seed):
            print(json.dumps({"variant": variant, "fit": fit, "seed": seed, **scores}))
