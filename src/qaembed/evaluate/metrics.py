"""The one place where evaluation metrics are defined, vectorized over queries.

Ranking metrics take two matrices:

* ``retrieved``: (n_q, k) gains of the retrieved documents in rank order (row ``i``,
  column ``r`` is the gain of the document ranked ``r + 1`` for query ``i``; 0 for a
  non-relevant document, and 0 as padding where fewer than ``k`` documents were ranked);
* ``ideal``: (n_q, R) the gains of *all* relevant documents of each query, sorted in
  decreasing order and padded with 0.

A document is relevant when its gain is > 0. The definitions match ranx (tested to 1e-9):

==================  ================================================================  ============
metric              definition (per query; the reported value is the mean over queries)  ranx name
==================  ================================================================  ============
MRR@k               1 / rank of the first relevant document in the top k, else 0          ``mrr@k``
NDCG@k              DCG@k / IDCG@k, DCG@k = sum_r gain_r / log2(r + 1) (linear gains,     ``ndcg@k``
                    Järvelin & Kekäläinen 2002); 0 when the query has no relevant doc
MAP@k               sum over relevant ranks r <= k of precision@r, divided by the         ``map@k``
                    number of relevant documents R (not min(k, R))
Recall@k            relevant documents in the top k / R                                   ``recall@k``
Precision@k         relevant documents in the top k / k                                   ``precision@k``
==================  ================================================================  ============

With binary gains (every relevant document has gain 1) NDCG is the usual binary NDCG.

Within-question metrics take (n_q, m) matrices of model scores and vote scores with a
(n_q, m) ``mask`` of real entries (questions have different numbers of answers):
Kendall tau-b (as :func:`scipy.stats.kendalltau`) and pairwise accuracy.

Example
-------
>>> import numpy as np
>>> retrieved = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0]])
>>> ideal = np.array([[1.0, 0.5], [1.0, 0.0]])
>>> reciprocal_rank_at_k(retrieved, 10).tolist()
[0.5, 1.0]
>>> recall_at_k(retrieved, ideal, 1).tolist()
[0.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _top(retrieved: np.ndarray, k: int) -> np.ndarray:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return np.asarray(retrieved, dtype=np.float64)[:, :k]


def num_relevant(ideal: np.ndarray) -> np.ndarray:
    """(n_q,) number of relevant documents (gain > 0) per query."""
    return (np.asarray(ideal) > 0).sum(axis=1)


def _discount(length: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def dcg_at_k(gains: np.ndarray, k: int) -> np.ndarray:
    """(n_q,) discounted cumulative gain of the first ``k`` columns (linear gains)."""
    top = _top(gains, k)
    return top @ _discount(top.shape[1])


def ndcg_at_k(retrieved: np.ndarray, ideal: np.ndarray, k: int) -> np.ndarray:
    """(n_q,) NDCG@k with linear gains; 0 for a query without relevant documents."""
    dcg = dcg_at_k(retrieved, k)
    idcg = dcg_at_k(ideal, k)
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def reciprocal_rank_at_k(retrieved: np.ndarray, k: int) -> np.ndarray:
    """(n_q,) 1 / rank of the first relevant document within the top ``k``; 0 if none."""
    hit = _top(retrieved, k) > 0
    first = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), 1.0 / (first + 1.0), 0.0)


def average_precision_at_k(retrieved: np.ndarray, ideal: np.ndarray, k: int) -> np.ndarray:
    """(n_q,) average precision at k, normalized by the number of relevant documents."""
    hit = (_top(retrieved, k) > 0).astype(np.float64)
    precision_at_rank = np.cumsum(hit, axis=1) / np.arange(1, hit.shape[1] + 1)
    total = num_relevant(ideal).astype(np.float64)
    summed = (precision_at_rank * hit).sum(axis=1)
    return np.divide(summed, total, out=np.zeros_like(summed), where=total > 0)


def recall_at_k(retrieved: np.ndarray, ideal: np.ndarray, k: int) -> np.ndarray:
    """(n_q,) fraction of the relevant documents found in the top ``k``."""
    hits = (_top(retrieved, k) > 0).sum(axis=1).astype(np.float64)
    total = num_relevant(ideal).astype(np.float64)
    return np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)


def precision_at_k(retrieved: np.ndarray, k: int) -> np.ndarray:
    """(n_q,) relevant documents in the top ``k`` divided by ``k``."""
    return (_top(retrieved, k) > 0).sum(axis=1) / float(k)


def rank_by_score(scores: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(n_q, m) column indices that sort each row by decreasing score (stable; masked-out last)."""
    scores = np.asarray(scores, dtype=np.float64)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")


