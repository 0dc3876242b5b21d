"""``qaembed data chunk``: inputs → chunks and positives → an output folder (written atomically).

Output folder::

    OUT/chunks.jsonl    one chunk per line: id, document_id, index, start, end (character span), text, tokens, sentences
    OUT/qa.jsonl        one Q&A pair per line with its positive: {"kind": "chunk"|"answer", "chunk_id", "text", "similarity"}
    OUT/stats.json      documents, chunks, sentences, positives vs fallbacks, skipped records by reason
    OUT/chunking.json   the settings, the model, the inputs and the library versions
    OUT/beir/           passage retrieval in BEIR layout, split by document (``qaembed eval --data beir:OUT/beir``):
                        corpus.jsonl (every chunk of every document, plus the answer texts that are fallback
                        targets), queries.jsonl (the questions), qrels/{train,dev,test}.tsv (question → its target, 1)

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
from pathlib import Path

from qaembed.chunking.chunk import ChunkingConfig, chunk_documents, select_positives
from qaembed.chunking.sources import (
    check_documents_named,
    read_document_folder,
    read_prepared_answers,
    read_projects_json,
    read_qa_file,
)
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.errors import ConfigError
from qaembed.outputs import check_output_dir

OUTPUT_FILES = ("chunks.jsonl", "qa.jsonl", "stats.json", "chunking.json", "beir")
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


def write_beir(folder: Path, chunks, rows: list[dict], splits: dict[str, str], targets: str = "best") -> dict[str, int]:
    """The BEIR layout of the chunks and positives; ``splits`` maps pair id → split. Queries per split.

    ``targets``: ``best`` judges each question's positive (its chosen chunk, or its answer text);
    ``document`` judges every chunk of its document relevant, a target no model chose.
    """
    chunks_of: dict[str, list[str]] = {}
    for chunk in chunks:
        chunks_of.setdefault(chunk.document_id, []).append(chunk.id)
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for chunk in chunks:
            fh.write(json.dumps({"_id": chunk.id, "title": "", "text": chunk.text,
                                 "metadata": {"document_id": chunk.document_id, "start": chunk.start, "end": chunk.end}},
                                ensure_ascii=False) + "\n")
        for row in rows:
            if row["positive"]["kind"] == "answer":  # the fallback target: the answer text itself
                fh.write(json.dumps({"_id": f"answer:{row['id']}", "title": "", "text": row["positive"]["text"],
                                     "metadata": {"document_id": row["document_id"], "fallback": True}},
                                    ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"_id": row["id"], "text": row["question"]}, ensure_ascii=False) + "\n")
    counts = {}
    for split in SPLITS:
        judged = [row for row in rows if splits[row["id"]] == split]
        counts[split] = len(judged)
        with (folder / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for row in judged:
                if targets == "document":
                    relevant = chunks_of[row["document_id"]]
                else:
                    relevant = [row["positive"]["chunk_id"] or f"answer:{row['id']}"]
                for target in relevant:
                    fh.write(f"{row['id']}\t{target}\t1\n")
    return counts


def _check_out(out: Path, overwrite: bool) -> None:
    check_output_dir(out)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"--out {out}: is not empty; choose a new folder or pass --overwrite")
        foreign = [p.name for p in out.iterdir() if p.name not in OUTPUT_FILES]
        if foreign:
            raise ConfigError(f"--out {out}: --overwrite replaces only a chunk folder; it also holds {', '.join(sorted(foreign)[:5])}")


def run_chunking(
    source: Path, out: Path, *, qa: Path | None = None, qa_columns: dict[str, str] | None = None, model: str = "minilm",
    config: ChunkingConfig | None = None, skip_bad: bool = False, overwrite: bool = False, device: str | None = None,
    min_chars: int = 0, seed: int = 13, split: str = "0.8,0.1,0.1", targets: str = "best", log=print,
) -> dict:
    """Chunk ``source`` (projects JSON file, prepared dataset, or a folder of documents with ``qa``) into ``out``."""
    from qaembed.model import load_encoder
    from qaembed.provenance import library_versions

    config = config or ChunkingConfig()
    fractions = parse_fractions(split)
    if targets not in ("best", "document"):
        raise ConfigError(f"--targets must be best or document, got {targets!r}")
    source, out = Path(source), Path(out)
    _check_out(out, overwrite)
    policy = BadRecordPolicy(skip=skip_bad)
    if source.is_file() and source.suffix.lower() == ".json":
        if qa is not None:
            raise ConfigError("--qa is for a folder of documents; a projects JSON file holds its own qa_pairs")
        documents, pairs = read_projects_json(source, policy)
    elif source.is_dir() and (source / "manifest.json").is_file() and (source / "train.jsonl").is_file():
        if qa is not None:
            raise ConfigError(f"{source} is a prepared dataset: its answers are the documents and its questions the pairs; drop --qa")
        documents, pairs = read_prepared_answers(source, min_chars)
    elif source.is_dir():
        if qa is None:
            raise ConfigError(f"{source} is a folder of documents: give the Q&A file that names them with --qa")
        documents = read_document_folder(source, policy)
        pairs = read_qa_file(qa, policy, qa_columns)
    else:
        raise ConfigError(f"{source}: give a projects .json file, a prepared dataset folder or a folder of .md/.txt documents")
    started = time.perf_counter()
    encoder = load_encoder(model, device=device)
    log(f"chunking {len(documents):,} documents ({sum(len(d.text) for d in documents) / 1e6:.1f} M characters) "
        f"with {model}, threshold {config.threshold}, at most {config.max_tokens} tokens per chunk")
    chunks, chunk_stats = chunk_documents(documents, encoder, config, policy)
    skipped = set(chunk_stats.pop("skipped_documents"))
    pairs = check_documents_named(pairs, [d for d in documents if d.id not in skipped], policy, skipped)
    rows, positive_stats = select_positives(pairs, chunks, encoder, config)
    seconds = time.perf_counter() - started

    pair_splits = {pair.id: pair.split or document_split(pair.document_id, seed, fractions) for pair in pairs}
    for row in rows:
        row["split"] = pair_splits[row["id"]]
    stats = {**chunk_stats, **positive_stats, "seconds": round(seconds, 3), "skipped": policy.summary()}
    staging = out.parent / f".{out.name}.chunk-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with (staging / "chunks.jsonl").open("w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
        with (staging / "qa.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        stats["queries_per_split"] = write_beir(staging / "beir", chunks, rows, pair_splits, targets)
        (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        settings = {"format": "qaembed-chunks", "format_version": 1, "source": str(source.resolve()),
                    "qa": str(qa.resolve()) if qa else None, "qa_columns": qa_columns, "min_chars": min_chars, "split": {"seed": seed, "fractions": fractions, "by": "document"}, "targets": targets, "model": model,
                    "config": config.model_dump(), "sentence_splitter": "blingfire",
                    "libraries": library_versions()}
        (staging / "chunking.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            if (out / name).is_dir():  # --overwrite of an earlier chunk folder
                shutil.rmtree(out / name)
            (staging / name).replace(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return stats
