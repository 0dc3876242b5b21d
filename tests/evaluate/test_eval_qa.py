"""The Q&A protocol: known rankings give known metrics; skips are counted; bad input is an error."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from eval_helpers import make_records, oracle_encoder, random_encoder
from scipy.stats import kendalltau

import qaembed.evaluate.metrics
import qaembed.evaluate.qa
import qaembed.evaluate.ranking
import qaembed.evaluate.result
from qaembed.errors import DataError, QaembedError
from qaembed.evaluate import EvalConfig, EvalResult, evaluate_model, graded_gains
from qaembed.evaluate.qa import in_batch_groups
from qaembed.evaluate.ranking import encode_unique, retrieve
from qaembed.records import Answer, QARecord
from qaembed.search import top_k_search

VOTES = [[5, 3, 1], [2, 7], [4], [0, -2, 9, 1], [3, 3], [6, 1, 2], [1, 0]]


@pytest.mark.parametrize(
    "module", [qaembed.evaluate.metrics, qaembed.evaluate.qa, qaembed.evaluate.ranking, qaembed.evaluate.result]
)
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


def test_oracle_ranking_scores_perfectly_and_counts_skips():
    records = make_records(VOTES)
    result = evaluate_model(None, records, encode=oracle_encoder(len(VOTES)))
    s = result.summary
    for key in ("retrieval/mrr@10", "retrieval/ndcg@10", "retrieval/graded_ndcg@10", "retrieval/recall@10",
                "retrieval/accuracy@1", "within/accuracy@1", "within/ndcg", "within/kendall_tau",
                "within/pairwise_accuracy", "in_batch/accuracy@1", "in_batch/mrr"):
        assert s[key] == pytest.approx(1.0), key
    assert result.counts["within/questions"] == 5
    assert result.counts["within/skipped_single_answer"] == 1
    assert result.counts["within/skipped_tied"] == 1
    assert result.counts["retrieval/documents"] == sum(len(v) for v in VOTES)
    # recall@1 is 1 / number of answers; precision@5 is min(n, 5) / 5
    expected_recall_1 = np.mean([1 / len(v) for v in VOTES])
    assert s["retrieval/recall@1"] == pytest.approx(expected_recall_1)
    assert s["retrieval/precision@5"] == pytest.approx(np.mean([min(len(v), 5) / 5 for v in VOTES]))
    table = result.per_question
    assert list(table.index) == [r.id for r in records]
    assert np.isnan(table.loc["t:2", "within/kendall_tau"]) and np.isnan(table.loc["t:4", "within/ndcg"])


def test_reversed_votes_invert_within_question_metrics():
    result = evaluate_model(None, make_records(VOTES), encode=oracle_encoder(len(VOTES), reverse=True))
    s = result.summary
    assert s["within/kendall_tau"] == pytest.approx(-1.0)
    assert s["within/pairwise_accuracy"] == 0.0
    assert s["within/accuracy@1"] == 0.0
    assert s["retrieval/accuracy@1"] == pytest.approx(2 / 7)  # the single-answer and the tied question
    assert s["retrieval/mrr@10"] == pytest.approx(1.0)  # binary: own answers still come first
    assert s["within/ndcg"] < 1.0 and s["retrieval/graded_ndcg@10"] < s["retrieval/ndcg@10"]


def test_distractors_join_the_corpus_only():
    records = make_records(VOTES)
    distractors = [
        QARecord(id=f"d:{i}", title=f"D{i}", answers=[Answer(id=f"d:{i}.0", text=f"X{i}", score=1)])
        for i in range(len(VOTES))
    ]
    encode = oracle_encoder(len(VOTES))
    plain = evaluate_model(None, records, encode=encode)
    with_distractors = evaluate_model(None, records, encode=encode, distractors=distractors)
    assert with_distractors.counts["retrieval/distractor_documents"] == len(VOTES)
    assert with_distractors.summary["retrieval/mrr@10"] == pytest.approx(0.5)  # each X<i> outranks own answers
    assert with_distractors.summary["retrieval/accuracy@1"] == 0.0
    for key, value in plain.summary.items():
        if not key.startswith("retrieval/"):
            assert with_distractors.summary[key] == pytest.approx(value), key


def test_within_and_in_batch_match_a_per_question_reference():
    records = make_records(VOTES * 6)  # 42 questions -> 2 in-batch groups of 21
    encode = random_encoder()
    config = EvalConfig(in_batch_size=32, seed=3)
    result = evaluate_model(None, records, encode=encode, config=config)
    emb = {t: v / np.linalg.norm(v) for t, v in zip(*_texts_and_embeddings(records, encode))}
    for record in records:
        sims = np.array([emb[f"Q{record.title[1:]}"] @ emb[a.text] for a in record.answers])
        votes = np.array([a.score for a in record.answers])
        if len(set(votes)) > 1:
            expected = kendalltau(sims, votes).statistic
            assert result.per_question.loc[record.id, "within/kendall_tau"] == pytest.approx(expected)
    groups = in_batch_groups(len(records), 32, 3)
    for group in groups:
        members = [records[i] for i in group if i >= 0]
        tops = np.stack([emb[r.top_answer().text] for r in members])
        for row, record in enumerate(members):
            sims = tops @ emb[record.title]
            rank = 1 + int((np.delete(sims, row) >= sims[row]).sum())
            assert result.per_question.loc[record.id, "in_batch/mrr"] == pytest.approx(1 / rank)


def _texts_and_embeddings(records, encode):
    texts = sorted({r.title for r in records} | {a.text for r in records for a in r.answers})
    return texts, encode(texts)


def test_each_text_is_encoded_once_per_call():
    records = make_records(VOTES)
    records.append(records[0].model_copy(update={"id": "t:dup", "answers": [
        a.model_copy(update={"id": f"dup.{a.id}"}) for a in records[0].answers]}))  # same texts again
    calls: list[list[str]] = []
    evaluate_model(None, records, encode=oracle_encoder(len(VOTES), calls=calls))
    assert len(calls) == 2  # queries once, documents once
    for call in calls:
        assert len(call) == len(set(call))
    assert set(calls[1]) == {a.text for r in records for a in r.answers}


def test_graded_gains_formula():
    gains = graded_gains(np.array([5.0, 3.0, -1.0, 2.0, 2.0]), np.array([0, 0, 0, 1, 1]), 2)
    np.testing.assert_allclose(gains, [1.0, 5 / 7, 1 / 7, 1.0, 1.0])


def test_in_batch_groups_partition_evenly_and_are_seeded():
    groups = in_batch_groups(70, 32, seed=1)
    members = groups[groups >= 0]
    assert sorted(members.tolist()) == list(range(70))
    sizes = (groups >= 0).sum(axis=1)
    assert groups.shape[0] == 3 and sizes.max() - sizes.min() <= 1 and sizes.max() <= 32
    np.testing.assert_array_equal(groups, in_batch_groups(70, 32, seed=1))
    assert not np.array_equal(groups, in_batch_groups(70, 32, seed=2))


def test_top_k_search_torch_and_faiss_agree_with_a_full_sort():
    rng = np.random.default_rng(0)
    queries, docs = rng.normal(size=(50, 16)).astype(np.float32), rng.normal(size=(300, 16)).astype(np.float32)
    expected = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    _, by_torch = top_k_search(queries, docs, 10, query_chunk=7)
    _, by_faiss = top_k_search(queries, docs, 10, "flat")
    np.testing.assert_array_equal(by_torch.numpy(), expected)
    np.testing.assert_array_equal(by_faiss.numpy(), expected)
    _, short = top_k_search(queries, docs[:4], 10)
    assert short.shape == (50, 4)
    with pytest.raises(QaembedError, match="the corpus is empty"):
        top_k_search(queries, docs[:0], 10)
    config = EvalConfig(search_chunk_size=7, faiss_min_docs=100)  # evaluation's choice: FAISS from 100 docs
    np.testing.assert_array_equal(retrieve(queries, docs, 10, config), expected)  # FAISS
    small = docs[:50]  # torch
    np.testing.assert_array_equal(retrieve(queries, small, 10, config), np.argsort(-(queries @ small.T), axis=1)[:, :10])


def test_encode_unique_rejects_a_wrong_shape():
    with pytest.raises(QaembedError, match="expected"):
        encode_unique(["a", "b", "a"], lambda texts: np.zeros((3, 4)))


def test_no_question_with_two_different_votes_leaves_within_empty_with_a_note():
    result = evaluate_model(None, make_records([[1], [2, 2], [3]]), encode=oracle_encoder(3))
    assert not any(key.startswith("within/") for key in result.summary)
    assert result.counts["within/questions"] == 0 and result.counts["within/skipped_tied"] == 1
    assert any("within-question" in note for note in result.info["notes"])
    assert "in_batch/mrr" in result.summary


def test_questions_without_answers_are_skipped_and_counted():
    records = make_records([[1, 2], [], [3]])
    result = evaluate_model(None, records, encode=oracle_encoder(3))
    assert result.counts["retrieval/skipped_no_answers"] == 1
    assert "t:1" not in result.per_question.index


@pytest.mark.parametrize(
    ("records", "distractors", "match"),
    [
        (make_records([[], []]), [], "none of the 2 questions has an answer"),
        (make_records([[1]]) * 2, [], "question id 't:0' occurs 2 times"),
        (make_records([[1], [2]]), make_records([[1]]), "question id 't:0'"),
    ],
)
def test_bad_input_is_a_data_error(records, distractors, match):
    with pytest.raises(DataError, match=match):
        evaluate_model(None, records, encode=oracle_encoder(2), distractors=distractors)


def test_empty_query_text_names_the_option():
    with pytest.raises(DataError, match="query_mode"):
        evaluate_model(None, make_records([[1, 2]]), encode=oracle_encoder(1), config=EvalConfig(query_mode="body"))


def test_model_or_encode_exactly_one():
    with pytest.raises(QaembedError, match="exactly one"):
        evaluate_model(None, make_records([[1, 2]]))


def test_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="ks"):
        EvalConfig(ks=[0, 5])
    with pytest.raises(ValueError, match="in_batch_size"):
        EvalConfig(in_batch_size=1)
    with pytest.raises(ValueError, match="unknown_option"):
        EvalConfig(unknown_option=1)


def test_result_round_trips_through_a_folder(tmp_path):
    result = evaluate_model(None, make_records(VOTES), encode=random_encoder())
    loaded = EvalResult.load(result.save(tmp_path / "res"))
    assert loaded.summary == result.summary and loaded.counts == result.counts
    assert loaded.per_question.equals(result.per_question)
    with pytest.raises(DataError, match="summary.json"):
        EvalResult.load(tmp_path / "missing")


def test_a_save_killed_before_its_summary_leaves_a_folder_that_does_not_load(tmp_path, monkeypatch):
    """Replacing an earlier result: killed after the new table took its place, the old summary must not stay."""
    import qaembed.evaluate.result as result_module

    first = evaluate_model(None, make_records(VOTES), encode=random_encoder())
    first.save(tmp_path / "res")
    second = evaluate_model(None, make_records(VOTES)[:3], encode=random_encoder())

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(result_module, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        second.save(tmp_path / "res")
    with pytest.raises(DataError, match="summary.json"):
        EvalResult.load(tmp_path / "res")


def test_with_a_sentence_transformer_equals_its_encode_function(minilm):
    records = make_records([[3, 1], [2, 5, 0], [1]])
    config = EvalConfig(encode_batch_size=8)
    by_model = evaluate_model(minilm, records, config=config)
    by_function = evaluate_model(
        None, records, config=config, encode=lambda texts: minilm.encode(texts, batch_size=8, convert_to_numpy=True)
    )
    assert by_model.summary.keys() == by_function.summary.keys()
    for key, value in by_model.summary.items():
        assert by_function.summary[key] == pytest.approx(value, abs=1e-6), key


def test_an_answer_shared_by_two_questions_is_one_document_judged_for_both():
    # a passage that answers two questions (e.g. two questions about one README chunk): one corpus document
    records = make_records([[5, 3], [2, 7]])
    shared = Answer(id="p:1", text="A0:9:9", score=9)  # on question 0's axis: retrieved first by question 0
    records = [records[0].model_copy(update={"answers": [*records[0].answers, shared]}),
               records[1].model_copy(update={"answers": [*records[1].answers, shared.model_copy(update={"score": 1})]})]
    result = evaluate_model(None, records, encode=oracle_encoder(2))
    assert result.counts["retrieval/documents"] == 5  # 2 + 2 own answers + the shared one, once
    assert result.counts["retrieval/distractor_documents"] == 0
    table = result.per_question
    assert table.loc["t:0", "retrieval/accuracy@1"] == 1.0  # the shared passage is question 0's top answer
    # for question 1 the shared passage is relevant (its lowest-voted answer): 3 relevant documents, all found
    assert table.loc["t:1", "retrieval/recall@10"] == pytest.approx(1.0)
    assert table.loc["t:1", "retrieval/mrr@10"] == pytest.approx(1.0)


def test_a_distractor_that_is_an_evaluated_answer_keeps_its_gain():
    records = make_records(VOTES)
    plain = evaluate_model(None, records, encode=oracle_encoder(len(VOTES)))
    # another question (not evaluated) that holds question 0's answers: the same documents, still relevant to 0
    other = QARecord(id="d:0", title="D0", answers=records[0].answers)
    again = evaluate_model(None, records, encode=oracle_encoder(len(VOTES)), distractors=[other])
    assert again.counts["retrieval/documents"] == plain.counts["retrieval/documents"]
    assert again.summary == pytest.approx(plain.summary)


def test_one_id_with_two_texts_is_an_error_and_so_is_a_repeat_within_a_question():
    records = make_records([[1, 2], [3]])
    clash = records[1].model_copy(update={"answers": [Answer(id="t:0.0", text="other text", score=1)]})
    with pytest.raises(DataError, match="'t:0.0' occurs with two different texts"):
        evaluate_model(None, [records[0], clash], encode=oracle_encoder(2))
    twice = records[0].model_copy(update={"answers": [records[0].answers[0]] * 2})
    with pytest.raises(DataError, match="question 't:0': answer id 't:0.0' occurs 2 times"):
        evaluate_model(None, [twice, records[1]], encode=oracle_encoder(2))


def test_extra_documents_join_the_corpus_with_gain_zero():
    from qaembed.records import CorpusDocument

    records = make_records(VOTES)
    encode = oracle_encoder(len(VOTES))
    extra = [CorpusDocument(id=f"c:{i}", text=f"X{i}", document_id="orphan.md") for i in range(len(VOTES))]
    result = evaluate_model(None, records, encode=encode, extra_documents=extra)
    assert result.counts["retrieval/extra_documents"] == len(VOTES)
    assert result.counts["retrieval/documents"] == sum(len(v) for v in VOTES) + len(VOTES)
    assert result.summary["retrieval/mrr@10"] == pytest.approx(0.5)  # each X<i> outranks the own answers
