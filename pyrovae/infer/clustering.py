"""Clustering scores against true labels: Hungarian-matched accuracy and NMI."""

import numpy as np
import numpy.typing as npt
import torch


def clustering_scores(
    pred: torch.Tensor | npt.ArrayLike, labels: torch.Tensor | npt.ArrayLike
) -> dict[str, float]:
    """Compare cluster indices ``pred`` with class ``labels`` (both ``(N,)`` integers).

    * ``accuracy``: max over one-to-one maps m from clusters to classes of
      (1/N) Σ_n [m(pred_n) = labels_n], the map found by the Hungarian algorithm on the
      contingency table (``scipy.optimize.linear_sum_assignment``); clusters left without a class
      (more clusters than classes) count as errors, as in Xie et al. 2016 and Jiang et al. 2017.
    * ``nmi``: normalised mutual information (arithmetic normalisation, scikit-learn's default).

    :returns: ``{"accuracy": float, "nmi": float}``.
    """
    from sklearn.metrics import normalized_mutual_info_score  # imported when used: import
    # pyrovae stays free of scikit-learn

    pred, labels = _as_int_array(pred, "pred"), _as_int_array(labels, "labels")
    table, rows, cols = matched_table(pred, labels)
    return {
        "accuracy": float(table[rows, cols].sum() / pred.size),
        "nmi": float(normalized_mutual_info_score(labels, pred)),
    }


def matched_table(
    pred: torch.Tensor | npt.ArrayLike, labels: torch.Tensor | npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The contingency table of cluster indices ``pred`` against class ``labels`` (both ``(N,)``
    integers) and its Hungarian matching.

    :returns: ``(table, rows, cols)``: ``table`` is ``(C, L)`` for the C distinct clusters and
        L distinct classes, each in increasing order, ``table[i, j]`` the number of rows in
        cluster i and class j; cluster ``rows[k]`` is matched to class ``cols[k]``, the
        one-to-one map maximising Σ_k table[rows[k], cols[k]]
        (``scipy.optimize.linear_sum_assignment``), the count the accuracy divides by N.
    """
    from scipy.optimize import linear_sum_assignment  # imported when used: import pyrovae stays
    # free of scipy

    pred, labels = _as_int_array(pred, "pred"), _as_int_array(labels, "labels")
    if pred.shape != labels.shape:
        raise ValueError(
            f"pred and labels must have the same shape, got {pred.shape} and {labels.shape}"
        )
    if pred.size == 0:
        raise ValueError("no rows to score; pass at least one prediction")
    _, p = np.unique(pred, return_inverse=True)
    _, y = np.unique(labels, return_inverse=True)
    table = np.zeros((p.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(table, (p, y), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return table, rows, cols


def _as_int_array(a: torch.Tensor | npt.ArrayLike, name: str) -> np.ndarray:
    a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-d array of integers, got {a.dtype} {a.shape}")
    return a