def _pair_signs(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n_q, m, m) sign(values_i - values_j) over pairs i < j of real entries, else 0."""
    m = values.shape[1]
    upper = np.triu(np.ones((m, m), dtype=bool), k=1)
    valid = mask[:, :, None] & mask[:, None, :] & upper
    return np.where(valid, np.sign(values[:, :, None] - values[:, None, :]), 0.0)


def kendall_tau_b(predicted: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n_q,) Kendall tau-b between each row's real entries of ``predicted`` and ``target``.

    tau_b = (concordant - discordant) / sqrt((n0 - ties_predicted) (n0 - ties_target)),
    as :func:`scipy.stats.kendalltau`. Rows where either side is constant (tau undefined)
    give NaN.
    """
    mask = np.asarray(mask, dtype=bool)
    sign_p = _pair_signs(np.asarray(predicted, dtype=np.float64), mask)
    sign_t = _pair_signs(np.asarray(target, dtype=np.float64), mask)
    concordance = (sign_p * sign_t).sum(axis=(1, 2))
    untied_p = np.abs(sign_p).sum(axis=(1, 2))
    untied_t = np.abs(sign_t).sum(axis=(1, 2))
    denominator = np.sqrt(untied_p * untied_t)
    return np.divide(concordance, denominator, out=np.full_like(concordance, np.nan), where=denominator > 0)


def pairwise_accuracy(predicted: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n_q,) fraction of pairs with different targets that ``predicted`` orders the same way.

    A pair the model scores exactly equal counts 1/2. Rows without such pairs give NaN.
    """
    mask = np.asarray(mask, dtype=bool)
    sign_p = _pair_signs(np.asarray(predicted, dtype=np.float64), mask)
    sign_t = _pair_signs(np.asarray(target, dtype=np.float64), mask)
    ordered = sign_t != 0
    credit = np.where(sign_p == sign_t, 1.0, np.where(sign_p == 0, 0.5, 0.0))
    pairs = ordered.sum(axis=(1, 2)).astype(np.float64)
    correct = np.where(ordered, credit, 0.0).sum(axis=(1, 2))
    return np.divide(correct, pairs, out=np.full_like(correct, np.nan), where=pairs > 0)


def ranking_metrics(
    retrieved: np.ndarray, ideal: np.ndarray, ks: Sequence[int], mrr_k: int, *, prefix: str = ""
) -> dict[str, np.ndarray]:
    """Per-query MRR@mrr_k, and NDCG, MAP, Recall and Precision at each k, named ``{prefix}ndcg@10`` etc."""
    columns = {f"{prefix}mrr@{mrr_k}": reciprocal_rank_at_k(retrieved, mrr_k)}
    for k in ks:
        columns[f"{prefix}ndcg@{k}"] = ndcg_at_k(retrieved, ideal, k)
    for k in ks:
        columns[f"{prefix}map@{k}"] = average_precision_at_k(retrieved, ideal, k)
    for k in ks:
        columns[f"{prefix}recall@{k}"] = recall_at_k(retrieved, ideal, k)
    for k in ks:
        columns[f"{prefix}precision@{k}"] = precision_at_k(retrieved, k)
    return columns
