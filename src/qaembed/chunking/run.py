"""``qaembed data chunk``: inputs → chunks and positives → an output folder (written atomically).

Output folder::

    OUT/chunks.jsonl    one chunk per line: id, document_id, index, start, end (character span), text, tokens, sentences
    OUT/qa.jsonl        one Q&A pair per line with its positive: {"kind": "chunk"|"answer", "chunk_id", "text", "similarity"}
    OUT/stats.json      documents, chunks, sentences, positives vs fallbacks, skipped records by reason
    OUT/chunking.json   the settings, the model, the inputs and the library versions
    OUT/sentences.sqlite  the sentence cache (token counts, embeddings): kept, so a rerun encodes only new sentences
    OUT/beir/           passage retrieval in BEIR layout, split by document (``qaembed eval --data beir:OUT/beir``):
                        corpus.jsonl (every chunk of every document, plus the answer texts that are fallback
                        targets), queries.jsonl (the questions), qrels/{train,dev,test}.tsv (question → its target, 1)
    OUT/records/        the same passages as a prepared Q&A dataset (:class:`RecordWriter`): {train,dev,test}.jsonl,
                        corpus.jsonl, stats.json, manifest.json, for ``qaembed train|suite|mine|eval --data OUT/records``

The split is by document, so no document's chunks serve questions in two splits: a prepared
dataset keeps its own (question) split, which is by document because each question's document is
its own top answer; other sources assign each document to train / dev / test by a seeded hash of
its id (``--split``, ``--seed``), independent of input order.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from qaembed.chunking.cache import CACHE_FILE, SentenceCache
from qaembed.chunking.chunk import ChunkingConfig, chunk_documents, resolve_config, select_positives
from qaembed.chunking.sources import (
    Document,
    QAPair,
    check_documents_named,
    document_folder_ids,
    iter_document_folder,
    read_prepared_answers,
    read_projects_json,
    read_qa_file,
)
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.dataset import CORPUS_FILE, iter_split, split_path
from qaembed.errors import ConfigError, DataError
from qaembed.jsonfiles import write_json
from qaembed.outputs import check_output_dir, folder_content, refuse_link, writing_alone
from qaembed.records import Answer, CorpusDocument, QARecord

OUTPUT_FILES = ("chunks.jsonl", "qa.jsonl", "stats.json", "chunking.json", "beir", "records")
GROUP_CHARS = 4_000_000  # documents are chunked in groups of about this many characters: bounded memory
SPLITS = ("train", "dev", "test")


def document_split(document_id: str, seed: int, fractions: tuple[float, float, float]) -> str:
    """train / dev / test for a document: a seeded hash of its id against the cumulative fractions.

    >>> [document_split(d, 13, (0.8, 0.1, 0.1)) for d in ("a.md", "b.md", "c.md", "d.md", "e.md", "f.md")]
    ['train', 'train', 'train', 'train', 'dev', 'test']
    """
    digest = hashlib.sha256(f"{seed}:{document_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for split, fraction in zip(SPLITS, fractions):
        cumulative += fraction
        if position < cumulative:
            return split
    return SPLITS[-1]


def parse_fractions(value: str) -> tuple[float, float, float]:
    parts = value.split(",")
    try:
        fractions = tuple(float(part) for part in parts)
    except ValueError:
        fractions = ()
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"--split {value!r}: give train,dev,test fractions that sum to 1, e.g. 0.8,0.1,0.1")
    return fractions  # type: ignore[return-value]


class BeirWriter:
    """Writes the BEIR layout group by group (see the module docstring); ``targets`` as in :func:`run_chunking`.

    ``best`` judges each question's positive (its chosen chunk, or its answer text); ``document``
    judges every chunk of its document relevant, a target no model chose.
    """

    def __init__(self, folder: Path, targets: str = "best"):
        (folder / "qrels").mkdir(parents=True)
        self.targets = targets
        self.queries_per_split = {split: 0 for split in SPLITS}
        self._corpus = (folder / "corpus.jsonl").open("w", encoding="utf-8")
        self._queries = (folder / "queries.jsonl").open("w", encoding="utf-8")
        self._qrels = {split: (folder / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") for split in SPLITS}
        for handle in self._qrels.values():
            handle.write("query-id\tcorpus-id\tscore\n")

    def add(self, chunks, rows: list[dict]) -> None:
        """The chunks of some documents and the rows (with ``split``) of the questions about them."""
        chunks_of: dict[str, list[str]] = {}
        for chunk in chunks:
            chunks_of.setdefault(chunk.document_id, []).append(chunk.id)
            self._corpus.write(json.dumps({"_id": chunk.id, "title": "", "text": chunk.text, "metadata": {
                "document_id": chunk.document_id, "start": chunk.start, "end": chunk.end}}, ensure_ascii=False) + "\n")
        for row in rows:
            if row["positive"]["kind"] == "answer":  # the fallback target: the answer text itself
                self._corpus.write(json.dumps({"_id": f"answer:{row['id']}", "title": "", "text": row["positive"]["text"],
                                               "metadata": {"document_id": row["document_id"], "fallback": True}},
                                              ensure_ascii=False) + "\n")
            self._queries.write(json.dumps({"_id": row["id"], "text": row["question"]}, ensure_ascii=False) + "\n")
            if self.targets == "document":
                relevant = chunks_of[row["document_id"]]
            else:
                relevant = [row["positive"]["chunk_id"] or f"answer:{row['id']}"]
            for target in relevant:
                self._qrels[row["split"]].write(f"{row['id']}\t{target}\t1\n")
            self.queries_per_split[row["split"]] += 1

    def close(self) -> None:
        for handle in (self._corpus, self._queries, *self._qrels.values()):
            handle.close()


class RecordWriter:
    """Writes the passages as a prepared Q&A dataset (``OUT/records``), group by group.

    Each question is a :class:`~qaembed.records.QARecord` whose answers are the passages of its
    document (and of its ``related`` documents), so every strategy, loss, scorer, ``qaembed mine``
    and the suite use passage data as they use answers. Scores grade them: a passage inherits its
    document's score (a prepared dataset: the votes of the answer it was cut from; other inputs: 1);
    with ``targets="best"`` the positive (the chosen chunk, or the fallback answer text, id
    ``answer:<pair id>``) scores one more, so it is the question's top answer. With ``"document"``
    no model's choice enters the labels. Passages of documents that no question refers to go to
    ``corpus.jsonl`` (gain-0 distractors in evaluation), so retrieval ranks against every chunk.
    """

    def __init__(self, folder: Path, targets: str):
        folder.mkdir(parents=True)
        self.folder, self.targets = folder, targets
        self.records = dict.fromkeys(SPLITS, 0)
        self.corpus_documents = 0
        self._splits = {split: split_path(folder, split).open("w", encoding="utf-8") for split in SPLITS}
        self._corpus = (folder / CORPUS_FILE).open("w", encoding="utf-8")

    def add(self, chunks, rows: list[dict]) -> None:
        """The chunks of one group of documents and the rows of the questions about them (related documents of
        a question are in its document's group: ``Document.group_key``)."""
        referenced = {row["document_id"] for row in rows} | {d for row in rows for d, _ in row.get("related", [])}
        chunks_of: dict[str, list] = {}
        for chunk in chunks:
            chunks_of.setdefault(chunk.document_id, []).append(chunk)
            if chunk.document_id not in referenced:
                self._corpus.write(CorpusDocument(id=chunk.id, text=chunk.text, document_id=chunk.document_id,
                                                  start=chunk.start, end=chunk.end).model_dump_json() + "\n")
                self.corpus_documents += 1
        for row in rows:
            score, positive = float(row.get("score", 1.0)), row["positive"]
            best = self.targets == "best"
            answers = []
            if best and positive["kind"] == "answer":
                answers.append(Answer(id=f"answer:{row['id']}", text=positive["text"], score=score + 1))
            for chunk in chunks_of.get(row["document_id"], []):
                chosen = best and chunk.id == positive["chunk_id"]
                answers.append(Answer(id=chunk.id, text=chunk.text, score=score + 1 if chosen else score))
            for document_id, related_score in row.get("related", []):
                answers.extend(Answer(id=chunk.id, text=chunk.text, score=related_score)
                               for chunk in chunks_of.get(document_id, []))  # a skipped document has no chunks
            record = QARecord(id=row["id"], title=row["question"], answers=answers)
            self._splits[row["split"]].write(record.model_dump_json(exclude_defaults=True) + "\n")
            self.records[row["split"]] += 1

    def close(self, settings: dict) -> None:
        """Close the files and write ``stats.json`` and ``manifest.json`` (last) of the dataset."""
        from datetime import datetime, timezone

        from qaembed.data.stats import STATS_FILE, compute_stats
        from qaembed.provenance import hash_files

        for handle in (self._corpus, *self._splits.values()):
            handle.close()
        write_json(self.folder / STATS_FILE, {
            "splits": {split: compute_stats(iter_split(self.folder, split)) for split in SPLITS},
            "corpus_documents": self.corpus_documents, "skipped_bad": {},
        })
        write_json(self.folder / "manifest.json", {
            "kind": "qa", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "split": {**settings["split"], "note": "by document: a document's passages serve one split"},
            "sources": [{"name": f"passages of {Path(settings['source']).name}", "path": settings["source"],
                         "kind": "chunks"}],
            "chunking": {k: settings[k] for k in ("targets", "model", "config", "min_chars")},
            "files": {split: {"records": self.records[split], "sha256_16": hash_files([split_path(self.folder, split)])}
                      for split in SPLITS},
            "corpus": {"file": CORPUS_FILE, "documents": self.corpus_documents},
        })


def document_groups(documents: Iterable[Document], max_chars: int) -> Iterator[list[Document]]:
    """Consecutive groups of documents of about ``max_chars`` characters (a longer document is a group alone).

    Documents with the same ``group_key`` (the answers of one question) stay in one group.
    """
    group, size = [], 0
    for document in documents:
        same_key = document.group_key is not None and group and group[-1].group_key == document.group_key
        if group and size + len(document.text) > max_chars and not same_key:
            yield group
            group, size = [], 0
        group.append(document)
        size += len(document.text)
    if group:
        yield group


def _check_out(out: Path, overwrite: bool) -> None:
    check_output_dir(out)
    refuse_link(out / CACHE_FILE)  # SQLite would open (and empty) a link's target
    content = folder_content(out)  # a lock file is not content (qaembed.outputs)
    if any(p.name != CACHE_FILE for p in content):  # a cache alone: an earlier run that failed
        if not overwrite:
            raise ConfigError(f"--out {out}: is not empty; choose a new folder or pass --overwrite")
        foreign = [p.name for p in content if p.name not in (*OUTPUT_FILES, CACHE_FILE)]
        if foreign:
            raise ConfigError(f"--out {out}: --overwrite replaces only a chunk folder; it also holds {', '.join(sorted(foreign)[:5])}")


def run_chunking(
    source: Path, out: Path, *, qa: Path | None = None, qa_columns: dict[str, str] | None = None, model: str = "minilm",
    config: ChunkingConfig | None = None, skip_bad: bool = False, overwrite: bool = False, device: str | None = None,
    min_chars: int = 0, seed: int = 13, split: str = "0.8,0.1,0.1", targets: str = "best", log=print,
) -> dict:
    """Chunk ``source`` (projects JSON file, prepared dataset, or a folder of documents with ``qa``) into ``out``."""
    config = config or ChunkingConfig()
    fractions = parse_fractions(split)
    if targets not in ("best", "document"):
        raise ConfigError(f"--targets must be best or document, got {targets!r}")
    source, out = Path(source), Path(out)
    _check_out(out, overwrite)  # before any folder is made
    # two runs into one folder would share its staging folder and sentence cache: one at a time
    with writing_alone(out, "qaembed data chunk", create=True):
        _check_out(out, overwrite)  # again under the lock: a run that finished since wrote a chunk folder there
        return _run_chunking(source, out, qa=qa, qa_columns=qa_columns, model=model, config=config, skip_bad=skip_bad,
                             device=device, min_chars=min_chars, seed=seed, fractions=fractions, targets=targets,
                             log=log)


def _run_chunking(
    source: Path, out: Path, *, qa: Path | None, qa_columns: dict[str, str] | None, model: str,
    config: ChunkingConfig, skip_bad: bool, device: str | None, min_chars: int, seed: int,
    fractions: tuple[float, float, float], targets: str, log,
) -> dict:
    from qaembed.model import load_encoder
    from qaembed.provenance import library_versions

    policy = BadRecordPolicy(skip=skip_bad)
    documents: Iterable[Document]
    prepared = source.is_dir() and (source / "manifest.json").is_file() and (source / "train.jsonl").is_file()
    if source.is_file() and source.suffix.lower() == ".json":
        if qa is not None:
            raise ConfigError("--qa is for a folder of documents; a projects JSON file holds its own qa_pairs")
        documents, pairs = read_projects_json(source, policy)
        document_ids = [d.id for d in documents]
    elif prepared:
        if qa is not None:
            raise ConfigError(f"{source} is a prepared dataset: its answers are the documents and its questions the pairs; drop --qa")
        documents, pairs = read_prepared_answers(source, min_chars)
        document_ids = [d.id for d in documents]
    elif source.is_dir():
        if qa is None:
            raise ConfigError(f"{source} is a folder of documents: give the Q&A file that names them with --qa")
        document_ids = document_folder_ids(source)
        pairs = read_qa_file(qa, policy, qa_columns)
        documents = iter_document_folder(source, policy)  # read one group at a time
    else:
        raise ConfigError(f"{source}: give a projects .json file, a prepared dataset folder or a folder of .md/.txt documents")
    known = set(document_ids)
    pairs = check_documents_named(pairs, known, policy)  # before any encoding: a typo fails in a second
    pairs_of: dict[str, list[QAPair]] = {}
    for pair in pairs:
        pairs_of.setdefault(pair.document_id, []).append(pair)

    started = time.perf_counter()
    encoder = load_encoder(model, device=device)
    config = resolve_config(config, encoder)  # the chunk size the encoder reads whole, recorded in chunking.json
    from qaembed.index.store import model_weights_hash

    log(f"chunking {len(document_ids):,} documents with {model}, threshold {config.threshold}, "
        f"at most {config.max_tokens} tokens per chunk")
    out.mkdir(parents=True, exist_ok=True)
    cache = SentenceCache(out / CACHE_FILE, model_key=model_weights_hash(encoder), log=log)
    staging = out.parent / f".{out.name}.chunk-tmp"
    if staging.is_symlink():  # removed, never written through
        staging.unlink()
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    totals = {"documents": 0, "documents_skipped": 0, "chunks": 0, "sentences": 0, "sentences_encoded": 0,
              "pairs": 0, "positive_chunk": 0, "answer_fallback": 0}
    sentence_sum = token_sum = 0
    skipped: set[str] = set()
    try:
        beir = BeirWriter(staging / "beir", targets)
        records = RecordWriter(staging / "records", targets)
        with (staging / "chunks.jsonl").open("w", encoding="utf-8") as chunk_file, \
                (staging / "qa.jsonl").open("w", encoding="utf-8") as qa_file:
            for group in document_groups(documents, GROUP_CHARS):
                chunks, group_stats = chunk_documents(group, encoder, config, policy, cache=cache)
                skipped.update(group_stats["skipped_documents"])
                group_pairs = [pair for d in group if d.id not in skipped for pair in pairs_of.pop(d.id, [])]
                rows, positive_stats = select_positives(group_pairs, chunks, encoder, config, cache=cache,
                                                        documents={d.id: d.text for d in group})
                for row in rows:
                    row["split"] = row.get("split") or document_split(row["document_id"], seed, fractions)
                    qa_file.write(json.dumps(row, ensure_ascii=False) + "\n")
                for chunk in chunks:
                    chunk_file.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
                beir.add(chunks, rows)
                records.add(chunks, rows)
                for name in ("documents", "documents_skipped", "chunks", "sentences", "sentences_encoded"):
                    totals[name] += group_stats[name]
                for name in ("pairs", "positive_chunk", "answer_fallback"):
                    totals[name] += positive_stats[name]
                sentence_sum += sum(c.sentences for c in chunks)
                token_sum += sum(c.tokens for c in chunks)
        beir.close()
        # questions about documents that were skipped (unreadable, empty, binary, a sentence over the limit): counted
        leftover = [pair for document_pairs in pairs_of.values() for pair in document_pairs]
        check_documents_named(leftover, set(), policy, skipped=set(pairs_of))
        seconds = time.perf_counter() - started
        stats = {
            **totals,
            "sentences_per_chunk": round(sentence_sum / totals["chunks"], 3) if totals["chunks"] else 0.0,
            "tokens_per_chunk": round(token_sum / totals["chunks"], 3) if totals["chunks"] else 0.0,
            "sentence_cache": {"file": CACHE_FILE, "hits": cache.hits, "misses": cache.misses, "size": len(cache)},
            "queries_per_split": beir.queries_per_split, "records_corpus_documents": records.corpus_documents,
            "seconds": round(seconds, 3), "skipped": policy.summary(),
        }
        if totals["chunks"] == 0:
            raise DataError("no document could be chunked (see the skipped counts with --skip-bad)", path=str(source))
        (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        settings = {"format": "qaembed-chunks", "format_version": 1, "source": str(source.resolve()),
                    "qa": str(qa.resolve()) if qa else None, "qa_columns": qa_columns, "min_chars": min_chars,
                    "split": ({"by": "document", "kept": "the prepared dataset's own split (by question: each question's "
                              "documents are its own answers)"} if prepared else
                              {"seed": seed, "fractions": fractions, "by": "document"}), "targets": targets, "model": model,
                    "config": config.model_dump(), "sentence_splitter": "blingfire",
                    "libraries": library_versions()}
        (staging / "chunking.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        records.close(settings)
        for name in OUTPUT_FILES:
            if (out / name).is_symlink():  # removed, never followed
                (out / name).unlink()
            elif (out / name).is_dir():  # --overwrite of an earlier chunk folder
                shutil.rmtree(out / name)
            (staging / name).replace(out / name)
    finally:
        cache.close()
        shutil.rmtree(staging, ignore_errors=True)
    return stats
