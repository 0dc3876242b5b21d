"""Which encoding batch size is fastest on this device: ``model.encode`` texts/s per batch size.

Run from the repository root (a prepared dataset from ``qaembed data prepare``)::

    python benchmarks/bench_encode_batch.py --data DIR --split test --texts 600 --repeats 3
    python benchmarks/bench_encode_batch.py --data DIR --device cuda --sizes 32 64 128 256 512

Encodes the same texts (the split's questions and answers, first ``--texts`` distinct ones) with
every batch size in ``--sizes``, in interleaved rounds (one warm-up round first), and reports the
median texts/s of each and its ratio to the fastest. sentence-transformers sorts texts by length
before batching, so a larger batch pads little more; on a CPU a larger batch is still slower
(longer attention per batch, worse cache use), on a GPU larger batches fill the device. The
result sets ``qaembed.evaluate.config.default_encode_batch_size``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _output import print_and_save  # benchmarks/ is on sys.path when run as a script

from qaembed.data.dataset import read_split
from qaembed.model import load_encoder
from qaembed.records import question_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    records = read_split(args.data, args.split)
    texts = list(dict.fromkeys([question_text(r, "title_body") for r in records] +
                               [a.text for r in records for a in r.answers]))[: args.texts]
    model = load_encoder(args.model, device=args.device)

    def rate(batch_size: int) -> float:
        started = time.perf_counter()
        model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return len(texts) / (time.perf_counter() - started)

    for size in args.sizes:  # warm-up
        rate(size)
    rates: dict[int, list[float]] = {size: [] for size in args.sizes}
    for _ in range(args.repeats):
        for size in args.sizes:
            rates[size].append(rate(size))
    medians = {size: statistics.median(values) for size, values in rates.items()}
    best = max(medians.values())
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads"
    lines = [f"# Encoding batch size ({args.model}, {len(texts)} texts of {args.data.name}/{args.split}, {device})", "",
             f"{datetime.now(timezone.utc):%Y-%m-%d}; median of {args.repeats} interleaved rounds after a warm-up; "
             f"max_seq_length {model.max_seq_length}.", "",
             "| batch size | texts/s | vs fastest |", "|---:|---:|---:|"]
    lines += [f"| {size} | {medians[size]:.1f} | {medians[size] / best:.2f} |" for size in args.sizes]
    print_and_save("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
