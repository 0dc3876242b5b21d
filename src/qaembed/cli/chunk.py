"""``qaembed data chunk``: documents → semantic chunks, and each Q&A pair's positive chunk.

Examples::

    qaembed data chunk projects.json --out data/chunks
    qaembed data chunk docs/ --qa questions.csv --out data/chunks --max-tokens 128 --overlap 1
    qaembed data chunk data/se5 --min-chars 400 --out data/se5-passages     # Stack Exchange answers as documents

See docs/chunking.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from qaembed.errors import option_error


def parse_columns(value: str | None) -> dict[str, str] | None:
    """``FIELD=COLUMN,...`` for the fields question, answer, document.

    >>> parse_columns("question=q,document=readme")
    {'question': 'q', 'document': 'readme'}
    """
    from qaembed.chunking.sources import QA_FIELDS
    from qaembed.data.hf import parse_column_mapping

    return parse_column_mapping(value, QA_FIELDS, "--qa-columns") or None


def chunk_command(
    source: Path = typer.Argument(..., help="A projects .json file, a prepared dataset folder (its answers are the "
                                             "documents), or a folder of .md/.txt documents (with --qa)."),
    out: Path = typer.Option(..., help="Output folder (chunks.jsonl, qa.jsonl, stats.json, chunking.json)."),
    qa: Optional[Path] = typer.Option(None, help="CSV or JSONL of Q&A rows naming their document (for a folder)."),
    qa_columns: Optional[str] = typer.Option(None, help="Column names: question=COL,answer=COL,document=COL."),
    model: str = typer.Option("minilm", help="Encoder for sentence similarity and token counts."),
    threshold: float = typer.Option(0.7, help="Merge consecutive sentences while their cosine similarity is at least this."),
    max_tokens: Optional[int] = typer.Option(None, help="Most tokens per chunk (the encoder's tokenizer). Default: what "
                                                       "the encoder reads whole (254 for minilm: 256 less [CLS], [SEP])."),
    overlap: int = typer.Option(0, help="Sentences a chunk repeats from the one before."),
    positive_threshold: float = typer.Option(0.6, help="Least similarity of a positive chunk; below it the answer is the target."),
    batch_size: int = typer.Option(64, help="Sentences per encoding batch."),
    min_chars: int = typer.Option(0, help="Prepared dataset: only answers at least this long are documents."),
    split: str = typer.Option("0.8,0.1,0.1", help="Train,dev,test fractions of documents (a prepared dataset keeps its split)."),
    seed: int = typer.Option(13, help="Seed of the split by document."),
    targets: str = typer.Option("best", help="Judged relevant in beir/qrels: best (each question's positive chunk, "
                                             "chosen by --model) or document (every chunk of its document; no model chose it)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip and count bad documents and rows instead of failing."),
    overwrite: bool = typer.Option(False, help="Replace the files of an existing chunk folder at --out."),
    device: Optional[str] = typer.Option(None, help="torch device for encoding."),
) -> None:
    """Split documents into semantic chunks and pick each Q&A pair's positive chunk (see docs/chunking.md)."""
    from pydantic import ValidationError

    from qaembed.chunking import ChunkingConfig, run_chunking

    try:
        config = ChunkingConfig(threshold=threshold, max_tokens=max_tokens, overlap=overlap,
                                positive_threshold=positive_threshold, batch_size=batch_size)
    except ValidationError as exc:
        raise option_error(exc) from None
    stats = run_chunking(source, out, qa=qa, qa_columns=parse_columns(qa_columns), model=model, config=config,
                         skip_bad=skip_bad, overwrite=overwrite, device=device, min_chars=min_chars, seed=seed, split=split, targets=targets, log=lambda m: typer.echo(m, err=True))
    skipped = stats["skipped"]["counts"]
    typer.echo(
        f"wrote {out}: {stats['chunks']:,} chunks of {stats['documents']:,} documents "
        f"({stats['sentences_per_chunk']:.1f} sentences, {stats['tokens_per_chunk']:.0f} tokens per chunk); "
        f"{stats['pairs']:,} Q&A pairs: {stats['positive_chunk']:,} with a positive chunk, "
        f"{stats['answer_fallback']:,} fall back to their answer"
        + (f"; skipped: {', '.join(f'{n} {reason}' for reason, n in skipped.items())}" if skipped else "")
    )
    per_split = stats["queries_per_split"]
    typer.echo(f"passage retrieval (split by document): {per_split['train']:,} / {per_split['dev']:,} / {per_split['test']:,} "
               f"train/dev/test questions; evaluate with: qaembed eval --model M --data beir:{out / 'beir'}")
    typer.echo(f"as Q&A records (graded passages): {out / 'records'}; train and compare losses with: "
               f"qaembed suite --data {out / 'records'}")


def register(app: typer.Typer) -> None:
    from qaembed.cli.data import data_app

    data_app.command("chunk")(chunk_command)
