"""A persistent search index over a model's embeddings of Q&A answers (no pickle anywhere).

* :func:`build_index` encodes the answers of a prepared dataset and writes an index folder
  (``manifest.json``, ``vectors.faiss``, ``documents.arrow``; see :mod:`qaembed.index.store`);
* :func:`add_to_index` appends another dataset's answers, encoding only those;
* :func:`load_index` checks a folder and returns a :class:`SearchIndex`, whose
  :meth:`~SearchIndex.search` (thread-safe) returns ranked :class:`Hit` lists with votes, links
  and attribution. ``qaembed search`` and the HTTP server sit on these.

See ``docs/index.md`` for the formats and choices.
"""

from qaembed.index.build import add_to_index, build_index, encode_documents, parse_splits
from qaembed.index.documents import DOCUMENT_SCHEMA, documents_from_records
from qaembed.index.search import Hit, SearchIndex, SearchResult, check_model, check_queries, load_index
from qaembed.index.store import Manifest, choose_kind, model_weights_hash, read_manifest

__all__ = [
    "DOCUMENT_SCHEMA",
    "Hit",
    "Manifest",
    "SearchIndex",
    "SearchResult",
    "add_to_index",
    "build_index",
    "check_model",
    "check_queries",
    "choose_kind",
    "documents_from_records",
    "encode_documents",
    "load_index",
    "model_weights_hash",
    "parse_splits",
    "read_manifest",
]
