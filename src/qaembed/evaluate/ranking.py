"""Encoding, exact top-k search and relevance lookup shared by every evaluation protocol.

* :func:`encode_unique` encodes each distinct text once and maps rows back;
* :func:`retrieve` ranks a corpus for many queries by cosine similarity with the shared
  :func:`qaembed.search.top_k_search` (exact: torch, or FAISS ``IndexFlatIP`` from
  ``faiss_min_docs`` documents);
* :class:`Qrels` holds graded relevance judgments as flat arrays and turns a (n_q, k)
  matrix of retrieved document indices into the (n_q, k) gain matrix that
  :mod:`qaembed.evaluate.metrics` consumes, without a loop over queries.

Example
-------
>>> import numpy as np
>>> qrels = Qrels.from_arrays(np.array([0, 0, 1]), np.array([2, 0, 1]), np.array([1.0, 0.5, 1.0]), 2, 3)
>>> qrels.gains_of(np.array([[0, 1], [1, 2]])).tolist()
[[0.5, 0.0], [1.0, 0.0]]
>>> qrels.ideal().tolist()
[[1.0, 0.5], [1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qaembed.errors import QaembedError
from qaembed.evaluate.config import EvalConfig
from qaembed.model import encode_batch_size
from qaembed.search import top_k_search

EncodeFn = Callable[[list[str]], np.ndarray]


def normalize_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32), so inner product = cosine similarity."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, np.float32(1e-12))


def encode_unique(texts: Sequence[str], encode: EncodeFn) -> np.ndarray:
    """(len(texts), dim) unit-norm embeddings, calling ``encode`` once on the distinct texts."""
    if len(texts) == 0:
        raise QaembedError("nothing to encode: the list of texts is empty")
    codes, uniques = pd.factorize(pd.Series(texts, dtype=object), sort=False)
    unique_embeddings = np.asarray(encode(list(uniques)))
    if unique_embeddings.ndim != 2 or unique_embeddings.shape[0] != len(uniques):
        raise QaembedError(
            f"encode returned shape {tuple(unique_embeddings.shape)} for {len(uniques)} texts; "
            "expected (number of texts, dim)"
        )
    return normalize_rows(unique_embeddings)[codes]


def sentence_transformer_encoder(model, batch_size: int | None = None, show_progress: bool = False) -> EncodeFn:
    """An :data:`EncodeFn` over ``model.encode`` (which sorts texts by length into batches); ``batch_size``
    None: the measured default of the model's device (:func:`qaembed.model.encode_batch_size`)."""
    batch_size = batch_size or encode_batch_size(model)

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=show_progress,
        )

    return encode


def resolve_encoder(model, encode: EncodeFn | None, batch_size: int | None, show_progress: bool = False) -> EncodeFn:
    """``encode`` itself, or one over ``model.encode``; exactly one of the two must be given."""
    if (model is None) == (encode is None):
        raise QaembedError("evaluate: give exactly one of model and encode")
    return encode or sentence_transformer_encoder(model, batch_size, show_progress)


def retrieve(queries: np.ndarray, docs: np.ndarray, depth: int, config: EvalConfig) -> np.ndarray:
    """(n_q, min(depth, n_d)) indices of each query's best documents (:func:`qaembed.search.top_k_search`),
    by decreasing score, equal scores by increasing document index.

    Exact: torch over chunks of ``config.search_chunk_size`` queries, or FAISS ``IndexFlatIP``
    once the corpus has ``config.faiss_min_docs`` documents.
    """
    kind = "flat" if len(docs) >= config.faiss_min_docs else "exact"
    scores, indices = top_k_search(queries, docs, depth, kind, query_chunk=config.search_chunk_size)
    return sorted_rows(scores.numpy(), indices.numpy())[1]  # torch.topk and FAISS order equal scores differently


def sorted_rows(scores: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row by decreasing score, ties by increasing index (a deterministic order)."""
    rows = np.broadcast_to(np.arange(scores.shape[0])[:, None], scores.shape)
    order = np.lexsort((index.ravel(), -scores.ravel(), rows.ravel())).reshape(scores.shape) % max(scores.shape[1], 1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(index, order, axis=1)


@dataclass(frozen=True)
class Qrels:
    """Relevance judgments with gain > 0, as flat arrays sorted by (query, document)."""

    query_index: np.ndarray  # (nnz,) int64
    doc_index: np.ndarray  # (nnz,) int64
    gain: np.ndarray  # (nnz,) float64, > 0
    num_queries: int
    num_docs: int

    @classmethod
    def from_arrays(
        cls, query_index: np.ndarray, doc_index: np.ndarray, gain: np.ndarray, num_queries: int, num_docs: int
    ) -> Qrels:
        query_index = np.asarray(query_index, dtype=np.int64)
        doc_index = np.asarray(doc_index, dtype=np.int64)
        gain = np.asarray(gain, dtype=np.float64)
        keep = gain > 0
        query_index, doc_index, gain = query_index[keep], doc_index[keep], gain[keep]
        order = np.lexsort((doc_index, query_index))
        return cls(query_index[order], doc_index[order], gain[order], num_queries, num_docs)

    def _keys(self, query_index: np.ndarray, doc_index: np.ndarray) -> np.ndarray:
        return query_index.astype(np.int64) * self.num_docs + doc_index.astype(np.int64)

    def gains_of(self, retrieved_indices: np.ndarray) -> np.ndarray:
        """(n_q, k) gain of each retrieved document for its query (0 if not judged relevant)."""
        rows = np.broadcast_to(np.arange(retrieved_indices.shape[0])[:, None], retrieved_indices.shape)
        keys = self._keys(rows, retrieved_indices)
        judged = self._keys(self.query_index, self.doc_index)
        if judged.size == 0:
            return np.zeros(retrieved_indices.shape, dtype=np.float64)
        position = np.minimum(np.searchsorted(judged, keys), judged.size - 1)
        return np.where(judged[position] == keys, self.gain[position], 0.0)

    def ideal(self) -> np.ndarray:
        """(n_q, max relevant) each query's relevant gains in decreasing order, padded with 0."""
        counts = np.bincount(self.query_index, minlength=self.num_queries)
        order = np.lexsort((-self.gain, self.query_index))
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        query = self.query_index[order]
        column = np.arange(order.size) - starts[query]
        ideal = np.zeros((self.num_queries, max(int(counts.max(initial=0)), 1)), dtype=np.float64)
        ideal[query, column] = self.gain[order]
        return ideal

    def binary(self) -> Qrels:
        """The same judgments with every gain set to 1."""
        return Qrels(self.query_index, self.doc_index, np.ones_like(self.gain), self.num_queries, self.num_docs)
