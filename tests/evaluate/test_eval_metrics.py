"""The vectorized metrics agree with ranx (ranking) and scipy (Kendall tau-b) on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from qaembed.evaluate.metrics import (
    average_precision_at_k,
    kendall_tau_b,
    ndcg_at_k,
    pairwise_accuracy,
    precision_at_k,
    rank_by_score,
    recall_at_k,
    reciprocal_rank_at_k,
)
from qaembed.evaluate.ranking import Qrels

N_QUERIES, N_DOCS = 60, 40


def _random_problem(seed: int, graded: bool):
    """Random qrels (some queries without relevant docs) and a random full ranking per query."""
    rng = np.random.default_rng(seed)
    judged = rng.random((N_QUERIES, N_DOCS)) < 0.15
    judged[0] = False  # a query with no relevant document
    judged[1, :] = False
    judged[1, rng.integers(N_DOCS)] = True  # exactly one relevant
    levels = rng.integers(1, 5, size=judged.shape) if graded else np.ones(judged.shape, dtype=int)
    query_index, doc_index = np.nonzero(judged)
    qrels = Qrels.from_arrays(query_index, doc_index, levels[judged], N_QUERIES, N_DOCS)
    run_scores = rng.permutation(N_QUERIES * N_DOCS).reshape(N_QUERIES, N_DOCS).astype(float)  # distinct scores
    return qrels, judged, levels, run_scores


def _ranx(judged, levels, run_scores, metric: str) -> np.ndarray:
    from ranx import Qrels as RanxQrels
    from ranx import Run, evaluate

    qrels_dict = {
        f"q{q:04d}": {f"d{d:04d}": int(levels[q, d]) for d in np.flatnonzero(judged[q])} for q in range(N_QUERIES)
    }
    # ranx needs at least one judgment per query; a zero-relevance judgment marks "nothing relevant".
    for q, docs in qrels_dict.items():
        if not docs:
            docs["d0000"] = 0
    run_dict = {f"q{q:04d}": {f"d{d:04d}": float(run_scores[q, d]) for d in range(N_DOCS)} for q in range(N_QUERIES)}
    values = evaluate(RanxQrels.from_dict(qrels_dict), Run.from_dict(run_dict), metric, return_mean=False)
    return np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_ranking_metrics_agree_with_ranx(graded, k):
    qrels, judged, levels, run_scores = _random_problem(seed=k + 100 * graded, graded=graded)
    order = rank_by_score(run_scores)  # (n_q, n_d) full ranking
    retrieved = qrels.gains_of(order)
    ideal = qrels.ideal()
    ours = {
        f"mrr@{k}": reciprocal_rank_at_k(retrieved, k),
        f"ndcg@{k}": ndcg_at_k(retrieved, ideal, k),
        f"map@{k}": average_precision_at_k(retrieved, ideal, k),
        f"recall@{k}": recall_at_k(retrieved, ideal, k),
        f"precision@{k}": precision_at_k(retrieved, k),
    }
    for metric, values in ours.items():
        np.testing.assert_allclose(values, _ranx(judged, levels, run_scores, metric), rtol=0, atol=1e-9, err_msg=metric)
    if graded:  # graded NDCG differs from binary NDCG on this data, so the gains really are used
        assert not np.allclose(ours[f"ndcg@{k}"], ndcg_at_k((retrieved > 0) * 1.0, (ideal > 0) * 1.0, k))


def test_metrics_on_a_ranking_shorter_than_k():
    retrieved = np.array([[0.0, 1.0]])  # only two documents were ranked
    ideal = np.array([[1.0, 1.0]])
    assert precision_at_k(retrieved, 5)[0] == pytest.approx(1 / 5)
    assert recall_at_k(retrieved, ideal, 5)[0] == pytest.approx(1 / 2)
    assert ndcg_at_k(retrieved, ideal, 5)[0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))


def test_kendall_tau_b_matches_scipy_with_ties():
    rng = np.random.default_rng(7)
    predicted = rng.integers(0, 4, size=(30, 6)).astype(float)  # many ties on both sides
    target = rng.integers(0, 3, size=(30, 6)).astype(float)
    mask = np.ones_like(predicted, dtype=bool)
    mask[::3, 4:] = False  # rows of different lengths
    ours = kendall_tau_b(predicted, target, mask)
    expected = np.array([kendalltau(p[m], t[m]).statistic for p, t, m in zip(predicted, target, mask)])
    np.testing.assert_allclose(ours, expected, atol=1e-12, equal_nan=True)
    assert np.isnan(expected).any() == np.isnan(ours).any()


def test_pairwise_accuracy_counts_ordered_pairs_and_half_credit_for_model_ties():
    target = np.array([[3.0, 2.0, 2.0, 1.0]])
    # pairs with different targets: (0,1) (0,2) (0,3) (1,3) (2,3); model gets (0,1) right,
    # ties (0,2), inverts (0,3), gets (1,3) and (2,3) right -> (1 + 0.5 + 0 + 1 + 1) / 5
    predicted = np.array([[0.5, 0.4, 0.5, 0.6 - 0.5]])
    predicted[0, 3] = 0.9  # now (0,3), (1,3), (2,3) are inverted -> (1 + 0.5) / 5
    mask = np.ones_like(target, dtype=bool)
    assert pairwise_accuracy(predicted, target, mask)[0] == pytest.approx(1.5 / 5)
    assert pairwise_accuracy(-target, target, mask)[0] == 0.0
    assert pairwise_accuracy(target, target, mask)[0] == 1.0
    assert np.isnan(pairwise_accuracy(predicted, np.ones_like(target), mask)[0])
