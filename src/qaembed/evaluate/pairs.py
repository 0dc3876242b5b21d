"""Evaluation on duplicate-question pair data: duplicate retrieval and pair classification.

Two sections, for the pairs of one split of a pair dataset (``qaembed data prepare --format
pairs-*``; see ``docs/pairs.md``):

* ``retrieval/*`` — sentence-transformers' Quora duplicate-retrieval protocol: the corpus is
  every question of the split; every question that has a labelled duplicate in the split
  is a query, the query itself is left out of its ranking, and its relevant documents are
  its labelled duplicates (label-1 pairs, both directions). MRR@10, NDCG@k, MAP@k,
  Recall@k, Precision@k from :mod:`qaembed.evaluate.metrics` (which agrees with ranx).
* ``classification/*`` — sentence-transformers' ``BinaryClassificationEvaluator`` with
  cosine similarity: the accuracy threshold and the F1 threshold are chosen on the
  threshold pairs (the dev split, by default) exactly as it chooses them (scores sorted
  decreasing, tied scores as one group, the threshold half-way to the next lower score,
  a pair predicted duplicate when ``score >= threshold``) and applied to the evaluated
  pairs: accuracy at the accuracy threshold, F1 / precision / recall at the F1 threshold,
  and average precision (threshold-free, ``sklearn.metrics.average_precision_score``).
  When the threshold pairs are the evaluated pairs, the numbers equal the evaluator's.

Example
-------
>>> import numpy as np
>>> scores, labels = np.array([0.9, 0.8, 0.4, 0.3]), np.array([1, 0, 1, 0])
>>> [round(float(v), 4) for v in best_accuracy_threshold(scores, labels)]
[0.75, 0.85]
>>> [round(float(v), 4) for v in best_f1_threshold(scores, labels)]
[0.8, 0.6667, 1.0, 0.35]
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from qaembed.data.pairs import PairRecord
from qaembed.errors import DataError
from qaembed.evaluate.config import EvalConfig
from qaembed.evaluate.metrics import ranking_metrics
from qaembed.evaluate.ranking import EncodeFn, Qrels, encode_unique, resolve_encoder, retrieve
from qaembed.evaluate.result import EvalResult

PER_PAIR_FILE = "per_pair.parquet"


def _sorted_groups(scores: np.ndarray, labels: np.ndarray):
    """Scores sorted decreasing, cumulative positives and counts at the end of each tie group."""
    order = np.argsort(-scores, kind="stable")
    ranked, ranked_labels = scores[order], labels[order]
    positives = np.cumsum(ranked_labels)  # (n,) positives among the top i + 1
    taken = np.arange(1, ranked.size + 1)
    ends = np.flatnonzero(np.append(ranked[:-1] != ranked[1:], True))  # last index of each tie group
    return ranked, positives, taken, ends


def _midpoint(ranked: np.ndarray, i: int) -> float:
    """The threshold after position ``i``: half-way to the next lower score (in the scores' dtype)."""
    if i == ranked.size - 1:
        return ranked[i]
    threshold = (ranked[i] + ranked[i + 1]) / 2
    return ranked[i] if threshold == ranked[i + 1] else threshold  # a rounded midpoint must not take the next group


def best_accuracy_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(best accuracy, its threshold), as ``BinaryClassificationEvaluator.find_best_acc_and_threshold``."""
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=np.int64)
    if scores.size == 0:
        return 0.0, -1.0
    ranked, positives, taken, ends = _sorted_groups(scores, labels)
    negatives = labels.size - int(labels.sum())
    accuracy = (positives[ends] + negatives - (taken[ends] - positives[ends])) / labels.size
    best = int(np.argmax(accuracy))  # the first of equal maxima, as the evaluator's strict ">"
    if accuracy[best] > negatives / labels.size:
        return float(accuracy[best]), float(_midpoint(ranked, int(ends[best])))
    dtype = np.result_type(scores.dtype, np.float16)  # predict every pair as non-duplicate
    return negatives / labels.size, float(np.nextafter(ranked[0], np.inf, dtype=dtype))


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, float]:
    """(best F1, its precision, its recall, its threshold), as ``find_best_f1_and_threshold``."""
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=np.int64)
    if scores.size == 0 or labels.sum() == 0:
        return 0.0, 0.0, 0.0, 0.0
    ranked, positives, taken, ends = _sorted_groups(scores, labels)
    hits = positives[ends].astype(np.float64)
    precision = hits / taken[ends]
    recall = hits / labels.sum()
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hits), where=hits > 0)
    best = int(np.argmax(f1))
    if f1[best] <= 0:
        return 0.0, 0.0, 0.0, 0.0
    return float(f1[best]), float(precision[best]), float(recall[best]), float(_midpoint(ranked, int(ends[best])))


def classification_at(scores: np.ndarray, labels: np.ndarray, accuracy_threshold: float, f1_threshold: float,
                      ) -> dict[str, float]:
    """Accuracy at ``accuracy_threshold``; F1, precision, recall at ``f1_threshold``; average precision."""
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels, dtype=np.int64)
    accuracy = float(((scores >= accuracy_threshold) == labels).mean())
    predicted = scores >= f1_threshold
    true_positives = float((predicted & (labels == 1)).sum())
    precision = true_positives / predicted.sum() if predicted.sum() else 0.0
    recall = true_positives / labels.sum() if labels.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if true_positives else 0.0
    ap = float(average_precision_score(labels, scores)) if 0 < labels.sum() < labels.size else float("nan")
    return {"accuracy": accuracy, "f1": f1, "precision": precision, "recall": recall, "average_precision": ap}


def pair_questions(pairs: Sequence[PairRecord]) -> tuple[list[str], list[str]]:
    """(question ids, texts) of the questions of ``pairs``, in first-seen order."""
    texts: dict[str, str] = {}
    for pair in pairs:
        for question in (pair.question1, pair.question2):
            texts.setdefault(question.id, question.text)
    return list(texts), list(texts.values())


def duplicate_retrieval(embeddings: np.ndarray, question_ids: Sequence[str], pairs: Sequence[PairRecord],
                        config: EvalConfig) -> tuple[list[str], dict[str, np.ndarray], int]:
    """Per-query retrieval metrics: (query ids, {metric: (n_q,) values}, corpus size); see the module docstring."""
    position = {q: i for i, q in enumerate(question_ids)}
    duplicates = np.array([(position[p.question1.id], position[p.question2.id]) for p in pairs if p.label == 1],
                          dtype=np.int64).reshape(-1, 2)
    edges = np.unique(np.concatenate([duplicates, duplicates[:, ::-1]]), axis=0)  # (nnz, 2) both directions
    queries = np.unique(edges[:, 0])  # questions with a duplicate
    query_row = np.searchsorted(queries, edges[:, 0])
    depth = min(config.depth, len(question_ids) - 1)
    if queries.size == 0 or depth < 1:
        return [], {}, len(question_ids)
    retrieved = retrieve(embeddings[queries], embeddings, depth + 1, config)  # (n_q, depth + 1)
    not_self = retrieved != queries[:, None]
    # keep the first `depth` entries that are not the query (it may be absent from the top depth + 1)
    keep_order = np.argsort(~not_self, axis=1, kind="stable")[:, :depth]
    ranked = np.take_along_axis(retrieved, keep_order, axis=1)  # (n_q, depth)
    qrels = Qrels.from_arrays(query_row, edges[:, 1], np.ones(edges.shape[0]), queries.size, len(question_ids))
    gains = qrels.gains_of(ranked)
    columns = ranking_metrics(gains, qrels.ideal(), [k for k in config.ks if k <= depth] or [depth], config.mrr_k,
                              prefix="retrieval/")
    return [question_ids[i] for i in queries], columns, len(question_ids)


def pair_scores(pairs: Sequence[PairRecord], encode: EncodeFn) -> np.ndarray:
    """(n_pairs,) cosine similarity of each pair's two questions (each distinct text encoded once)."""
    texts = [p.question1.text for p in pairs] + [p.question2.text for p in pairs]
    embeddings = encode_unique(texts, encode)  # (2 n, dim), unit norm
    return np.einsum("ij,ij->i", embeddings[: len(pairs)], embeddings[len(pairs):])


def evaluate_pairs(
    model, pairs: Sequence[PairRecord], *, threshold_pairs: Sequence[PairRecord] | None = None,
    config: EvalConfig | None = None, encode: EncodeFn | None = None,
) -> tuple[EvalResult, pd.DataFrame]:
    """Duplicate retrieval and pair classification of ``pairs`` (see the module docstring).

    ``threshold_pairs`` (usually the dev split) choose the classification thresholds; None
    means ``pairs`` themselves (the evaluator's own numbers, optimistic). Returns the result
    (per-question retrieval values in ``per_question``) and a per-pair table (score, label,
    predictions at both thresholds).
    """
    config = config or EvalConfig()
    encode = resolve_encoder(model, encode, config.encode_batch_size, config.show_progress)
    if not pairs:
        raise DataError("no pairs to evaluate")
    started = time.perf_counter()
    question_ids, texts = pair_questions(pairs)
    embeddings = encode_unique(texts, encode)
    position = {q: i for i, q in enumerate(question_ids)}
    first = embeddings[[position[p.question1.id] for p in pairs]]
    second = embeddings[[position[p.question2.id] for p in pairs]]
    scores = np.einsum("ij,ij->i", first, second)  # (n_pairs,) cosine
    labels = np.array([p.label for p in pairs], dtype=np.int64)
    encode_seconds = time.perf_counter() - started

    query_ids, columns, corpus_size = duplicate_retrieval(embeddings, question_ids, pairs, config)
    per_question = pd.DataFrame(columns, index=pd.Index(query_ids, name="question_id"))
    notes = []
    if not query_ids:
        notes.append("no question has a labelled duplicate in this split: the retrieval section is empty")

    own_split = threshold_pairs is None
    threshold_scores = scores if own_split else pair_scores(threshold_pairs, encode)
    threshold_labels = labels if own_split else np.array([p.label for p in threshold_pairs], dtype=np.int64)
    summary_extra: dict[str, float] = {}
    per_pair = pd.DataFrame({"score": scores, "label": labels}, index=pd.Index([p.id for p in pairs], name="pair_id"))
    if threshold_labels.size and 0 < threshold_labels.sum() < threshold_labels.size and 0 < labels.sum() < labels.size:
        _, accuracy_threshold = best_accuracy_threshold(threshold_scores, threshold_labels)
        _, _, _, f1_threshold = best_f1_threshold(threshold_scores, threshold_labels)
        metrics = classification_at(scores, labels, accuracy_threshold, f1_threshold)
        summary_extra = {f"classification/{k}": v for k, v in metrics.items()}
        summary_extra["classification/accuracy_threshold"] = accuracy_threshold
        summary_extra["classification/f1_threshold"] = f1_threshold
        per_pair["predicted_at_accuracy_threshold"] = (scores >= accuracy_threshold).astype(np.int64)
        per_pair["predicted_at_f1_threshold"] = (scores >= f1_threshold).astype(np.int64)
    else:
        notes.append("classification needs both labels in the evaluated and the threshold pairs "
                     f"(evaluated: {int(labels.sum())} duplicates of {labels.size}; threshold pairs: "
                     f"{int(threshold_labels.sum())} of {threshold_labels.size}): the classification section is empty")

    result = EvalResult.from_per_question(per_question, {
        "pairs": len(pairs), "pairs/positives": int(labels.sum()), "pairs/negatives": int(labels.size - labels.sum()),
        "retrieval/questions": len(query_ids), "retrieval/documents": corpus_size,
        "classification/pairs": len(pairs) if summary_extra else 0,
        "classification/threshold_pairs": int(threshold_labels.size) if summary_extra else 0,
    }, {
        "protocol": "pairs", "config": config.model_dump(),
        "thresholds_from": "evaluated pairs" if own_split else "threshold pairs",
        "texts_encoded": len(texts), "encode_seconds": encode_seconds,
        "total_seconds": time.perf_counter() - started, "notes": notes,
    })
    result.summary.update(summary_extra)
    return result, per_pair
