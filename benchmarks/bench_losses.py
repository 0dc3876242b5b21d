"""Benchmark: every loss's forward+backward time against the encoder's, on one training batch.

The claim: a loss is cheap next to the encoder, at most 5% of the encoder's
forward+backward on the same batch, for every loss.

* Batch: 256 questions × 8 answers = 2,048 unique documents (a ``hard_negative`` batch:
  top answer positive, the other 7 hard negatives; for ``multiple_positives`` the top 3
  are positives). Scores are a random (256, 2048) matrix with ``requires_grad``.
* Loss time: median over ``--repeats`` of ``loss(scores, batch)`` + ``.backward()``
  (metrics included, scorer excluded), after one warm-up.
* Encoder baseline (same run): all-MiniLM-L6-v2 (``minilm``) in train mode, forward +
  backward of ``sentence_embedding.sum()`` on ``--encoder-texts`` texts of exactly
  ``--tokens`` tokens (no padding), median of 3 after a warm-up, scaled linearly to the
  batch's 256 + 2,048 = 2,304 texts (encoder cost is linear in the number of
  equal-length texts).

Run::

    python benchmarks/bench_losses.py --results benchmarks/results/losses.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _output import print_and_save  # benchmarks/ is on sys.path when run as a script

from qaembed.batching import RankingBatch
from qaembed.losses import LOSSES, build_loss
from qaembed.model import load_encoder
from qaembed.provenance import git_state, library_versions

N_QUERIES, ANSWERS_PER_QUESTION = 256, 8
LOSS_OPTIONS = {
    "multitask": {"parts": [{"loss": "infonce"}, {"loss": "listwise", "weight": 0.5}]},
}


def hard_negative_batch(n_queries: int, answers: int, positives: int = 1) -> RankingBatch:
    """A synthetic batch: query i owns documents [i*answers, (i+1)*answers), ranked by position."""
    n_docs = n_queries * answers
    owner = torch.arange(n_docs) // answers  # (n_d,)
    position = torch.arange(n_docs) % answers  # (n_d,)
    known = owner[None, :] == torch.arange(n_queries)[:, None]  # (n_q, n_d)
    rank = torch.where(known, position[None, :].expand(n_queries, -1), -1)
    relevance = torch.where(known, 1 - rank / (answers - 1), 0.0)
    return RankingBatch(
        queries=[f"q{i}" for i in range(n_queries)], docs=[f"d{j}" for j in range(n_docs)],
        relevance=relevance.float(), positive=known & (rank < positives), known=known, rank=rank,
        query_ids=[f"q{i}" for i in range(n_queries)], doc_ids=[f"d{j}" for j in range(n_docs)],
    )


def time_loss(name: str, repeats: int) -> float:
    batch = hard_negative_batch(N_QUERIES, ANSWERS_PER_QUESTION, positives=3 if name == "multiple_positives" else 1)
    loss_fn = build_loss(name, LOSS_OPTIONS.get(name))
    scores = (torch.rand(batch.num_queries, batch.num_docs) * 2 - 1).requires_grad_()
    timings = []
    for attempt in range(repeats + 1):
        scores.grad = None
        start = time.perf_counter()
        loss_fn(scores, batch).loss.backward()
        if attempt:
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def time_encoder(texts: int, tokens: int) -> float:
    model = load_encoder("minilm", device="cpu")
    model.train()
    generator = torch.Generator().manual_seed(0)
    features = {
        "input_ids": torch.randint(1000, 30000, (texts, tokens), generator=generator),
        "attention_mask": torch.ones(texts, tokens, dtype=torch.long),
        "token_type_ids": torch.zeros(texts, tokens, dtype=torch.long),
    }
    timings = []
    for attempt in range(4):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(dict(features))["sentence_embedding"].sum().backward()
        if attempt:
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--encoder-texts", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--results", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    batch_texts = N_QUERIES + N_QUERIES * ANSWERS_PER_QUESTION
    encoder_sample = time_encoder(args.encoder_texts, args.tokens)
    encoder = encoder_sample * batch_texts / args.encoder_texts
    rows = []
    for name in LOSSES:
        seconds = time_loss(name, args.repeats)
        rows.append((name, seconds, seconds / encoder))
        print(f"{name:24s} {seconds * 1000:9.2f} ms  {100 * seconds / encoder:6.3f}% of encoder", flush=True)

    versions = library_versions()
    lines = [
        "# Loss cost vs encoder cost",
        "",
        f"Command: `python benchmarks/bench_losses.py --repeats {args.repeats} --encoder-texts {args.encoder_texts} "
        f"--tokens {args.tokens}`  ",
        f"Machine: 2-core CPU, no GPU (torch threads: {torch.get_num_threads()}; 1-min load average "
        f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end: shared with other jobs, so absolute times "
        "are inflated; the ratio is measured in the same run); "
        f"date {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"commit {git_state().get('commit')} (dirty: {git_state().get('dirty')}); "
        f"torch {versions.get('torch')}, sentence-transformers {versions.get('sentence-transformers')}",
        "",
        f"Batch: {N_QUERIES} queries × {N_QUERIES * ANSWERS_PER_QUESTION} documents "
        f"({ANSWERS_PER_QUESTION} answers per question). Encoder baseline: minilm forward+backward on "
        f"{args.encoder_texts} texts × {args.tokens} tokens = {encoder_sample:.2f} s, scaled linearly to the "
        f"batch's {batch_texts} texts = **{encoder:.1f} s**. Loss: forward+backward on the (256, 2048) score "
        f"matrix, median of {args.repeats}. Target: every loss ≤ 5% of the encoder.",
        "",
        "| loss | loss fwd+bwd (ms) | % of encoder fwd+bwd | ≤ 5% |",
        "|---|---:|---:|:---:|",
    ]
    lines += [f"| `{name}` | {s * 1000:.1f} | {100 * r:.3f}% | {'yes' if r <= 0.05 else 'NO'} |" for name, s, r in rows]
    text = "\n".join(lines) + "\n"
    print_and_save(text, args.results)


if __name__ == "__main__":
    main()
