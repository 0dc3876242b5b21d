"""Top-k search: blocked exact search and the FAISS indexes against a plain full top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qaembed.mining.config import AUTO_EXACT_MAX_CORPUS, choose_index
from qaembed.search import exact_top_k, faiss_top_k


def _unit(rng, n, dim=16):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture()
def vectors():
    rng = np.random.default_rng(0)
    return _unit(rng, 50), _unit(rng, 700)


def _reference(queries, corpus, k):
    return torch.topk(torch.from_numpy(queries) @ torch.from_numpy(corpus).T, k=k, dim=1)


def test_blocked_exact_search_equals_full_topk(vectors):
    queries, corpus = vectors
    expected = _reference(queries, corpus, 20)
    scores, indices = exact_top_k(queries, corpus, 20, device="cpu", query_chunk=7, corpus_block=64)
    assert torch.equal(indices, expected.indices)
    torch.testing.assert_close(scores, expected.values)


def test_exact_search_rejects_k_beyond_the_corpus(vectors):
    queries, corpus = vectors
    with pytest.raises(ValueError, match="corpus size"):
        exact_top_k(queries, corpus[:5], 6, device="cpu")


def test_ivf_probing_every_cell_is_exact(vectors):
    queries, corpus = vectors
    expected = _reference(queries, corpus, 10)
    scores, indices = faiss_top_k(queries, corpus, 10, "ivf", device="cpu", nprobe=10_000)
    assert torch.equal(indices, expected.indices)
    torch.testing.assert_close(scores, expected.values, atol=1e-5, rtol=0)


def test_hnsw_finds_nearly_all_true_neighbours(vectors):
    queries, corpus = vectors
    expected = _reference(queries, corpus, 10).indices
    _, indices = faiss_top_k(queries, corpus, 10, "hnsw", device="cpu")
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(indices, expected)])
    assert recall >= 0.95


def test_auto_picks_exact_for_small_corpora_and_ivf_for_large():
    assert choose_index("auto", 1000, "cpu") == "exact"
    assert choose_index("auto", AUTO_EXACT_MAX_CORPUS + 1, "cpu") == "ivf"
    assert choose_index("auto", AUTO_EXACT_MAX_CORPUS + 1, "cuda") == "exact"
    assert choose_index("hnsw", 10, "cpu") == "hnsw"
