"""Retrieval evaluation on a BEIR dataset folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

Documents are encoded as ``(title + " " + text).strip()``, queries as their text, ranked by
cosine similarity; gains are the qrels' relevance values (linear, as pytrec_eval / MTEB).
With all-MiniLM-L6-v2 (max_seq_length 256) this reproduces MTEB's published SciFact test
NDCG@10 (0.64508).

Bad input raises :class:`~qaembed.errors.DataError` naming the file and line: malformed
JSON, a missing ``_id``/``text``, duplicate ids, qrels rows naming an unknown query or
document, qrels rows without exactly three tab-separated fields, non-integer scores, a
(query, document) pair judged twice, an empty corpus or a split without judged queries. Queries
of the split whose judgments are all 0 have no relevant document; they are skipped and
counted (``retrieval/skipped_no_relevant``).

Example
-------
>>> data = read_beir("../shared/data/beir/scifact")  # doctest: +SKIP
>>> evaluate_beir(model, data).summary["retrieval/ndcg@10"]  # doctest: +SKIP
0.6450...
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qaembed.data.dataset import iter_jsonl_lines
from qaembed.errors import DataError
from qaembed.evaluate.config import EvalConfig
from qaembed.evaluate.metrics import ranking_metrics
from qaembed.evaluate.ranking import (
    EncodeFn,
    Qrels,
    encode_unique,
    resolve_encoder,
    retrieve,
)
from qaembed.evaluate.result import EvalResult
from qaembed.records import utf8_problem

QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass
class BeirData:
    """A BEIR split: documents, the split's judged queries and their relevance judgments."""

    path: Path
    split: str
    doc_ids: list[str]
    doc_texts: list[str]  # (title + " " + text).strip()
    query_ids: list[str]  # queries with at least one relevant document, in qrels order
    query_texts: list[str]
    qrels: Qrels  # over (query_ids, doc_ids), gains = qrels scores > 0
    skipped_no_relevant: int  # judged queries whose judgments are all 0


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise DataError("no such file", path=str(path))
    rows = []
    for line_no, line in iter_jsonl_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path=str(path), line=line_no) from exc
        for name in required:
            if not isinstance(row.get(name), str):
                raise DataError("missing or not a string", path=str(path), line=line_no, field=name)
        if row.get("title") is not None and not isinstance(row["title"], str):  # optional; null or "" when absent
            raise DataError("not a string", path=str(path), line=line_no, field="title")
        for name in ("_id", "title", "text"):  # a JSON "\ud800" escape would fail later, in the tokenizer
            problem = utf8_problem(row[name]) if isinstance(row.get(name), str) else None
            if problem:
                raise DataError(problem, path=str(path), line=line_no, field=name)
        row["_line"] = line_no
        rows.append(row)
    return rows


def _index_ids(rows: list[dict], path: Path) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, row in enumerate(rows):
        if row["_id"] in index:
            raise DataError(f"duplicate _id {row['_id']!r}", path=str(path), line=row["_line"], field="_id")
        index[row["_id"]] = position
    return index


