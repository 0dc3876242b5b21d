"""Evaluation throughput against bare ``model.encode``, and the SciFact reference number.

Run from the repository root::

    python benchmarks/bench_eval.py --data DIR                 # a prepared dataset (qaembed data prepare)
    python benchmarks/bench_eval.py --data DIR --distractors train
    python benchmarks/bench_eval.py --beir ../shared/data/beir/scifact

For ``--data``: encodes the split's unique query and answer texts with bare
``model.encode`` (the baseline) and runs :func:`qaembed.evaluate.evaluate_model` on the
same split (all three protocol sections), alternating ``--repeats`` times after one
warm-up of each; reports median texts/s of both and their ratio (target >= 0.9), plus
the end-to-end time (reading the split + evaluation). For ``--beir``: NDCG@10 and
MRR@10 against MTEB's published value and the time. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

from qaembed.data.dataset import read_split
from qaembed.evaluate import EvalConfig, evaluate_beir, evaluate_model, read_beir
from qaembed.model import load_encoder
from qaembed.records import question_text

MTEB_SCIFACT_NDCG10 = 0.64508


def bench_qa(args, model) -> list[str]:
    started = time.perf_counter()
    records = read_split(args.data, args.split)
    distractors = read_split(args.data, args.distractors) if args.distractors else []
    read_seconds = time.perf_counter() - started
    config = EvalConfig(encode_batch_size=args.batch_size)
    queries = list(dict.fromkeys(question_text(r, config.query_mode) for r in records if r.answers))
    docs = list(dict.fromkeys(a.text for r in [*records, *distractors] for a in r.answers))
    texts = queries + docs

    def baseline() -> float:
        t0 = time.perf_counter()
        model.encode(queries, batch_size=args.batch_size, normalize_embeddings=True)
        model.encode(docs, batch_size=args.batch_size, normalize_embeddings=True)
        return len(texts) / (time.perf_counter() - t0)

    def evaluation() -> tuple[float, float]:
        t0 = time.perf_counter()
        result = evaluate_model(model, records, config=config, distractors=distractors)
        seconds = time.perf_counter() - t0
        return result.info["texts_encoded"] / seconds, seconds

    baseline(), evaluation()  # warm-up
    base_rates, eval_rates, eval_seconds = [], [], []
    for _ in range(args.repeats):
        base_rates.append(baseline())
        rate, seconds = evaluation()
        eval_rates.append(rate)
        eval_seconds.append(seconds)
    base, ours = statistics.median(base_rates), statistics.median(eval_rates)
    return [
        f"| data | {args.data} ({args.split}{', distractors ' + args.distractors if args.distractors else ''}) |",
        f"| texts (unique queries + documents) | {len(queries)} + {len(docs)} |",
        f"| bare model.encode, texts/s (median of {args.repeats}) | {base:.1f} |",
        f"| evaluate_model, texts/s (median of {args.repeats}) | {ours:.1f} |",
        f"| ratio evaluate / encode | {ours / base:.3f} |",
        f"| end-to-end: read split {read_seconds:.2f}s + evaluate (median) | {read_seconds + statistics.median(eval_seconds):.1f}s |",
    ]


def bench_beir(args, model) -> list[str]:
    started = time.perf_counter()
    model.max_seq_length = 256
    result = evaluate_beir(model, read_beir(args.beir, args.split), config=EvalConfig(encode_batch_size=args.batch_size))
    seconds = time.perf_counter() - started
    ndcg = result.summary["retrieval/ndcg@10"]
    return [
        f"| data | {args.beir} ({args.split}), {result.counts['retrieval/documents']} docs, "
        f"{result.counts['retrieval/questions']} queries |",
        f"| NDCG@10 (MTEB reference {MTEB_SCIFACT_NDCG10}) | {ndcg:.5f} (diff {ndcg - MTEB_SCIFACT_NDCG10:+.5f}) |",
        f"| MRR@10 | {result.summary['retrieval/mrr@10']:.5f} |",
        f"| time (read + encode + rank) | {seconds:.1f}s (encode {result.info['encode_seconds']:.1f}s) |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="prepared dataset folder")
    source.add_argument("--beir", help="BEIR dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--distractors", default=None, help="split whose answers join the corpus (with --data)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = load_encoder(args.model, device="cpu")
    rows = bench_beir(args, model) if args.beir else bench_qa(args, model)
    print(f"model {args.model}, batch size {args.batch_size}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| measure | value |\n|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
