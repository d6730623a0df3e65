"""k-means with k-means++ seeding, used to initialise mixtures.

k-means++ (Arthur & Vassilvitskii 2007): the first centre is a uniformly drawn row; each next
centre is a row drawn with probability proportional to D(x)², its squared distance to the
nearest centre chosen so far. Lloyd iterations then alternate nearest-centre assignment and
centroid updates until the assignments stop changing. Of ``n_init`` seeded runs the one with
the smallest inertia Σ_n min_k ‖x_n − c_k‖² wins.
"""

import torch


def kmeans(x, k, seed=0, n_init=3, max_iter=100):
    """Cluster the rows of ``x`` ``(N, D)`` into ``k`` groups.

    :returns: ``(centres (k, D), labels (N,))`` of the run with the smallest inertia.
    """
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} rows, got {x.shape[0]}; lower k")
    gen = torch.Generator(device=x.device).manual_seed(seed)
    best = None
    for _ in range(n_init):
        centres = _kmeans_pp(x, k, gen)
        labels = None
        for _ in range(max_iter):
            new = torch.cdist(x, centres).argmin(1)
            if labels is not None and torch.equal(new, labels):
                break
            labels = new
            centres = _centroids(x, labels, centres)
        inertia = (x - centres[labels]).pow(2).sum()
        if best is None or inertia < best[0]:
            best = (inertia, centres, labels)
    return best[1], best[2]


def _kmeans_pp(x, k, gen):
    """k-means++ seeding: ``k`` rows of ``x``, each drawn ∝ squared distance to the nearest."""
    first = torch.randint(x.shape[0], (1,), generator=gen, device=x.device)
    centres = x[first]
    d2 = (x - centres).pow(2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        probs = d2 / total if total > 0 else torch.full_like(d2, 1.0 / len(d2))
        idx = torch.multinomial(probs, 1, generator=gen)
        centres = torch.cat([centres, x[idx]])
        d2 = torch.minimum(d2, (x - x[idx]).pow(2).sum(1))
    return centres


def _centroids(x, labels, old):
    """Mean of each cluster's rows; an empty cluster keeps its old centre."""
    k = old.shape[0]
    sums = torch.zeros_like(old).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k).to(x.dtype)
    return torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], old)
