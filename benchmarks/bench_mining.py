"""Benchmark: ``qaembed`` mining vs sentence-transformers' ``mine_hard_negatives``, same run.

The claim: mining a Stack Exchange train split takes at most as long as
``mine_hard_negatives`` with the same model and settings (ratio <= 1.0), and picks the
same negatives.

* Data: the train split of a prepared dataset (``--data``), or one prepared here with
  ``qaembed data prepare`` from the Stack Exchange sites on the data search path
  (``--sites`` to restrict them).
* Model: all-MiniLM-L6-v2 (``minilm``), loaded once and shared by both sides.
* Settings, chosen so the two are equivalent (see tests/mining/test_mining_equivalence.py):
  ``num_negatives=3, range_max=30, max_score=0.95``, ``top`` sampling, no margin; qaembed
  with ``near_duplicate_cosine=None``. sentence-transformers gets one (question, answer) row
  per answer, so every own answer is masked as qaembed masks it; exact search on both sides.
* Cold: everything encoded (queries and corpus). Warm: both reuse their on-disk embedding
  cache, which isolates search, filtering and output. Wall seconds and process CPU
  seconds (CPU time is less disturbed by other processes on a shared machine).
* Order: one untimed warm-up encode first; with ``--repeats`` (cold) or ``--warm-repeats``
  (warm, default 5) > 1 the side that goes first alternates, and medians are reported.
* Agreement: share of questions whose negatives (texts, in order) are identical.

Run::

    python benchmarks/bench_mining.py --results benchmarks/results/mining.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _output import print_and_save  # benchmarks/ is on sys.path when run as a script

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SETTINGS = dict(num_negatives=3, range_max=30, max_score=0.95)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def prepare(sites: list[str] | None, folder: Path) -> Path:
    from qaembed.paths import default_stackexchange_sites

    sources = [str(p) for p in default_stackexchange_sites() if sites is None or p.name in sites]
    subprocess.run([sys.executable, "-m", "qaembed", "data", "prepare", *sources, "--out", str(folder)], check=True)
    return folder


def run_st(model, records, cache: Path):
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    from qaembed.records import question_text

    rows = [(question_text(r), a.text) for r in records for a in r.answers]
    dataset = Dataset.from_dict({"query": [q for q, _ in rows], "answer": [a for _, a in rows]})
    mined = mine_hard_negatives(
        dataset, model, output_format="triplet", batch_size=32, verbose=False, cache_folder=str(cache), **SETTINGS
    )
    top = {question_text(r): r.top_answer().text for r in records}
    out: dict[str, list[str]] = {}
    for row in mined:
        if row["answer"] == top[row["query"]]:
            out.setdefault(row["query"], []).append(row["negative"])
    return out


def run_ours(model, records, cache: Path):
    from qaembed.mining import MiningConfig, mine_negatives
    from qaembed.records import question_text

    config = MiningConfig(
        relative_margin=None, near_duplicate_cosine=None, index="exact", device="cpu", batch_size=32, **SETTINGS
    )
    result = mine_negatives(records, model, config, cache_folder=cache, model_id="bench-minilm")
    return {question_text(r): [n.text for n in r.negatives] for r in result.records if r.negatives}, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="prepared dataset folder (default: prepare the SE sites)")
    parser.add_argument("--sites", nargs="*", help="Stack Exchange site folder names to prepare (default: all)")
    parser.add_argument("--results", type=Path, help="write a markdown summary here")
    parser.add_argument("--repeats", type=int, default=1, help="timed cold runs per side (median reported)")
    parser.add_argument("--warm-repeats", type=int, default=5, help="timed warm runs per side (median reported)")
    args = parser.parse_args()

    from qaembed.data.dataset import read_split
    from qaembed.model import load_encoder
    from qaembed.provenance import environment

    with tempfile.TemporaryDirectory(prefix="bench-mining-") as tmp:
        tmp = Path(tmp)
        data = args.data or prepare(args.sites, tmp / "prepared")
        records = read_split(data, "train")
        n_answers = sum(len(r.answers) for r in records)
        model = load_encoder("minilm", device="cpu")
        print(f"{len(records)} train questions, {n_answers} answers", flush=True)

        model.encode([r.title for r in records[:64]], batch_size=32)  # one-time initialization, for neither side

        samples: dict[str, list[float]] = {}

        def record(key: str, wall: float, cpu: float) -> None:
            samples.setdefault(f"{key}_wall", []).append(wall)
            samples.setdefault(f"{key}_cpu", []).append(cpu)

        for phase in ("cold", "warm"):
            for repeat in range(args.repeats if phase == "cold" else args.warm_repeats):
                sides = ("st", "ours") if repeat % 2 == 0 else ("ours", "st")  # alternate who goes first
                for side in sides:
                    cache = tmp / f"{side}-{repeat if phase == 'cold' else args.repeats - 1}"
                    if side == "st":
                        theirs, wall, cpu = timed(lambda: run_st(model, records, cache))
                    else:
                        (ours, result), wall, cpu = timed(lambda: run_ours(model, records, cache))
                        if phase == "cold":
                            cold_result = result
                        else:
                            assert result.search["embeddings_from_cache"] == {"documents": True, "queries": True}
                    record(f"{side}_{phase}", wall, cpu)
        rows = {key: statistics.median(values) for key, values in samples.items()}
        result = cold_result

    questions = set(ours) | set(theirs)
    agree = sum(ours.get(q) == theirs.get(q) for q in questions) / max(len(questions), 1)
    env = environment()
    lines = [
        "# Mining: qaembed vs sentence-transformers `mine_hard_negatives`",
        "",
        f"Command: `python benchmarks/bench_mining.py {' '.join(sys.argv[1:])}`  ",
        f"Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; machine: 2-core CPU, no GPU "
        f"(shared with other jobs: CPU seconds are the steadier number); git {env['git']['commit']} "
        f"(dirty={env['git']['dirty']}); sentence-transformers {env['versions']['sentence-transformers']}, "
        f"torch {env['versions']['torch']}.",
        "",
        f"Data: train split, {len(records)} questions, {n_answers} answers "
        f"({result.statistics['corpus_answers']} unique texts). Model all-MiniLM-L6-v2, batch 32, CPU. "
        f"Settings {SETTINGS}, top sampling, no margin, exact search. Median of {args.repeats} cold and "
        f"{args.warm_repeats} warm run(s) per cell, alternating which side goes first.",
        "",
        "| run | sentence-transformers wall s | qaembed wall s | ratio (wall) | ST CPU s | qaembed CPU s | ratio (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in ("cold", "warm"):
        st_w, us_w = rows[f"st_{phase}_wall"], rows[f"ours_{phase}_wall"]
        st_c, us_c = rows[f"st_{phase}_cpu"], rows[f"ours_{phase}_cpu"]
        label = "cold (encode + search)" if phase == "cold" else "warm (embeddings cached)"
        lines.append(f"| {label} | {st_w:.2f} | {us_w:.2f} | {us_w / st_w:.2f} | {st_c:.2f} | {us_c:.2f} | {us_c / st_c:.2f} |")
    lines += [
        "",
        f"Same negatives (texts and order) for {agree:.1%} of {len(questions)} questions. "
        f"qaembed cold timing split: {', '.join(f'{k} {v:.2f}s' for k, v in result.timing.items())}.",
    ]
    text = "\n".join(lines) + "\n"
    print_and_save(text, args.results)


if __name__ == "__main__":
    main()
