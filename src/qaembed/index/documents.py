"""The documents of an index: every answer of a prepared Q&A dataset, with what a result shows.

One row per answer, in FAISS id order (FAISS id ``i`` is row ``i``). Columns
(:data:`DOCUMENT_SCHEMA`):

========================  ==========  ==========================================================
column                    type        meaning
========================  ==========  ==========================================================
``id``                    string      the answer's id (unique within an index)
``text``                  string      the answer's clean text (what was encoded)
``votes``                 float64     the answer's vote score
``accepted``              bool        whether the asker accepted it
``question_id``           string      the question it answers
``question_title``        string      that question's title
``url``                   string?     link to the answer (else to its question)
``question_url``          string?     link to the question
``author``                string?     the answer's author (name, else ``user <id>``)
``author_url``            string?     the author's profile
``license``               string?     e.g. ``CC BY-SA 4.0`` (the answer's, else the question's)
``site``                  string?     e.g. ``beer.stackexchange.com``
``created``               string?     ISO 8601 creation time of the answer
``split``                 string      the dataset split the answer came from
========================  ==========  ==========================================================

The file is an Arrow IPC file (``documents.arrow``, uncompressed): a columnar format that
``pyarrow`` memory-maps without copying, so a loaded index touches only the pages of the rows
a search returns (``pandas.read_feather`` and DuckDB read it too). No pickle is involved.

Example
-------
>>> from qaembed.records import Answer, QARecord, Provenance
>>> record = QARecord(id="s:1", title="Why?", answers=[Answer(id="s:2", text="Because.", score=3)],
...                   provenance=Provenance(source="x", url="https://s/q/1", license="CC BY-SA 4.0"))
>>> [(d["id"], d["votes"], d["url"], d["license"]) for d in documents_from_records([record], "test")]
[('s:2', 3.0, 'https://s/q/1', 'CC BY-SA 4.0')]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from qaembed.errors import DataError
from qaembed.records import QARecord

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("votes", pa.float64()),
        ("accepted", pa.bool_()),
        ("question_id", pa.string()),
        ("question_title", pa.string()),
        ("url", pa.string()),
        ("question_url", pa.string()),
        ("author", pa.string()),
        ("author_url", pa.string()),
        ("license", pa.string()),
        ("site", pa.string()),
        ("created", pa.string()),
        ("split", pa.string()),
    ]
)


def documents_from_records(records: Iterable[QARecord], split: str) -> list[dict]:
    """One document dict per answer (answers with blank text are left out: nothing to encode)."""
    documents = []
    for record in records:
        question = record.provenance
        for answer in record.answers:
            if not answer.text.strip():
                continue
            own = answer.provenance
            author = own.author if own is not None else None  # never the question's author: not who wrote it
            documents.append(
                {
                    "id": answer.id,
                    "text": answer.text,
                    "votes": float(answer.score),
                    "accepted": answer.accepted,
                    "question_id": record.id,
                    "question_title": record.title,
                    "url": (own.url if own else None) or (question.url if question else None),
                    "question_url": question.url if question else None,
                    "author": (author.name or (f"user {author.id}" if author.id else None)) if author else None,
                    "author_url": author.url if author else None,
                    "license": (own.license if own else None) or (question.license if question else None),
                    "site": (own.site if own else None) or (question.site if question else None),
                    "created": own.created if own else None,
                    "split": split,
                }
            )
    return documents


def documents_table(documents: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(documents, schema=DOCUMENT_SCHEMA)


def write_documents(path: Path, table: pa.Table) -> None:
    """Write ``table`` as an uncompressed Arrow IPC file (memory-mappable, zero-copy)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, DOCUMENT_SCHEMA) as writer:
        writer.write_table(table.cast(DOCUMENT_SCHEMA), max_chunksize=65536)


def read_documents(path: Path, *, memory_map: bool = True) -> pa.Table:
    """The documents table; memory-mapped (zero-copy) unless ``memory_map`` is False.

    A missing, truncated or corrupt file, or one with other columns, raises :class:`DataError` naming it.
    """
    if not path.is_file():
        raise DataError("the index's documents file is missing", path=str(path))
    try:
        source = pa.memory_map(str(path), "r") if memory_map else pa.OSFile(str(path), "rb")
        table = pa.ipc.open_file(source).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Arrow IPC documents file ({exc}); rebuild the index", path=str(path)) from exc
    if not table.schema.equals(DOCUMENT_SCHEMA):
        raise DataError(
            f"documents file has columns {table.schema.names}, expected {DOCUMENT_SCHEMA.names}; rebuild the index",
            path=str(path),
        )
    return table
