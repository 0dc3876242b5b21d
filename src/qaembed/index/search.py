"""Load an index folder and search it: :func:`load_index` returns a :class:`SearchIndex`.

Loading checks before it trusts: the manifest (format, version, fields), every file it lists
(present, recorded size; recorded hash unless ``verify=False``), that FAISS holds ``count``
vectors of ``dimension`` and the documents file ``count`` rows, and that the query model has the
weights the documents were encoded with (:func:`check_model`). Each failure raises a
:class:`~qaembed.errors.QaembedError` that names the file or option.

What is memory-mapped: the FAISS vectors (``IO_FLAG_MMAP_IFC``: flat and HNSW-flat storage stay
in the file's pages) and the documents (an Arrow IPC file opened with ``pyarrow.memory_map``,
zero-copy; a search reads only the rows it returns).

Thread safety: a :class:`SearchIndex` is immutable after loading and :meth:`SearchIndex.search`
may be called from many threads at once. Query encoding holds a lock (a tokenizer is not safe to
share between threads, and one forward pass already uses every core); the FAISS search and the
document lookup run without it. FAISS search settings are passed per call, never set on the index.

Example (``tiny`` is any sentence-transformers model folder)::

    index = load_index("indexes/minilm")
    [result] = index.search(["how long does beer keep?"], k=3)
    for hit in result.hits:
        print(hit.rank, round(hit.score, 3), hit.votes, hit.question_title, hit.url, hit.author, hit.license)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qaembed.errors import ConfigError, DataError
from qaembed.index.documents import read_documents
from qaembed.index.store import (
    DOCUMENTS_FILE,
    VECTORS_FILE,
    Manifest,
    check_files,
    model_weights_hash,
    read_faiss,
    read_manifest,
)
from qaembed.records import utf8_problem


@dataclass(frozen=True)
class Hit:
    """One retrieved answer: its rank (1 = best), cosine similarity and the document's metadata."""

    rank: int
    score: float
    id: str
    text: str
    votes: float
    accepted: bool
    question_id: str
    question_title: str
    url: str | None
    question_url: str | None
    author: str | None
    author_url: str | None
    license: str | None
    site: str | None
    created: str | None
    split: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    """The ranked hits of one query (at most ``k``; fewer when the index holds fewer documents)."""

    query: str
    hits: list[Hit]

    def to_dict(self) -> dict:
        return {"query": self.query, "hits": [hit.to_dict() for hit in self.hits]}


def check_model(manifest: Manifest, model, *, allow_mismatch: bool = False, index_dir: Path | str = "") -> None:
    """Raise :class:`ConfigError` unless ``model`` has the weights the index was encoded with.

    ``allow_mismatch`` accepts other weights of the same dimension (e.g. to compare models on purpose).
    """
    dimension = model.get_embedding_dimension()
    if dimension is not None and dimension != manifest.dimension:
        raise ConfigError(
            f"index {index_dir}: the model gives {dimension}-dimensional embeddings, the index holds "
            f"{manifest.dimension}-dimensional ones (built with {manifest.model.reference})"
        )
    found = model_weights_hash(model)
    if found != manifest.model.weights_hash and not allow_mismatch:
        raise ConfigError(
            f"index {index_dir}: the model's weights (hash {found}) differ from those the index was built with "
            f"({manifest.model.reference}, hash {manifest.model.weights_hash}); use that model, rebuild the index, "
            "or pass --allow-model-mismatch to use this one anyway"
        )


