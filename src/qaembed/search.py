"""Top-k inner-product search of normalized embeddings, for evaluation and mining: exact (torch) or FAISS.

:func:`top_k_search` is the one entry point (evaluation ranks a corpus with it, ``qaembed mine``
retrieves candidate negatives with it). Which index (``kind``; mining's ``--index``):

* ``exact``: blocked ``queries @ corpus.T`` and ``torch.topk``, on the mining device
  (GPU when ``--device cuda``). The corpus is processed in blocks of ``corpus_block``
  rows and the queries in chunks of ``query_chunk`` rows, so the largest temporary is a
  (query_chunk, corpus_block) score matrix; a running top-k is merged across blocks.
  Exact, and on a GPU fast up to millions of answers.
* ``ivf``: FAISS ``IndexIVFFlat`` (inner product), ``nlist = 4·sqrt(n)`` coarse cells
  (at most ``n / 39`` so every cell has training points), trained on at most
  ``256·nlist`` sampled vectors, searched with ``nprobe`` cells. Approximate; builds in
  seconds even for millions of vectors, keeps the vectors uncompressed (no quantization
  error in the returned scores), and moves to the GPU when ``faiss-gpu`` sees one.
* ``hnsw``: FAISS ``IndexHNSWFlat`` (``M = 32``, ``efConstruction = 200``,
  ``efSearch = max(ef_search, k)``). Approximate with higher recall per query than IVF
  on CPU, but slower to build and CPU only.
* ``flat``: FAISS ``IndexFlatIP``: exact like ``exact``, by FAISS's BLAS kernels and heap
  (evaluation uses it for corpora of at least ``faiss_min_docs`` documents).
* ``auto`` (mining's ``--index``, resolved by :func:`qaembed.mining.config.choose_index`): ``exact`` up to :data:`~qaembed.mining.config.AUTO_EXACT_MAX_CORPUS` answers (CPU) or
  :data:`~qaembed.mining.config.AUTO_EXACT_MAX_CORPUS_GPU` (CUDA), ``ivf`` above. Exact search costs
  ``n_queries · n_corpus · dim`` multiply-adds; past a few hundred thousand answers on
  CPU that dominates mining, while IVF's cost grows with ``nprobe / nlist`` of it.
  IVF rather than HNSW because it builds quickly, is deterministic for a fixed seed,
  and runs on a GPU.

All functions return ``(scores, indices)``: float32 and int64 tensors of shape
``(n_queries, k)``, best first, with index ``-1`` and score ``-inf`` where an
approximate index found fewer than ``k`` neighbours.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from qaembed.errors import QaembedError

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200

def exact_top_k(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    *,
    device: str,
    query_chunk: int = 1024,
    corpus_block: int = 65536,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` by inner product, blocked over both queries and corpus."""
    n_q, n_c = len(queries), len(corpus)
    if not 0 < k <= n_c:
        raise ValueError(f"k={k} must be in 1..{n_c} (corpus size)")
    best_scores = torch.full((n_q, k), -math.inf, device=device)
    best_indices = torch.full((n_q, k), -1, dtype=torch.long, device=device)
    single_block = n_c <= corpus_block
    for c_start in range(0, n_c, corpus_block):
        block = torch.from_numpy(np.array(corpus[c_start : c_start + corpus_block])).to(device)  # (n_b, dim)
        k_block = min(k, len(block))
        for q_start in range(0, n_q, query_chunk):
            q_chunk = torch.from_numpy(np.array(queries[q_start : q_start + query_chunk])).to(device)
            block_scores, block_indices = torch.topk(q_chunk @ block.T, k=k_block, dim=1)  # (n_chunk, k_block)
            rows = slice(q_start, q_start + len(q_chunk))
            if single_block:
                best_scores[rows], best_indices[rows] = block_scores, block_indices
                continue
            merged_scores = torch.cat([best_scores[rows], block_scores], dim=1)
            merged_indices = torch.cat([best_indices[rows], block_indices + c_start], dim=1)
            top_scores, top_pos = torch.topk(merged_scores, k=k, dim=1)
            best_scores[rows], best_indices[rows] = top_scores, merged_indices.gather(1, top_pos)
    return best_scores, best_indices


def faiss_top_k(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    kind: Literal["ivf", "hnsw"],
    *,
    device: str,
    nprobe: int = 32,
    ef_search: int = 256,
    seed: int = 0,
    query_chunk: int = 16384,
    add_chunk: int = 65536,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate top-``k`` by inner product with a FAISS IVF-flat or HNSW-flat index."""
    import faiss

    n_c, dim = corpus.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = max(ef_search, k)
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(n_c)), n_c // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n_c, size=min(n_c, 256 * nlist), replace=False))
        index.train(np.ascontiguousarray(corpus[sample], dtype=np.float32))
        index.nprobe = min(nprobe, nlist)
        if device.startswith("cuda") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
            index = faiss.index_cpu_to_all_gpus(index)
    else:
        raise ValueError(f"unknown FAISS index kind {kind!r}; allowed: ivf, hnsw")
    for start in range(0, n_c, add_chunk):
        index.add(np.ascontiguousarray(corpus[start : start + add_chunk], dtype=np.float32))
    scores_parts, indices_parts = [], []
    for start in range(0, len(queries), query_chunk):
        scores, indices = index.search(np.ascontiguousarray(queries[start : start + query_chunk], dtype=np.float32), k)
        scores_parts.append(scores)
        indices_parts.append(indices)
    scores = torch.from_numpy(np.concatenate(scores_parts))
    indices = torch.from_numpy(np.concatenate(indices_parts)).long()
    scores[indices < 0] = -math.inf
    return scores.to(device), indices.to(device)


def top_k_search(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    kind: Literal["exact", "flat", "ivf", "hnsw"] = "exact",
    *,
    device: str = "cpu",
    query_chunk: int = 1024,
    nprobe: int = 32,
    ef_search: int = 256,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``min(k, n_corpus)`` documents of every query: ((n_q, k') scores, (n_q, k') indices), best first.

    ``kind`` is already resolved (``qaembed.mining.config.choose_index`` resolves mining's ``auto``); an empty corpus is a
    :class:`QaembedError`.

    >>> corpus = np.eye(3, dtype=np.float32)
    >>> scores, indices = top_k_search(np.array([[0.0, 0.6, 0.8]], dtype=np.float32), corpus, 5)
    >>> indices.tolist(), [round(s, 2) for s in scores[0].tolist()]
    ([[2, 1, 0]], [0.8, 0.6, 0.0])
    """
    if len(corpus) == 0:
        raise QaembedError("the corpus is empty: no documents to rank")
    k = min(k, len(corpus))
    if kind == "exact":
        return exact_top_k(queries, corpus, k, device=device, query_chunk=query_chunk)
    if kind == "flat":
        import faiss

        index = faiss.IndexFlatIP(corpus.shape[1])
        index.add(np.ascontiguousarray(corpus, dtype=np.float32))
        scores, indices = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return torch.from_numpy(scores).to(device), torch.from_numpy(indices).long().to(device)
    return faiss_top_k(queries, corpus, k, kind, device=device, nprobe=nprobe, ef_search=ef_search, seed=seed)
