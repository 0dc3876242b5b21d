"""BEIR folders: reading, metrics on a known ranking, bad input, and the SciFact reference (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qaembed.errors import DataError
from qaembed.evaluate import EvalConfig, evaluate_beir, read_beir

# Embeddings chosen so that query q1 ranks d2, d1, d3 and q2 ranks d3 first.
VECTORS = {
    "first query": [1.0, 0.0, 0.0],
    "second query": [0.0, 0.0, 1.0],
    "Alpha one": [0.8, 0.6, 0.0],
    "Beta two": [0.9, 0.1, 0.0],
    "three": [0.0, 0.3, 1.0],
}


def _encode(texts):
    return np.array([VECTORS[t] for t in texts])


def write_beir(root: Path, corpus=None, queries=None, qrels="q1\td1\t1\nq1\td3\t2\nq2\td3\t1\n") -> Path:
    corpus = corpus if corpus is not None else [
        {"_id": "d1", "title": "Alpha", "text": "one"},
        {"_id": "d2", "title": "Beta", "text": "two"},
        {"_id": "d3", "title": "", "text": "three"},
    ]
    queries = queries if queries is not None else [
        {"_id": "q1", "text": "first query"}, {"_id": "q2", "text": "second query"}, {"_id": "q9", "text": "unused"}
    ]
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return root


def test_known_ranking_gives_known_metrics(tmp_path):
    data = read_beir(write_beir(tmp_path))
    assert data.doc_texts == ["Alpha one", "Beta two", "three"] and data.query_ids == ["q1", "q2"]
    result = evaluate_beir(None, data, encode=_encode)
    q1 = result.per_question.loc["q1"]
    # q1 ranks d2 (0), d1 (gain 1), d3 (gain 2): DCG = 1/log2(3) + 2/log2(4); IDCG = 2 + 1/log2(3)
    assert q1["retrieval/ndcg@10"] == pytest.approx((1 / np.log2(3) + 1) / (2 + 1 / np.log2(3)))
    assert q1["retrieval/mrr@10"] == pytest.approx(0.5)
    assert q1["retrieval/map@10"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result.per_question.loc["q2", "retrieval/ndcg@1"] == 1.0
    assert result.counts == {"questions": 2, "retrieval/questions": 2, "retrieval/skipped_no_relevant": 0,
                             "retrieval/documents": 3}


def test_queries_whose_judgments_are_all_zero_are_skipped_and_counted(tmp_path):
    data = read_beir(write_beir(tmp_path, qrels="q1\td1\t1\nq2\td3\t0\n"))
    result = evaluate_beir(None, data, encode=_encode)
    assert list(result.per_question.index) == ["q1"]
    assert result.counts["retrieval/skipped_no_relevant"] == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"qrels": "q1\td1\t1\nq7\td1\t1\n"}, r"test.tsv:3, field 'query-id': query-id 'q7' is not in queries.jsonl"),
        ({"qrels": "q1\td1\t1\nq2\td9\t1\n"}, r"test.tsv:3, field 'corpus-id': corpus-id 'd9' is not in corpus.jsonl"),
        ({"qrels": "q1\td1\thigh\n"}, r"test.tsv:2, field 'score': score 'high' is not an integer"),
        ({"qrels": ""}, "no judgments in this split"),
        ({"corpus": []}, "corpus.jsonl: the corpus is empty"),
        ({"corpus": [{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}]}, r"corpus.jsonl:2, field '_id': duplicate"),
        ({"queries": [{"_id": "q1"}]}, r"queries.jsonl:1, field 'text'"),
        ({"queries": [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "caf\udce9"}]},
         r"queries.jsonl:2, field 'text': not valid UTF-8 text: character 4 is a lone surrogate \(U\+DCE9\)"),
        ({"corpus": [{"_id": "d1", "title": "\ud800", "text": "one"}]},
         r"corpus.jsonl:1, field 'title': not valid UTF-8 text"),
        # a title that is not a string would be encoded as its Python repr ("['Alpha'] one")
        ({"corpus": [{"_id": "d1", "title": ["Alpha"], "text": "one"}]}, r"corpus.jsonl:1, field 'title': not a string"),
        ({"corpus": [{"_id": "d1", "title": 7, "text": "one"}]}, r"corpus.jsonl:1, field 'title': not a string"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, kwargs, match):
    root = write_beir(tmp_path, **kwargs)
    with pytest.raises(DataError, match=match):
        read_beir(root)


def test_invalid_json_and_unknown_split(tmp_path):
    root = write_beir(tmp_path)
    with (root / "corpus.jsonl").open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(DataError, match=r"corpus.jsonl:4: invalid JSON"):
        read_beir(root)
    with pytest.raises(DataError, match="dev.tsv: no such file"):
        read_beir(write_beir(tmp_path / "ok"), split="dev")


@pytest.mark.slow
def test_scifact_reproduces_the_published_mteb_ndcg(shared_data, minilm):
    """MTEB's all-MiniLM-L6-v2 SciFact test NDCG@10 is 0.64508 (see ../shared/data/README.md)."""
    minilm.max_seq_length = 256
    result = evaluate_beir(minilm, read_beir(shared_data / "beir" / "scifact", "test"))
    assert result.summary["retrieval/ndcg@10"] == pytest.approx(0.64508, abs=5e-4)
    assert result.counts["retrieval/questions"] == 300 and result.counts["retrieval/documents"] == 5183


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path, name):
    root = write_beir(tmp_path)
    with (root / name).open("ab") as fh:
        fh.write(b'{"_id": "x", "text": "caf\xe9"}\n')
    with pytest.raises(DataError) as info:
        read_beir(root)
    assert str(info.value) == f"{root / name}:4: not UTF-8 (invalid continuation byte at byte 25)"


