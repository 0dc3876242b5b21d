"""Sweep: which budget and learning rate make standard InfoNCE improve on the base model's dev metric.

Run: python benchmarks/sweep_suite_budget.py [--data DIR] [--lrs 1e-5,2e-5,5e-5] [--budgets 1200,2400]
                                             [--max-seq-length 64] [--batch-size 16] [--out FILE]

For each (learning rate, budget in texts) it trains the suite's reference entry (InfoNCE on
``hard_negative`` batches, seed 0) on the suite's common training questions (those with 2+
answers, usable by every loss of the ``cpu`` grid) and reports the dev graded NDCG@10 at step 0
(the base model) and at the end, with the change and the wall time. The ``cpu`` preset in
``qaembed.suite.grid`` takes a setting where the change is positive (recorded in
``benchmarks/results/suite.md``). ``--data`` is a prepared dataset folder (default: prepare the
default Stack Exchange data into a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _output import print_and_save

from qaembed.suite.grid import build_suite_config, expand_runs
from qaembed.suite.runner import train_config_for, train_question_ids
from qaembed.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--lrs", default="1e-5,2e-5,5e-5")
    parser.add_argument("--budgets", default="1200,2400")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dev-questions", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qaembed-sweep-"))
    dataset = args.data
    if dataset is None:
        from qaembed.suite.dataset import resolve_suite_data

        dataset = resolve_suite_data(None, work, progress=False).dataset_dir
    base = build_suite_config("cpu", overrides={"max_seq_length": args.max_seq_length, "batch_size": args.batch_size,
                                                "dev_questions": args.dev_questions, "eval_every": None})
    ids, description = train_question_ids(base, dataset)
    ids_file = work / "train_questions.txt"
    ids_file.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")

    rows = []
    for lr in [float(v) for v in args.lrs.split(",")]:
        for budget in [int(v) for v in args.budgets.split(",")]:
            config = base.model_copy(update={"learning_rate": lr, "budget": budget})
            spec = next(r for r in expand_runs(config, "sweep") if r.kind == "train" and r.label == "infonce"
                        and r.seed == 0)
            train_config = train_config_for(spec, config, dataset, ids_file)
            started = time.perf_counter()
            run_dir = work / f"lr{lr}-b{budget}"
            result = train(train_config, run_dir, progress_bar=False)
            wall = time.perf_counter() - started
            curve = [line for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "dev/" in line]
            dev = [json.loads(line)["dev/retrieval/graded_ndcg@10"] for line in curve]
            rows.append((lr, budget, result.steps, result.texts, dev[0], dev[-1], wall))
            print(f"lr {lr:g} budget {budget}: dev {dev[0]:.4f} -> {dev[-1]:.4f} ({dev[-1] - dev[0]:+.4f}), "
                  f"{result.steps} steps, {wall:.0f} s", flush=True)

    lines = [
        "| learning rate | budget (texts) | steps | texts spent | dev graded NDCG@10 at step 0 | at the end | change | wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {lr:g} | {budget:,} | {steps} | {texts:,} | {d0:.4f} | {d1:.4f} | {d1 - d0:+.4f} | {wall:.0f} |"
              for lr, budget, steps, texts, d0, d1, wall in rows]
    header = (f"Reference entry infonce (hard_negative), seed 0, batch {args.batch_size}, max length "
              f"{args.max_seq_length}, first {args.dev_questions} dev questions; training questions: {description}.\n\n")
    print_and_save(header + "\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
