"""Training-loop benchmarks: step overhead per loss, padding efficiency, GradCache memory.

Run (prints a Markdown report; ``--out`` also writes it)::

    qaembed data prepare --out /tmp/se                       # the shared Stack Exchange sites
    python benchmarks/bench_train.py --dataset /tmp/se --repeats 3 --out benchmarks/results/train.md

1. **Step overhead** (per loss, minilm, CPU, 16 questions, max_seq_length 128): time of the
   loop's training step (collate, one forward over all texts, scores, loss, backward,
   clipping, AdamW step) divided by the bare encoder forward + backward of
   ``embeddings.sum()`` on the same tokenized batch. Both are timed alternately on the
   same batches (median of ``--repeats`` rounds). Target <= 1.10.
2. **Padding** (batch 32 questions, max_seq_length 128, one epoch of the train split):
   real tokens / padded tokens with the length-aware sampler, with a random order
   (``bucket_batches=1``) and with every text padded to 128 tokens (the seed project).
   Target >= 0.85.
3. **GradCache memory** (max_seq_length 64): peak resident memory of one training step
   above the resident memory before the step, in a fresh subprocess per setting (the
   kernel's high-water mark ``VmHWM`` is reset through ``/proc/self/clear_refs`` right
   before the step). Effective batch of 512 texts (256 questions, one answer each) in
   GradCache chunks of 32 texts versus a plain batch of 32 texts (16 questions).
   Target <= 1.3x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from _output import print_and_save  # benchmarks/ is on sys.path when run as a script

LOSS_SETTINGS = [  # (loss, strategy, loss options, strategy options)
    ("infonce", "hard_negative", {}, {"max_answers": 4}),
    ("multiple_positives", "multiple_positives", {"use_ranks": True}, {"pos_count": 3}),
    ("relaxed_hard_negative", "hard_negative", {}, {"max_answers": 4}),
    ("triplet", "triplet", {}, {}),
    ("listwise", "listwise", {}, {"max_answers": 8}),
    ("mse", "listwise", {}, {"max_answers": 8}),
]


def _batches(dataset: Path, strategy_name: str, options: dict, batch_size: int, count: int | None, seed: int = 0):
    from qaembed.batching.strategies import build_strategy
    from qaembed.data.dataset import read_split

    strategy = build_strategy(strategy_name, options)
    batches = strategy.batches(read_split(dataset, "train"), batch_size, seed, 0, drop_last=True)
    return [b for _, b in zip(range(count), batches)] if count else list(batches)


def step_overhead(dataset: Path, repeats: int, batch_size: int = 16, max_seq_length: int = 128) -> list[dict]:
    from qaembed.batching.collate import Collator
    from qaembed.losses import build_loss
    from qaembed.losses.scores import cosine_scores
    from qaembed.model import build_encoder
    from qaembed.train.gradcache import embed, forward_backward

    torch.manual_seed(0)
    model = build_encoder("minilm", max_seq_length=max_seq_length)
    model.train()
    collate = Collator(model, max_seq_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)
    rows = []
    for loss_name, strategy_name, loss_options, strategy_options in LOSS_SETTINGS:
        loss_fn = build_loss(loss_name, loss_options)
        batches = _batches(dataset, strategy_name, strategy_options, batch_size, repeats)
        step_times, bare_times, update_times, texts, tokens = [], [], [], [], []
        for batch in batches:
            features = collate(batch)
            texts.append(len(features["input_ids"]))
            tokens.append(int(features["attention_mask"].sum()))

            start = time.perf_counter()  # bare encoder forward + backward
            embed(model, features).sum().backward()
            bare_times.append(time.perf_counter() - start)
            optimizer.zero_grad(set_to_none=True)

            start = time.perf_counter()  # the loop's step
            step_features = collate(batch)
            output = forward_backward(
                model, step_features, batch.num_queries,
                lambda q, d, batch=batch, loss_fn=loss_fn: loss_fn(cosine_scores(q, d), batch),
            )
            middle = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step_times.append(time.perf_counter() - start)
            update_times.append(time.perf_counter() - middle)
            assert torch.isfinite(output.loss)
        ratios = [s / b for s, b in zip(step_times, bare_times, strict=True)]
        loss_ratios = [(s - u) / b for s, u, b in zip(step_times, update_times, bare_times, strict=True)]
        rows.append({
            "loss": loss_name, "strategy": strategy_name, "texts": statistics.mean(texts),
            "real_tokens": statistics.mean(tokens), "bare_s": statistics.median(bare_times),
            "step_s": statistics.median(step_times), "update_s": statistics.median(update_times),
            "ratio": statistics.median(ratios), "ratio_without_update": statistics.median(loss_ratios),
        })
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def padding(dataset: Path, batch_size: int = 32, max_seq_length: int = 128) -> list[dict]:
    from qaembed.batching.collate import tokenize
    from qaembed.model import load_encoder

    tokenizer = load_encoder("minilm").tokenizer
    rows = []
    for label, strategy_name, options in [
        ("length-aware sampler (hard_negative, 4 answers)", "hard_negative", {"max_answers": 4}),
        ("random order (bucket_batches=1)", "hard_negative", {"max_answers": 4, "bucket_batches": 1}),
        ("length-aware sampler (infonce, top answer)", "infonce", {}),
        ("length-aware sampler (listwise, 8 answers)", "listwise", {"max_answers": 8}),
    ]:
        real = padded = fixed = 0
        for batch in _batches(dataset, strategy_name, options, batch_size, None):
            mask = tokenize(tokenizer, batch.queries + batch.docs, max_seq_length)["attention_mask"]
            real += int(mask.sum())
            padded += mask.numel()
            fixed += mask.shape[0] * max_seq_length
        rows.append({"setting": label, "real_over_padded": real / padded, "real_over_pad_to_128": real / fixed})
    return rows


def _memory_child(dataset: str, questions: int, mini_batch_size: int | None) -> None:
    """One training step in this (fresh) process; prints the peak RSS increase in MiB."""
    from qaembed.batching.collate import Collator
    from qaembed.losses import build_loss
    from qaembed.losses.scores import cosine_scores
    from qaembed.model import build_encoder
    from qaembed.train.gradcache import forward_backward

    torch.manual_seed(0)
    model = build_encoder("minilm", max_seq_length=64)
    model.train()
    from qaembed.batching.strategies import build_strategy
    from qaembed.data.dataset import read_split

    # the first 256-question batch (length-homogeneous: the sampler sorts within buckets); the
    # plain baseline takes its first `questions` questions, so both see texts of the same length
    strategy = build_strategy("infonce", {})
    large = next(strategy.batches(read_split(Path(dataset), "train"), 256, 0, 0, drop_last=True))
    by_id = {r.id: r for r in read_split(Path(dataset), "train")}
    batch = strategy.build_batch([by_id[i] for i in large.query_ids[:questions]], np.random.default_rng(0))
    features = Collator(model, 64)(batch)
    loss_fn = build_loss("infonce", {})

    def rss_kib(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} in /proc/self/status")

    # warm-up: one tiny GradCache step (a no-grad and a grad pass) so one-time lazy
    # allocations of either path (thread pools, kernel scratch) are not counted as step memory
    warm = strategy.build_batch([by_id[i] for i in large.query_ids[:2]], np.random.default_rng(0))
    forward_backward(model, Collator(model, 64)(warm), warm.num_queries,
                     lambda q, d: loss_fn(cosine_scores(q, d), warm), mini_batch_size=2)
    model.zero_grad(set_to_none=True)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = rss_kib("VmRSS")
    forward_backward(model, features, batch.num_queries, lambda q, d: loss_fn(cosine_scores(q, d), batch),
                     mini_batch_size=mini_batch_size)
    peak = rss_kib("VmHWM")
    print(json.dumps({"texts": len(features["input_ids"]), "padded_length": features["input_ids"].shape[1],
                      "peak_increase_mib": (peak - before) / 1024}))


def gradcache_memory(dataset: Path) -> list[dict]:
    rows = []
    for label, questions, mini in [("plain batch of 32 texts", 16, None), ("GradCache: 512 texts in chunks of 32", 256, 32),
                                   ("plain batch of 512 texts (for scale)", 256, None)]:
        command = [sys.executable, __file__, "--threads", str(torch.get_num_threads()),
                   "--memory-child", str(dataset), str(questions), str(mini or 0)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        rows.append({"setting": label, **json.loads(output)})
    return rows


def report(dataset: Path, repeats: int) -> str:
    from qaembed.provenance import environment

    env = environment()
    overhead = step_overhead(dataset, repeats)
    pad = padding(dataset)
    memory = gradcache_memory(dataset)
    base = memory[0]["peak_increase_mib"]
    lines = [
        "# Training loop benchmarks",
        "",
        f"Command: `python benchmarks/bench_train.py --dataset DATASET --repeats {repeats}` "
        "(DATASET = `qaembed data prepare` of the five shared Stack Exchange sites)",
        f"Machine: 2-core CPU, no GPU (shared with other jobs; timings are noisy), "
        f"torch threads {torch.get_num_threads()}. "
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"torch {env['versions']['torch']}, sentence-transformers {env['versions']['sentence-transformers']}, "
        f"git {str(env['git']['commit'])[:10]} (dirty={env['git']['dirty']}).",
        "",
        "## Step overhead (minilm, 16 questions, max_seq_length 128; target <= 1.10)",
        "",
        "| loss | strategy | texts/batch | real tokens | bare fwd+bwd (s) | training step (s) | of which clip+AdamW (s) "
        "| step / bare | (step - clip - AdamW) / bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in overhead:
        lines.append(f"| {r['loss']} | {r['strategy']} | {r['texts']:.0f} | {r['real_tokens']:.0f} | "
                     f"{r['bare_s']:.3f} | {r['step_s']:.3f} | {r['update_s']:.3f} | {r['ratio']:.3f} | "
                     f"{r['ratio_without_update']:.3f} |")
    lines += ["", "Training step = collate + forward + scores + loss + backward + clip + AdamW step; "
              f"median over {repeats} batches, each timed alternately with the bare pass "
              "(bare = `model(features)['sentence_embedding'].sum().backward()` on the same tokens).", "",
              "## Padding (batch 32 questions, max_seq_length 128, one epoch of train; target >= 0.85)", "",
              "| setting | real / padded tokens | real / (texts x 128), seed project's fixed padding |", "|---|---|---|"]
    for r in pad:
        lines.append(f"| {r['setting']} | {r['real_over_padded']:.3f} | {r['real_over_pad_to_128']:.3f} |")
    lines += ["", "## GradCache memory (minilm, max_seq_length 64; target <= 1.3x)", "",
              "Method: each setting runs one training step in a fresh subprocess; peak RSS increase = "
              "`VmHWM` after the step minus `VmRSS` before it, with `VmHWM` reset via `/proc/self/clear_refs` "
              "just before the step.", "",
              "| setting | texts | padded length | peak RSS increase (MiB) | vs plain 32 |", "|---|---|---|---|---|"]
    for r in memory:
        lines.append(f"| {r['setting']} | {r['texts']} | {r['padded_length']} | {r['peak_increase_mib']:.1f} | "
                     f"{r['peak_increase_mib'] / base:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="prepared dataset folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = stable timings on a shared CPU)")
    parser.add_argument("--only-memory", action="store_true", help="run only the GradCache memory section")
    parser.add_argument("--memory-child", nargs=3, metavar=("DATASET", "QUESTIONS", "MINI"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        dataset, questions, mini = args.memory_child
        _memory_child(dataset, int(questions), int(mini) or None)
        return
    if args.dataset is None:
        parser.error("--dataset is required")
    if args.only_memory:
        for row in gradcache_memory(args.dataset):
            print(json.dumps(row))
        return
    text = report(args.dataset, args.repeats)
    print_and_save(text, args.out)


if __name__ == "__main__":
    main()