def _read_qrels(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError("no such file (unknown split?)", path=str(path))
    lines = iter_jsonl_lines(path)  # non-blank lines with their exact numbers; not UTF-8: file and line
    header = next(lines, None)
    if header is None or tuple(header[1].rstrip("\r\n").split("\t")) != QRELS_HEADER:
        got = header[1].rstrip("\r\n").split("\t") if header else []
        raise DataError(f"header must be {' '.join(QRELS_HEADER)} (tab-separated), got {got}",
                        path=str(path), line=header[0] if header else 1)
    rows, numbers = [], []
    for line_no, line in lines:
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != len(QRELS_HEADER):
            raise DataError(f"{len(fields)} tab-separated fields, expected {len(QRELS_HEADER)} "
                            f"({' '.join(QRELS_HEADER)})", path=str(path), line=line_no)
        rows.append(fields)
        numbers.append(line_no)
    table = pd.DataFrame(rows, columns=list(QRELS_HEADER), dtype=str)
    table["line"] = np.array(numbers, dtype=np.int64)
    scores = pd.to_numeric(table["score"], errors="coerce").astype(np.float64)
    bad = ~np.isfinite(scores) | (scores != scores.round())
    if bad.any():
        row = table[bad].iloc[0]
        raise DataError(f"score {row['score']!r} is not an integer", path=str(path), line=int(row["line"]), field="score")
    too_large = scores.abs() > np.iinfo(np.int32).max
    if too_large.any():
        row = table[too_large].iloc[0]
        raise DataError(f"score {row['score']!r} is out of range", path=str(path), line=int(row["line"]), field="score")
    table["score"] = scores.astype(np.int64)
    duplicate = table.duplicated(["query-id", "corpus-id"])
    if duplicate.any():  # the document would count twice among the query's relevant ones (R, IDCG)
        row = table[duplicate].iloc[0]
        first = table[(table["query-id"] == row["query-id"]) & (table["corpus-id"] == row["corpus-id"])].iloc[0]
        raise DataError(f"query-id {row['query-id']!r} and corpus-id {row['corpus-id']!r} are judged twice "
                        f"(first on line {int(first['line'])})", path=str(path), line=int(row["line"]), field="corpus-id")
    return table


def read_beir(path: str | Path, split: str = "test") -> BeirData:
    """Read a BEIR folder and the judged queries of ``split``; bad input raises DataError (file, line)."""
    path = Path(path)
    corpus_path, queries_path, qrels_path = path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / f"{split}.tsv"
    corpus = _read_jsonl(corpus_path, ("_id", "text"))
    if not corpus:
        raise DataError("the corpus is empty", path=str(corpus_path))
    doc_index = _index_ids(corpus, corpus_path)
    queries = _read_jsonl(queries_path, ("_id", "text"))
    query_rows = _index_ids(queries, queries_path)
    table = _read_qrels(qrels_path)
    if table.empty:
        raise DataError("no judgments in this split", path=str(qrels_path))

    for column, index, what in (("query-id", query_rows, queries_path), ("corpus-id", doc_index, corpus_path)):
        known = table[column].isin(list(index))
        if not known.all():
            row = table[~known].iloc[0]
            raise DataError(f"{column} {row[column]!r} is not in {what.name} ({int((~known).sum())} such rows)",
                            path=str(qrels_path), line=int(row["line"]), field=column)

    judged = pd.unique(table["query-id"])
    relevant = pd.unique(table.loc[table["score"] > 0, "query-id"])
    query_position = {query_id: i for i, query_id in enumerate(relevant)}
    positive = table[table["score"] > 0]
    qrels = Qrels.from_arrays(
        positive["query-id"].map(query_position).to_numpy(),
        positive["corpus-id"].map(doc_index).to_numpy(),
        positive["score"].to_numpy(dtype=np.float64),
        len(relevant),
        len(corpus),
    )
    return BeirData(
        path=path,
        split=split,
        doc_ids=[row["_id"] for row in corpus],
        doc_texts=[f"{row.get('title') or ''} {row['text']}".strip() for row in corpus],
        query_ids=[str(q) for q in relevant],
        query_texts=[queries[query_rows[q]]["text"] for q in relevant],
        qrels=qrels,
        skipped_no_relevant=len(judged) - len(relevant),
    )


def evaluate_beir(model, data: BeirData, *, config: EvalConfig | None = None, encode: EncodeFn | None = None,
                  token_encode=None, token_store: str | Path | None = None) -> EvalResult:
    """Full-corpus retrieval metrics (``retrieval/*``) for the judged queries of a BEIR split.

    ``config.scorer == "maxsim"``: ranked by MaxSim over token embeddings, as in
    :func:`qaembed.evaluate.evaluate_model` (``token_encode``, ``token_store``).
    """
    config = config or EvalConfig()
    maxsim = config.scorer == "maxsim"
    if not maxsim:
        encode = resolve_encoder(model, encode, config.encode_batch_size, config.show_progress)
    if not data.query_ids:
        raise DataError(f"no query of split {data.split!r} has a relevant document", path=str(data.path))
    started = time.perf_counter()
    extra_info: dict = {}
    with contextlib.ExitStack() as stack:
        if maxsim:
            from qaembed.evaluate.maxsim import build_ranker

            folder = token_store if token_store is not None else stack.enter_context(tempfile.TemporaryDirectory())
            ranker = build_ranker(model, data.query_texts, data.doc_texts, config, token_encode=token_encode,
                                  store_dir=folder, reusable=token_store is not None)
            encode_seconds = time.perf_counter() - started
            retrieved_index = ranker.search(config.depth)
            extra_info["maxsim"] = ranker.info
        else:
            query_emb = encode_unique(data.query_texts, encode)
            doc_emb = encode_unique(data.doc_texts, encode)
            encode_seconds = time.perf_counter() - started
            retrieved_index = retrieve(query_emb, doc_emb, config.depth, config)
    retrieved = np.where(retrieved_index >= 0, data.qrels.gains_of(np.maximum(retrieved_index, 0)), 0.0)
    columns = ranking_metrics(retrieved, data.qrels.ideal(), config.ks, config.mrr_k, prefix="retrieval/")
    per_question = pd.DataFrame(columns, index=pd.Index(data.query_ids, name="question_id"))
    counts = {
        "questions": len(data.query_ids) + data.skipped_no_relevant,
        "retrieval/questions": len(data.query_ids),
        "retrieval/skipped_no_relevant": data.skipped_no_relevant,
        "retrieval/documents": len(data.doc_ids),
    }
    info = {
        "protocol": "beir",
        "data": str(data.path),
        "split": data.split,
        "config": config.model_dump(),
        "texts_encoded": len(data.query_texts) + len(data.doc_texts),
        "encode_seconds": encode_seconds,
        "total_seconds": time.perf_counter() - started,
        "notes": [],
        **extra_info,
    }
    return EvalResult.from_per_question(per_question, counts, info)
