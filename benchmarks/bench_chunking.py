"""Chunking throughput on real text: Stack Exchange answers as documents, and where the time goes.

Run from the repository root::

    qaembed data prepare --out benchmarks/_work/se5
    python benchmarks/bench_chunking.py --data benchmarks/_work/se5 --results benchmarks/results/chunking.md

Every answer of the prepared dataset with at least ``--min-chars`` characters is a document. Times
each stage of :func:`qaembed.chunking.chunk_documents` separately on the same documents (sentence
splitting, token counting, sentence embedding with ``--model`` on this machine's CPU, merging) and the
whole call, and reports MB/s, sentences/s, the share spent embedding sentences, and what the seed's
rule (threshold 0.7) makes of real text (sentences per chunk) next to lower thresholds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _output import print_and_save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--min-chars", type=int, default=400, help="Answers at least this long are documents.")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()

    from qaembed.chunking import ChunkingConfig, chunk_documents
    from qaembed.chunking.chunk import _encode, token_counts
    from qaembed.chunking.semantic import merge_sentences
    from qaembed.chunking.sentences import split_sentences
    from qaembed.chunking.sources import Document
    from qaembed.data.bad_records import BadRecordPolicy
    from qaembed.data.dataset import read_split
    from qaembed.model import load_encoder

    documents = [Document(answer.id, answer.text, f"{split}:{answer.id}") for split in ("train", "dev", "test")
                 for record in read_split(args.data, split) for answer in record.answers if len(answer.text) >= args.min_chars]
    megabytes = sum(len(d.text.encode()) for d in documents) / 1e6
    model = load_encoder(args.model)
    config = ChunkingConfig(max_tokens=256)

    started = time.perf_counter()
    spans = [split_sentences(d.text) for d in documents]
    t_split = time.perf_counter() - started
    texts = list(dict.fromkeys(d.text[s:e] for d, doc_spans in zip(documents, spans) for s, e in doc_spans))
    started = time.perf_counter()
    counts = token_counts(model, texts)
    t_tokens = time.perf_counter() - started
    started = time.perf_counter()
    embeddings = _encode(model, texts, config.batch_size)
    t_embed = time.perf_counter() - started
    row = {text: i for i, text in enumerate(texts)}
    started = time.perf_counter()
    too_long = 0
    per_threshold = {}
    for threshold in (0.7, 0.5, 0.3):
        sizes = []
        for d, doc_spans in zip(documents, spans):
            rows = [row[d.text[s:e]] for s, e in doc_spans]
            if not rows:
                continue
            try:
                chunks = merge_sentences(embeddings[rows], [counts[r] for r in rows], threshold=threshold, max_tokens=256)
            except ValueError:
                too_long += threshold == 0.7
                continue
            sizes.extend(len(c.sentences) for c in chunks)
        per_threshold[threshold] = (float(np.mean(sizes)), len(sizes))
    t_merge = (time.perf_counter() - started) / 3

    started = time.perf_counter()
    _, stats = chunk_documents(documents, model, config, BadRecordPolicy(skip=True))
    t_whole = time.perf_counter() - started
    sentences = stats["sentences"]
    staged = t_split + t_tokens + t_embed + t_merge
    lines = [
        "# Chunking throughput", "",
        f"Command: `python benchmarks/bench_chunking.py --data {args.data}`. {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; {len(documents):,} Stack Exchange answers of ≥ {args.min_chars} characters as documents "
        f"({megabytes:.2f} MB, {sentences:,} sentences, {len(texts):,} distinct); model {args.model} on CPU.", "",
        "| stage | seconds | share of the stages | MB/s | sentences/s |", "|---|---|---|---|---|",
    ]
    for name, seconds in (("sentence splitting (blingfire)", t_split), ("token counting", t_tokens),
                          ("sentence embedding", t_embed), ("merging (one threshold)", t_merge)):
        lines.append(f"| {name} | {seconds:.2f} | {seconds / staged:.1%} | {megabytes / seconds:.2f} | {sentences / seconds:,.0f} |")
    lines.append(f"| **whole `chunk_documents`** | {t_whole:.2f} | — | {megabytes / t_whole:.2f} | {sentences / t_whole:,.0f} |")
    lines += ["", "What the rule makes of this text (max 256 tokens):", "", "| threshold | sentences per chunk | chunks |", "|---|---|---|"]
    for threshold, (mean, n) in per_threshold.items():
        lines.append(f"| {threshold} | {mean:.2f} | {n:,} |")
    lines.append(f"\nDocuments refused for a sentence over 256 tokens: {stats['documents_skipped']}.")
    print_and_save("\n".join(lines) + "\n", args.results)


if __name__ == "__main__":
    main()
