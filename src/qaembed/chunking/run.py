"""``qaembed data chunk``: inputs → chunks and positives → an output folder (written atomically).

Output folder::

    OUT/chunks.jsonl    one chunk per line: id, document_id, index, start, end (character span), text, tokens, sentences
    OUT/qa.jsonl        one Q&A pair per line with its positive: {"kind": "chunk"|"answer", "chunk_id", "text", "similarity"}
    OUT/stats.json      documents, chunks, sentences, positives vs fallbacks, skipped records by reason
    OUT/chunking.json   the settings, the model, the inputs and the library versions
"""

from __future__ import annotations

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

OUTPUT_FILES = ("chunks.jsonl", "qa.jsonl", "stats.json", "chunking.json")


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
    min_chars: int = 0, log=print,
) -> dict:
    """Chunk ``source`` (projects JSON file, prepared dataset, or a folder of documents with ``qa``) into ``out``."""
    from qaembed.model import load_encoder
    from qaembed.provenance import library_versions

    config = config or ChunkingConfig()
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
        (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        settings = {"format": "qaembed-chunks", "format_version": 1, "source": str(source.resolve()),
                    "qa": str(qa.resolve()) if qa else None, "qa_columns": qa_columns, "min_chars": min_chars, "model": model,
                    "config": config.model_dump(), "sentence_splitter": "blingfire",
                    "libraries": library_versions()}
        (staging / "chunking.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            (staging / name).replace(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return stats
