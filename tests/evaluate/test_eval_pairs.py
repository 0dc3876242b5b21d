"""Pair evaluation agrees with sentence-transformers' BinaryClassificationEvaluator and with ranx."""

from __future__ import annotations

import numpy as np
import pytest

from qaembed.data.pairs import PairQuestion, PairRecord
from qaembed.evaluate.config import EvalConfig
from qaembed.evaluate.pairs import (
    best_accuracy_threshold,
    best_f1_threshold,
    classification_at,
    duplicate_retrieval,
    evaluate_pairs,
)


def _st_evaluator():
    from sentence_transformers.sentence_transformer.evaluation.binary_classification import (
        BinaryClassificationEvaluator,
    )

    return BinaryClassificationEvaluator


def _random_pairs(seed: int, n_questions: int = 40, n_pairs: int = 120, dim: int = 8):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n_questions, dim)).astype(np.float32)
    pairs, seen = [], set()
    while len(pairs) < n_pairs:
        a, b = rng.choice(n_questions, 2, replace=False)
        if (a, b) in seen or (b, a) in seen:
            continue
        seen.add((a, b))
        # duplicates more likely for similar vectors, so the scores carry signal
        similarity = vectors[a] @ vectors[b] / np.linalg.norm(vectors[a]) / np.linalg.norm(vectors[b])
        label = int(rng.random() < 0.5 + 0.4 * similarity)
        pairs.append(PairRecord(id=f"p:{len(pairs)}", label=label, source="test",
                                question1=PairQuestion(id=f"q:{a}", text=f"Q{a}"),
                                question2=PairQuestion(id=f"q:{b}", text=f"Q{b}")))
    table = {f"Q{i}": vectors[i] for i in range(n_questions)}

    def encode(texts):
        return np.stack([table[t] for t in texts])

    return pairs, vectors, encode


@pytest.mark.parametrize("seed", range(6))
def test_thresholds_match_binary_classification_evaluator(seed):
    evaluator = _st_evaluator()
    rng = np.random.default_rng(seed)
    n = 200
    scores = rng.normal(size=n).astype(np.float32)
    if seed % 2:  # many exact ties
        scores = np.round(scores, 1).astype(np.float32)
    labels = (rng.random(n) < 0.4).astype(np.int64)
    acc, acc_threshold = best_accuracy_threshold(scores, labels)
    st_acc, st_acc_threshold = evaluator.find_best_acc_and_threshold(scores, labels, True)
    assert acc == pytest.approx(st_acc, abs=1e-12) and acc_threshold == pytest.approx(st_acc_threshold, abs=1e-7)
    f1 = best_f1_threshold(scores, labels)
    st_f1 = evaluator.find_best_f1_and_threshold(scores, labels, True)
    np.testing.assert_allclose(f1, st_f1, atol=1e-7)


def test_threshold_edge_cases_match():
    evaluator = _st_evaluator()
    for scores, labels in [(np.array([0.5, 0.5, 0.5], dtype=np.float32), np.array([0, 1, 0])),
                           (np.array([0.1, 0.9], dtype=np.float32), np.array([1, 0])),
                           (np.array([0.3, 0.2], dtype=np.float32), np.array([0, 0]))]:
        assert best_accuracy_threshold(scores, labels) == pytest.approx(
            evaluator.find_best_acc_and_threshold(scores, labels, True))
        assert best_f1_threshold(scores, labels) == pytest.approx(
            evaluator.find_best_f1_and_threshold(scores, labels, True))


def test_classification_equals_evaluator_on_the_same_embeddings(minilm):
    """Thresholds chosen on the evaluated pairs: every number equals BinaryClassificationEvaluator's (1e-6)."""
    evaluator_class = _st_evaluator()
    texts1 = ["How do I learn Python?", "Why is the sky blue?", "What is love?", "How tall is Everest?",
              "Is coffee bad for you?", "How do I cook rice?", "What is a qubit?", "Best laptop for coding?"]
    texts2 = ["What is the best way to learn Python?", "Why does the sky look blue?", "What is hate?",
              "What is the height of Mount Everest?", "Is tea healthy?", "How to make rice?",
              "Define a qubit.", "Which laptop should a programmer buy?"]
    labels = [1, 1, 0, 1, 0, 1, 1, 0]
    pairs = [PairRecord(id=f"p:{i}", label=y, source="t", question1=PairQuestion(id=f"a:{i}", text=a),
                        question2=PairQuestion(id=f"b:{i}", text=b))
             for i, (a, b, y) in enumerate(zip(texts1, texts2, labels))]
    result, per_pair = evaluate_pairs(minilm, pairs)
    evaluator = evaluator_class(texts1, texts2, labels, similarity_fn_names=["cosine"], name="t")
    expected = evaluator.compute_metrics(minilm)["cosine"]
    for ours, theirs in [("accuracy", "accuracy"), ("f1", "f1"), ("precision", "precision"), ("recall", "recall"),
                         ("average_precision", "ap"), ("accuracy_threshold", "accuracy_threshold"),
                         ("f1_threshold", "f1_threshold")]:
        assert result.summary[f"classification/{ours}"] == pytest.approx(expected[theirs], abs=1e-6), ours
    assert list(per_pair.columns) == ["score", "label", "predicted_at_accuracy_threshold", "predicted_at_f1_threshold"]


