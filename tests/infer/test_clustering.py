"""Clustering scores: Hungarian-matched accuracy against brute force over label permutations."""

import itertools

import numpy as np
import pytest
import torch

from pyrovae.infer.clustering import clustering_scores, matched_table


def brute_force_accuracy(pred, labels, k):
    return max(np.mean(np.array(perm)[pred] == labels) for perm in itertools.permutations(range(k)))


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_equals_best_permutation(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, (labels + 1) % 4, rng.integers(0, 4, 60))
    scores = clustering_scores(pred, labels)
    assert scores["accuracy"] == pytest.approx(brute_force_accuracy(pred, labels, 4))


def test_relabelled_clusters_score_one():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    scores = clustering_scores(torch.tensor([2, 2, 0, 0, 1, 1]), labels)
    assert scores == {"accuracy": 1.0, "nmi": pytest.approx(1.0)}


def test_extra_clusters_count_as_errors():
    scores = clustering_scores(np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1]))
    assert scores["accuracy"] == 0.5


@pytest.mark.parametrize(
    "pred, labels, message",
    [
        (np.zeros(3, int), np.zeros(4, int), "same shape"),
        (np.zeros(3), np.zeros(3, int), "integers"),
        (np.zeros(0, int), np.zeros(0, int), "no rows"),
    ],
)
def test_bad_input(pred, labels, message):
    with pytest.raises(ValueError, match=message):
        clustering_scores(pred, labels)


def test_matched_table_is_scikit_learns_contingency_matrix_and_its_best_matching():
    from sklearn.metrics.cluster import contingency_matrix

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 80)
    pred = np.where(rng.random(80) < 0.7, (labels + 2) % 5, rng.integers(0, 5, 80))
    table, rows, cols = matched_table(torch.as_tensor(pred), labels)
    np.testing.assert_array_equal(table, contingency_matrix(pred, labels))
    # five clusters onto four classes: the cluster matched to the absent class 4 is never right
    assert table[rows, cols].sum() == round(brute_force_accuracy(pred, labels, 5) * 80)