class SearchIndex:
    """A loaded index: the manifest, the FAISS index, the documents table and the query model."""

    def __init__(self, path: Path, manifest: Manifest, vectors, documents, model, *, memory_mapped: dict[str, bool]):
        self.path = path
        self.manifest = manifest
        self.vectors = vectors  # the FAISS index
        self.documents = documents  # pyarrow.Table, row i = FAISS id i
        self.model = model
        self.memory_mapped = memory_mapped  # {"vectors": bool, "documents": bool}
        self._encode_lock = threading.Lock()

    def __len__(self) -> int:
        return self.manifest.count

    def info(self) -> dict:
        """A summary for logs and health checks."""
        return {
            "path": str(self.path), "documents": self.manifest.count, "dimension": self.manifest.dimension,
            "kind": self.manifest.index.kind, "model": self.manifest.model.reference,
            "weights_hash": self.manifest.model.weights_hash, "memory_mapped": self.memory_mapped,
        }

    def check_k(self, k: int) -> int:
        """``k`` clamped to the number of documents; ``k < 1`` raises :class:`ConfigError`."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        return min(int(k), self.manifest.count)

    def embed(self, queries: Sequence[str]) -> np.ndarray:
        """(len(queries), dim) unit-norm query embeddings (``model.encode_query``: a query prompt applies)."""
        queries = check_queries(queries)
        with self._encode_lock:
            embeddings = self.model.encode_query(
                list(queries), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        return np.ascontiguousarray(embeddings, dtype=np.float32)  # (n_q, dim)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) unit-norm document embeddings (``model.encode_document``, as the index was built)."""
        texts = check_queries(texts, what="text")
        with self._encode_lock:
            embeddings = self.model.encode_document(
                list(texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        return np.ascontiguousarray(embeddings, dtype=np.float32)  # (n, dim)

    def search_vectors(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """((n_q, k') scores, (n_q, k') FAISS ids), best first, k' = min(k, count); id -1 where fewer were found."""
        import faiss

        k = self.check_k(k)
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.manifest.dimension:
            raise ConfigError(f"query embeddings of shape {embeddings.shape}; expected (n, {self.manifest.dimension})")
        settings = self.manifest.index
        params = None
        if settings.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(settings.ef_search, k))
        elif settings.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=min(settings.nprobe, settings.nlist or settings.nprobe))
        scores, ids = self.vectors.search(embeddings, k, params=params)
        return scores, ids.astype(np.int64)

    def search(self, queries: Sequence[str], k: int = 10) -> list[SearchResult]:
        """The top ``k`` answers for each query (``k`` above the document count is clamped to it)."""
        k = self.check_k(k)
        return self.results(queries, self.embed(queries), k)

    def results(self, queries: Sequence[str], embeddings: np.ndarray, k: int) -> list[SearchResult]:
        """The top ``k`` answers for already-encoded ``queries`` (``embeddings`` from :meth:`embed`).

        The server encodes the queries of many requests in one batch, then calls this per request.
        """
        scores, ids = self.search_vectors(embeddings, k)
        found = ids[ids >= 0]
        rows = self.documents.take(found).to_pylist() if found.size else []
        results, position = [], 0
        for query, query_scores, query_ids in zip(queries, scores, ids):
            hits = []
            for score, doc_id in zip(query_scores, query_ids):
                if doc_id < 0:
                    continue
                hits.append(Hit(rank=len(hits) + 1, score=float(score), **rows[position]))
                position += 1
            results.append(SearchResult(query=query, hits=hits))
        return results


def check_queries(queries: Sequence[str], *, what: str = "query") -> Sequence[str]:
    """``queries`` unless it is a bare string, empty, or holds a blank, non-string or non-UTF-8 query (:class:`DataError`)."""
    plural = "queries" if what == "query" else f"{what}s"
    if isinstance(queries, str):
        raise ConfigError(f"{plural} must be a list of strings, not one string")
    if len(queries) == 0:
        raise DataError(f"no {plural} to search" if what == "query" else f"no {plural} to encode")
    for number, query in enumerate(queries, start=1):
        if not isinstance(query, str) or not query.strip():
            raise DataError(f"{what} {number} is empty" if isinstance(query, str) else f"{what} {number} is not text: {query!r}")
        problem = utf8_problem(query)
        if problem:
            raise DataError(f"{what} {number} is {problem}")
    return queries


def load_index(
    path: str | Path,
    model=None,
    *,
    device: str | None = None,
    allow_model_mismatch: bool = False,
    memory_map: bool = True,
    verify: bool = True,
) -> SearchIndex:
    """Load and check the index folder ``path`` (see the module docstring).

    ``model``: None loads the manifest's model; a string loads that model (built-in name, folder,
    hub id); a loaded ``SentenceTransformer`` is used as is. Its weights must match the
    manifest's unless ``allow_model_mismatch``. ``verify=False`` skips the file hashes (sizes are
    still checked), for very large indexes where reading every byte at start-up costs too much.
    """
    from qaembed.model import ModelNotFoundError, load_encoder

    path = Path(path)
    manifest = read_manifest(path)
    check_files(path, manifest, verify_hashes=verify)
    vectors, vectors_mapped = read_faiss(path / VECTORS_FILE, memory_map=memory_map)
    if vectors.d != manifest.dimension or vectors.ntotal != manifest.count:
        raise DataError(
            f"holds {vectors.ntotal} vectors of dimension {vectors.d}; manifest.json says {manifest.count} of "
            f"dimension {manifest.dimension}; rebuild the index",
            path=str(path / VECTORS_FILE),
        )
    documents = read_documents(path / DOCUMENTS_FILE, memory_map=memory_map)
    if documents.num_rows != manifest.count:
        raise DataError(
            f"holds {documents.num_rows} documents; manifest.json says {manifest.count}; rebuild the index",
            path=str(path / DOCUMENTS_FILE),
        )
    if model is None or isinstance(model, str):
        name = model or manifest.model.reference
        try:
            model = load_encoder(name, device=device)
        except ModelNotFoundError as exc:
            hint = "" if model else " (the model the index was built with; give another with --model)"
            raise ConfigError(f"index {path}: cannot load model {name!r}{hint}: {exc}") from exc
    check_model(manifest, model, allow_mismatch=allow_model_mismatch, index_dir=path)
    mapped = {"vectors": vectors_mapped, "documents": memory_map}
    return SearchIndex(path, manifest, vectors, documents, model, memory_mapped=mapped)