def test_dev_thresholds_are_applied_to_test():
    pairs, _, encode = _random_pairs(0)
    dev, test = pairs[:60], pairs[60:]
    result, per_pair = evaluate_pairs(None, test, threshold_pairs=dev, encode=encode)
    dev_result, _ = evaluate_pairs(None, dev, encode=encode)
    assert result.summary["classification/accuracy_threshold"] == dev_result.summary["classification/accuracy_threshold"]
    threshold = result.summary["classification/f1_threshold"]
    expected = classification_at(per_pair["score"].to_numpy(), per_pair["label"].to_numpy(),
                                 result.summary["classification/accuracy_threshold"], threshold)
    assert result.summary["classification/f1"] == pytest.approx(expected["f1"])
    assert result.counts["classification/threshold_pairs"] == 60


def test_retrieval_agrees_with_ranx():
    from ranx import Qrels, Run, evaluate

    pairs, vectors, encode = _random_pairs(1)
    ids = [f"q:{i}" for i in range(len(vectors))]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    config = EvalConfig(ks=[1, 5, 10])
    query_ids, columns, _ = duplicate_retrieval(unit, ids, pairs, config)
    relevant: dict[str, dict[str, int]] = {}
    for p in pairs:
        if p.label:
            relevant.setdefault(p.question1.id, {})[p.question2.id] = 1
            relevant.setdefault(p.question2.id, {})[p.question1.id] = 1
    scores = unit @ unit.T
    run = {q: {d: float(scores[int(q[2:]), int(d[2:])]) for d in ids if d != q} for q in query_ids}
    qrels = {q: relevant[q] for q in query_ids}
    for metric in ("mrr@10", "ndcg@10", "recall@5", "recall@10", "map@10", "precision@5"):
        values = evaluate(Qrels.from_dict(qrels), Run.from_dict(run), metric, return_mean=False)
        theirs = dict(zip(sorted(qrels), values))  # ranx orders queries by id
        ours = dict(zip(query_ids, columns[f"retrieval/{metric}"]))
        np.testing.assert_allclose([ours[q] for q in sorted(qrels)], [theirs[q] for q in sorted(qrels)], atol=1e-9,
                                   err_msg=metric)
    # the query itself is never retrieved: with its own text as the only exact match, MRR would be 1 otherwise
    assert columns["retrieval/mrr@10"].mean() < 1


def test_retrieval_excludes_self_and_scores_exact_duplicates():
    # q0 and q1 are identical vectors and duplicates; q2 is orthogonal
    unit = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    pairs = [PairRecord(id="p", label=1, source="t", question1=PairQuestion(id="q0", text="a"),
                        question2=PairQuestion(id="q1", text="b"))]
    query_ids, columns, size = duplicate_retrieval(unit, ["q0", "q1", "q2"], pairs, EvalConfig(ks=[1]))
    assert query_ids == ["q0", "q1"] and size == 3
    assert columns["retrieval/mrr@10"].tolist() == [1.0, 1.0]


def test_eval_cli_on_pair_data(tmp_path, tiny_model_dir):
    """``qaembed eval --data PAIRDIR`` detects pair data by its manifest and saves per-question and per-pair results."""
    import json
    from pathlib import Path

    import pandas as pd
    from typer.testing import CliRunner

    from qaembed.cli import app
    from qaembed.data.pairs import prepare_pairs

    fixture = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "pairs" / "qqp.tsv"
    data = tmp_path / "pairs"
    prepare_pairs([fixture], data, "pairs-qqp", split=(0.4, 0.3, 0.3), split_by="all-pairs", seed=2, progress=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--model", str(tiny_model_dir), "--data", str(data), "--split", "train",
                                      "--threshold-split", "train", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert "retrieval/mrr@10" in payload["summary"] and payload["counts"]["pairs"] >= 1
    assert (out / "per_question.parquet").is_file()
    per_pair = pd.read_parquet(out / "per_pair.parquet")
    assert set(per_pair.columns) >= {"score", "label"}
    bad = CliRunner().invoke(app, ["eval", "--model", str(tiny_model_dir), "--data", str(data), "--distractors", "train"])
    assert bad.exit_code != 0
