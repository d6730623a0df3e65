"""VaDE (Jiang et al. 2017) on MNIST: what the VaDE benchmarks share — the model, the prior's
start on the auto-encoder's codes, and the clustering scores (accuracy with Hungarian matching,
NMI, and the component × digit table)."""

import numpy as np
import torch

from pyrovae.data import Split
from pyrovae.infer import Callback
from pyrovae.infer.clustering import clustering_scores, matched_table
from pyrovae.models import VAE
from pyrovae.models.vade import init_mixture_prior


def build(args, input_dim=784):
    torch.manual_seed(args.seed)
    return VAE(
        input_dim,
        10,
        prior={"name": "mixture", "num_components": 10},
        hidden=(500, 500, 2000),
        pretrain_epochs=0,  # this program runs (and checkpoints) the start itself
    )


def start_prior(model, x, args):
    """Stage 2 on the codes of ``x``: the prior's start as ``--start-fit`` and
    ``--start-covariance`` say (k-means with DEC's 20 starts, VaDE's EM with 5)."""
    init_mixture_prior(
        model, x, seed=args.seed, covariance=args.start_covariance, fit=args.start_fit,
        n_init=20 if args.start_fit == "kmeans" else 5, weights="fitted",
    )  # fmt: skip


def scores(model, images, assign=None, test_rows=10_000):
    """Clustering scores on all ``images`` (:func:`everything`: 70,000 for MNIST) and on their
    last ``test_rows``, the test images; ``assign(codes)`` labels the codes instead of the
    prior (default: argmax_c p(c | z) at the posterior mode)."""
    pred = torch.cat(
        [
            model.cluster(x)[1] if assign is None else assign(model.encode(x))
            for x in torch.split(images.x, 2000)
        ]
    )
    y, test = images.y, slice(-test_rows, None)
    return {"all": clustering_scores(pred, y), "test": clustering_scores(pred[test], y[test])}


def everything(mnist):
    """All 70,000 images and labels as one :class:`Split`: training, validation, then the
    10,000 test rows."""
    splits = (mnist.train, mnist.valid, mnist.test)
    return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


def kmeans_on_codes(model, x, seed):
    """k-means (scikit-learn, 20 starts, as DEC's and DEC-keras's AE + k-means figures) on the
    codes of the training images ``x``; returns its nearest-centre labelling of codes."""
    from sklearn.cluster import KMeans

    codes = torch.cat([model.encode(x) for x in torch.split(x, 2000)])
    fit = KMeans(model.prior.num_components, n_init=20, random_state=seed).fit(codes.numpy())
    return lambda z: torch.as_tensor(fit.predict(z.numpy()))


def table(model, x, y):
    """The (K, 10) component × digit counts of images ``x`` with labels ``y``, row d the
    component the Hungarian matching gives digit d (every component holding some image)."""
    with torch.no_grad():
        pred = torch.cat([model.cluster(b)[1] for b in torch.split(x, 2000)]).numpy()
    counts, rows, cols = matched_table(pred, y)
    return counts[rows[np.argsort(cols)]]


class AdamEpsilon(Callback):
    """Adam's ε set to ``eps`` in every parameter group once the optimizer exists (VaDE's code
    uses 1e-4; PyTorch's default, and ``fit``'s, is 1e-8)."""

    def __init__(self, eps):
        self.eps = eps

    def on_train_start(self, state):
        for group in state.optimizer.param_groups:
            group["eps"] = self.eps