@pytest.mark.parametrize(
    ("qrels", "match"),
    [
        # a blank line does not shift the line numbers of the rows after it
        ("q1\td1\t1\n\nq2\td9\t1\n", r"test.tsv:4, field 'corpus-id': corpus-id 'd9' is not in corpus.jsonl"),
        ("q1\td1\t1\nq2\td3\t1\textra\n", r"test.tsv:3: 4 tab-separated fields, expected 3 \(query-id corpus-id score\)"),
        ("q1\td1\tinf\n", r"test.tsv:2, field 'score': score 'inf' is not an integer"),
        ("q1\td1\t99999999999999999999999\n", r"test.tsv:2, field 'score': score '99999999999999999999999' is out of range"),
        # the same judgment twice would count the document twice among the relevant ones (R, IDCG)
        ("q1\td1\t1\nq2\td3\t1\nq1\td1\t2\n",
         r"test.tsv:4, field 'corpus-id': query-id 'q1' and corpus-id 'd1' are judged twice \(first on line 2\)"),
    ],
)
def test_malformed_qrels_rows_name_file_and_line(tmp_path, qrels, match):
    with pytest.raises(DataError, match=match):
        read_beir(write_beir(tmp_path, qrels=qrels))


def test_qrels_that_are_not_utf8_name_file_and_line(tmp_path):
    root = write_beir(tmp_path)
    with (root / "qrels" / "test.tsv").open("ab") as fh:
        fh.write(b"q2\td\xe9\t1\n")
    with pytest.raises(DataError, match=r"test.tsv:5: not UTF-8"):
        read_beir(root)


@pytest.mark.parametrize("faiss_min_docs", [1, 1_000_000])  # FAISS IndexFlatIP, and torch top-k
@pytest.mark.parametrize("relevant", ["d1", "d2"])
def test_documents_with_equal_scores_rank_in_corpus_order(tmp_path, faiss_min_docs, relevant):
    """Two documents with the same text tie exactly: the earlier one in corpus.jsonl ranks first (as ranx does
    with a run listed in corpus order), whichever search runs."""
    corpus = [{"_id": "d1", "title": "Beta", "text": "two"}, {"_id": "d2", "title": "Beta", "text": "two"},
              {"_id": "d3", "title": "", "text": "three"}]
    data = read_beir(write_beir(tmp_path, corpus=corpus, qrels=f"q1\t{relevant}\t1\n"))
    result = evaluate_beir(None, data, config=EvalConfig(faiss_min_docs=faiss_min_docs), encode=_encode)
    assert result.per_question.loc["q1", "retrieval/mrr@10"] == (1.0 if relevant == "d1" else 0.5)
