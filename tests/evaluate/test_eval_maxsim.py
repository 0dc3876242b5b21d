"""MaxSim evaluation: exact chunked search = brute force, the token store, ANN recall, the errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from eval_helpers import make_records
from typer.testing import CliRunner

from qaembed.errors import ConfigError
from qaembed.evaluate import EvalConfig, EvalResult, evaluate_model
from qaembed.evaluate.maxsim import (
    TokenStore,
    ann_search,
    candidate_recall,
    exact_search,
    pad_tokens,
    pair_scores,
)
from qaembed.evaluate.metrics import ranking_metrics
from qaembed.evaluate.ranking import Qrels
from qaembed.losses.scores import maxsim_scores


def _unit_tokens(rng, n_tokens: int, dim: int) -> np.ndarray:
    """Random unit tokens, rounded to float16 first so the store holds them exactly."""
    tokens = rng.normal(size=(n_tokens, dim))
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    return tokens.astype(np.float16).astype(np.float32)


def random_token_encoder(dim: int = 8, max_tokens: int = 7, calls: list | None = None):
    """A fixed random (L, dim) token matrix per distinct text, 1..max_tokens tokens (stable across calls)."""
    table: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)

    def encode(texts: list[str]) -> list[np.ndarray]:
        if calls is not None:
            calls.append(list(texts))
        for text in texts:
            if text not in table:
                table[text] = _unit_tokens(rng, int(rng.integers(1, max_tokens + 1)), dim)
        return [table[text] for text in texts]

    return encode


def _brute_force(query_arrays, doc_arrays) -> np.ndarray:
    """(n_q, n_d) MaxSim by a plain loop over pairs (mean over query tokens)."""
    scores = np.empty((len(query_arrays), len(doc_arrays)))
    for i, q in enumerate(query_arrays):
        for j, d in enumerate(doc_arrays):
            scores[i, j] = (q.astype(np.float64) @ d.astype(np.float64).T).max(axis=1).mean()
    return scores


def _store(tmp_path, arrays, key="k"):
    return TokenStore.build(tmp_path / "store", [f"t{i}" for i in range(len(arrays))],
                            lambda texts: [arrays[int(t[1:])] for t in texts], key=key)


def test_exact_search_equals_brute_force_and_ignores_chunking(tmp_path):
    rng = np.random.default_rng(1)
    docs = [_unit_tokens(rng, int(n), 6) for n in rng.integers(1, 9, size=57)]
    queries = [_unit_tokens(rng, int(n), 6) for n in rng.integers(1, 5, size=9)]
    store = _store(tmp_path, docs)
    q_tok, q_mask = pad_tokens(queries)
    brute = _brute_force(queries, docs)
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :10]
    results = [exact_search(q_tok, q_mask, store, np.arange(57), 10, chunk_docs=c, block_elements=b)
               for c, b in ((1024, 1 << 25), (5, 1), (13, 200))]
    for scores, index in results:
        np.testing.assert_array_equal(index, expected)
        np.testing.assert_allclose(scores, np.take_along_axis(brute, expected, axis=1), atol=1e-5)
    # pair scores: the same numbers for arbitrary pairs
    qi, di = rng.integers(0, 9, size=40), rng.integers(0, 57, size=40)
    np.testing.assert_allclose(pair_scores(q_tok, q_mask, qi, store, di, block_elements=50), brute[qi, di], atol=1e-5)


def test_exact_search_with_duplicate_documents_ranks_corpus_rows(tmp_path):
    rng = np.random.default_rng(2)
    docs = [_unit_tokens(rng, 3, 4) for _ in range(4)]
    store = _store(tmp_path, docs)
    q_tok, q_mask = pad_tokens([docs[2]])
    doc_rows = np.array([0, 2, 1, 2, 3])  # corpus documents 1 and 3 share text 2
    _, index = exact_search(q_tok, q_mask, store, doc_rows, 3, chunk_docs=2)
    assert index[0, :2].tolist() == [1, 3]  # both copies, ties by document index


def test_store_written_once_and_reused(tmp_path):
    calls: list = []
    encode = random_token_encoder(calls=calls)
    texts = ["a", "bb", "ccc"]
    first = TokenStore.build(tmp_path / "s", texts, encode, key="model-1")
    assert first.encoded and len(calls) == 1
    stamp = (tmp_path / "s" / "tokens.f16").stat().st_mtime_ns
    again = TokenStore.build(tmp_path / "s", texts, encode, key="model-1")
    assert not again.encoded and len(calls) == 1
    assert (tmp_path / "s" / "tokens.f16").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(np.asarray(again.tokens), np.asarray(first.tokens))
    assert again.tokens.dtype == np.float16 and isinstance(again.tokens, np.memmap)
    other = TokenStore.build(tmp_path / "s", texts, encode, key="model-2")  # another model: rebuilt
    assert other.encoded and len(calls) == 2


def test_evaluate_model_maxsim_equals_metrics_of_brute_force_ranking(tmp_path):
    records = make_records([[5, 1, 0], [2, 2], [3, -1], [1], [4, 0, 2]])
    distractors = make_records([[1, 2], [0]], prefix="d")
    calls: list = []
    encode = random_token_encoder(dim=8, calls=calls)
    config = EvalConfig(scorer="maxsim", ks=[1, 3], mrr_k=5, in_batch_size=2, maxsim_chunk_docs=3,
                        maxsim_store_key="fixed-random")
    result = evaluate_model(None, records, config=config, token_encode=encode, distractors=distractors,
                            token_store=tmp_path / "tokens")
    assert len(calls) == 2  # queries once, corpus once
    queries = [f"Q{i}" for i in range(5)]
    docs = [a.text for r in records for a in r.answers] + [a.text for r in distractors for a in r.answers]
    brute = _brute_force(encode(queries), encode(docs))
    del calls[2:]  # the two calls just above
    ranked = np.argsort(-brute, axis=1, kind="stable")[:, :5]
    question_index = np.repeat(np.arange(5), [len(r.answers) for r in records])
    from qaembed.evaluate.qa import graded_gains

    votes = np.array([a.score for r in records for a in r.answers], dtype=float)
    qrels = Qrels.from_arrays(question_index, np.arange(len(votes)), graded_gains(votes, question_index, 5), 5,
                              len(docs))
    binary = (qrels.gains_of(ranked) > 0).astype(float)
    expected = ranking_metrics(binary, qrels.binary().ideal(), [1, 3], 5, prefix="retrieval/")
    for key, values in expected.items():
        np.testing.assert_allclose(result.per_question[key].to_numpy(), values, err_msg=key)
    # within-question: the MaxSim of each question with its own answers decides the order
    own = brute[question_index, np.arange(len(votes))]
    assert result.summary["within/accuracy@1"] == pytest.approx(np.mean(
        [votes[question_index == q][np.argmax(own[question_index == q])] == votes[question_index == q].max()
         for q in (0, 2, 4)]))
    assert result.info["maxsim"]["store_reused"] is False
    # chunking and block size do not change any metric; the second run reuses the store
    other = evaluate_model(None, records, config=config.model_copy(update={"maxsim_chunk_docs": 1000,
                                                                           "maxsim_block_mb": 1}),
                           token_encode=encode, distractors=distractors, token_store=tmp_path / "tokens")
    assert other.summary == result.summary
    assert other.info["maxsim"]["store_reused"] is True and len(calls) == 3  # only the queries again


def test_ann_recall_is_the_share_of_exact_top_docs_among_candidates(tmp_path):
    exact = np.array([[3, 1, 2, -1], [0, 5, 6, 7]])
    candidates = [np.array([1, 3, 9]), np.array([5, 7])]
    np.testing.assert_allclose(candidate_recall(exact, candidates), [2 / 3, 2 / 4])


def test_ann_search_reranks_exactly_and_full_candidates_give_recall_one(tmp_path):
    rng = np.random.default_rng(3)
    docs = [_unit_tokens(rng, int(n), 8) for n in rng.integers(1, 6, size=120)]
    queries = [_unit_tokens(rng, 4, 8) for _ in range(6)]
    store = _store(tmp_path, docs)
    q_tok, q_mask = pad_tokens(queries)
    exact_scores, exact_index = exact_search(q_tok, q_mask, store, np.arange(120), 100)
    # every token retrieved, every list probed: every document is a candidate, so ANN = exact
    full = ann_search(q_tok, q_mask, store, np.arange(120), 100, ann_tokens=10_000, nlist=4, nprobe=4)
    np.testing.assert_array_equal(full.index, exact_index)
    np.testing.assert_allclose(full.scores, exact_scores, atol=1e-5)
    assert candidate_recall(exact_index, full.candidates).tolist() == [1.0] * 6
    # few tokens: fewer candidates, recall below 1, and scores of found documents still exact
    few = ann_search(q_tok, q_mask, store, np.arange(120), 100, ann_tokens=2, nlist=4, nprobe=1)
    recall = candidate_recall(exact_index, few.candidates)
    assert recall.mean() < 1.0 and few.info["mean_candidates"] < 120
    brute = _brute_force(queries, docs)
    found = few.index >= 0
    np.testing.assert_allclose(few.scores[found], brute[np.nonzero(found)[0], few.index[found]], atol=1e-5)


def test_evaluate_model_ann_reports_recall(tmp_path):
    records = make_records([[5, 1, 0], [2, 2], [3, -1], [1], [4, 0, 2]])
    config = EvalConfig(scorer="maxsim", maxsim_search="ann", maxsim_ann_tokens=1000, maxsim_ann_nlist=2,
                        maxsim_ann_nprobe=2)
    result = evaluate_model(None, records, config=config, token_encode=random_token_encoder())
    exact = evaluate_model(None, records, config=config.model_copy(update={"maxsim_search": "exact"}),
                           token_encode=random_token_encoder())
    assert result.info["maxsim"]["ann"]["recall@100"] == 1.0
    assert result.summary == exact.summary
    assert any("recall@100" in note for note in result.info["notes"])


def test_exact_path_refuses_a_corpus_over_the_limit():
    records = make_records([[5, 1, 0], [2, 2]])
    config = EvalConfig(scorer="maxsim", maxsim_exact_max_docs=3)
    with pytest.raises(ConfigError, match="--maxsim-search ann"):
        evaluate_model(None, records, config=config, token_encode=random_token_encoder())


def test_query_length_keeps_the_first_query_tokens():
    q, mask = pad_tokens([np.ones((5, 2)), np.ones((2, 2))], max_tokens=3)
    assert mask.tolist() == [[True, True, True], [True, True, False]]


def test_maxsim_matches_training_scorer_on_the_same_tokens(tmp_path):
    """The eval's MaxSim is the training scorer's (mean over query tokens)."""
    rng = np.random.default_rng(4)
    docs = [_unit_tokens(rng, int(n), 5) for n in (3, 1, 4)]
    store = _store(tmp_path, docs)
    q_tok, q_mask = pad_tokens([_unit_tokens(rng, 2, 5)])
    d_tok, d_mask = store.padded(np.arange(3))
    expected = maxsim_scores(q_tok, q_mask, d_tok, d_mask, reduce="mean")[0]
    scores, index = exact_search(q_tok, q_mask, store, np.arange(3), 3)
    np.testing.assert_allclose(scores[0], expected[torch.from_numpy(index[0])].numpy(), atol=1e-6)


# ---------------------------------------------------------------- the CLI with a real (tiny) model


def _error(result) -> str:
    """The message of the user error a CLI call raised (``main`` prints it and exits 2)."""
    from qaembed.errors import QaembedError

    assert isinstance(result.exception, QaembedError), result.output
    return str(result.exception)


def _dataset(tmp_path):
    from qaembed.data.dataset import write_jsonl_records

    write_jsonl_records(tmp_path / "test.jsonl", make_records([[5, 1], [2, 0], [3]], prefix="s"))
    write_jsonl_records(tmp_path / "train.jsonl", make_records([[1, 2], [3]], prefix="train"))
    return tmp_path


def _maxsim_model_dir(tiny_model_dir, tmp_path):
    import torch

    from qaembed.late_interaction import add_token_projection, save_model
    from qaembed.model import load_encoder

    torch.manual_seed(0)
    model = add_token_projection(load_encoder(str(tiny_model_dir), device="cpu"), 16, option="test")
    path = tmp_path / "maxsim_model"
    save_model(model, path, "maxsim", query_length=8)
    return path


def test_cli_maxsim_on_a_pylate_layout_model_and_store_reuse(tiny_model_dir, tmp_path):
    from qaembed.cli import app

    data, model = _dataset(tmp_path / "data"), _maxsim_model_dir(tiny_model_dir, tmp_path)
    out = tmp_path / "out"
    args = ["eval", "--model", str(model), "--data", str(data), "--scorer", "maxsim", "--distractors", "train",
            "--json", "--out", str(out), "--maxsim-chunk-docs", "2"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    payload = json.loads(first.stdout)
    assert payload["maxsim"]["token_dim"] == 16 and payload["maxsim"]["store_reused"] is False
    saved = EvalResult.load(out)
    assert saved.info["config"]["scorer"] == "maxsim" and saved.info["config"]["query_length"] == 8
    assert (out / "maxsim_tokens" / "tokens.f16").is_file()
    second = CliRunner().invoke(app, args + ["--overwrite", "--maxsim-chunk-docs", "1000"])
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout)
    assert again["maxsim"]["store_reused"] is True and again["summary"] == payload["summary"]
    # cosine on the same MaxSim-only model is still refused, naming --scorer maxsim
    refused = CliRunner().invoke(app, ["eval", "--model", str(model), "--data", str(data)])
    assert "--scorer maxsim" in _error(refused)


def test_cli_maxsim_errors(tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    from qaembed.cli import app

    data = _dataset(tmp_path / "data")
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    static = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=4)], device="cpu")
    static.save(str(tmp_path / "static"))
    run = subprocess.run([sys.executable, "-m", "qaembed", "eval", "--model", str(tmp_path / "static"), "--data",
                          str(data), "--scorer", "maxsim"], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "StaticEmbedding" in run.stderr and "--scorer cosine" in run.stderr
    runner = CliRunner()
    assert "allowed: cosine, maxsim" in _error(runner.invoke(app, ["eval", "--data", str(data), "--scorer", "colbert"]))
    assert "--scorer maxsim only" in _error(runner.invoke(app, ["eval", "--data", str(data), "--query-length", "8"]))
    message = _error(runner.invoke(app, ["eval", "--data", str(data), "--scorer", "maxsim", "--maxsim-chunk-docs", "0"]))
    assert "--maxsim-chunk-docs" in message
    message = _error(runner.invoke(app, ["eval", "--data", str(data), "--scorer", "maxsim", "--distractors", "train",
                                         "--maxsim-exact-max-docs", "2"]))
    assert "--maxsim-search ann" in message and "8 documents" in message


def test_block_maxsim_equals_the_training_scorer_with_padding():
    from qaembed.evaluate.maxsim import block_maxsim

    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 5, 6), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(7, 9, 6), dim=-1)
    q_mask, d_mask = torch.rand(4, 5) > 0.3, torch.rand(7, 9) > 0.4
    q_mask[:, 0] = True
    d_mask[3] = False  # a document without real tokens scores 0
    d[d_mask.logical_not()] = 5.0  # padded values must not matter
    expected = maxsim_scores(q, q_mask, d, d_mask, reduce="mean")
    torch.testing.assert_close(block_maxsim(q, q_mask, d, d_mask), expected, atol=1e-6, rtol=0)
    assert block_maxsim(q, q_mask, d, d_mask)[:, 3].tolist() == [0.0] * 4


def test_a_damaged_store_is_rebuilt(tmp_path):
    calls: list = []
    encode = random_token_encoder(calls=calls)
    TokenStore.build(tmp_path / "s", ["a", "b"], encode, key="k")
    (tmp_path / "s" / "tokens.f16").write_bytes(b"\0" * 6)  # truncated
    assert TokenStore.open(tmp_path / "s", "k") is None
    (tmp_path / "s" / "tokens.f16").unlink()
    rebuilt = TokenStore.build(tmp_path / "s", ["a", "b"], encode, key="k")
    assert rebuilt.encoded and len(calls) == 2 and rebuilt.count == 2
