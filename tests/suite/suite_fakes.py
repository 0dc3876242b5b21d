"""Helpers for suite tests: a tiny prepared dataset and a fake run function (no model).

The fake run writes what a real run writes (``train/metrics.jsonl`` and an ``EvalResult`` in
``eval/``) with per-question values drawn from a seeded generator, so that a chosen loss is
truly better than the baseline and another truly equal to it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from qaembed.data.dataset import write_jsonl_records
from qaembed.records import Answer, Author, Provenance, QARecord
from qaembed.suite.grid import GridEntry, SuiteConfig
from qaembed.suite.runner import RunOutcome

N_TEST = 120


def _record(split: str, index: int) -> QARecord:
    site = "beer.stackexchange.com"
    native = f"{split}{index}"
    return QARecord(
        id=f"{site}:{native}", title=f"Question {native} about hops?", body="Body text.",
        answers=[Answer(id=f"{site}:{native}a{k}", text=f"answer {k} to {native}", score=3 - k) for k in range(3)],
        provenance=Provenance(source=f"stackexchange:{site}", site=site, url=f"https://{site}/questions/{native}",
                              author=Author(name=f"user{index}", url=f"https://{site}/users/{index}"),
                              license="CC BY-SA 4.0"),
    )


def write_tiny_dataset(folder: Path) -> Path:
    for split, count in (("train", 40), ("dev", 10), ("test", N_TEST)):
        write_jsonl_records(folder / f"{split}.jsonl", [_record(split, i) for i in range(count)])
    return folder


def write_topic_dataset(folder: Path) -> Path:
    """60 questions on 5 topics with 1-3 graded answers each (36 train / 8 dev / 16 test), for real tiny-model runs."""
    records = [QARecord(id=f"r:{i}", title=f"question {i} about topic {i % 5}?", body="details",
                        answers=[Answer(id=f"r:{i}-{k}", text=f"answer {k} of {i} on topic {i % 5} " + "w " * k,
                                        score=float(3 - k)) for k in range(1 + i % 3)]) for i in range(60)]
    write_jsonl_records(folder / "train.jsonl", records[:36])
    write_jsonl_records(folder / "dev.jsonl", records[36:44])
    write_jsonl_records(folder / "test.jsonl", records[44:])
    return folder


# True effect of each entry on every metric (the baseline is 0).
EFFECTS = {"infonce": 0.15, "listwise": 0.0, "triplet_hard": -0.12}


def tiny_config(dataset: Path, **overrides) -> SuiteConfig:
    entries = [
        GridEntry(name="infonce", loss="infonce", strategy="hard_negative", description="standard InfoNCE"),
        GridEntry(name="listwise", loss="listwise", strategy="listwise", description="listwise"),
        GridEntry(name="triplet_hard", loss="triplet", strategy="triplet", description="triplet"),
    ]
    values = {"data": str(dataset), "budget": 4, "budget_unit": "steps", "entries": entries, **overrides}
    return SuiteConfig(**values)


class FakeRun:
    """A run function that records its calls and can be told to fail for some run ids."""

    def __init__(self, fail: set[str] | None = None, interrupt: set[str] | None = None) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.fail = fail or set()
        self.interrupt = interrupt or set()

    def __call__(self, spec, context, run_dir: Path, resume: bool) -> RunOutcome:
        from qaembed.evaluate.result import EvalResult

        self.calls.append((spec.run_id, resume))
        if spec.run_id in self.interrupt:
            (run_dir / "train").mkdir(parents=True, exist_ok=True)
            raise KeyboardInterrupt
        if spec.run_id in self.fail:
            raise RuntimeError(f"boom in {spec.run_id}")
        effect = EFFECTS.get(spec.label, 0.0)
        question_rng = np.random.default_rng(123)  # the same questions' difficulty for every run
        base = question_rng.uniform(0.2, 0.7, N_TEST)
        # a stable per-label stream (a label's length would give "baseline" and "listwise" the same noise)
        noise_rng = np.random.default_rng([spec.seed, zlib.crc32(spec.label.encode())])
        noise = noise_rng.normal(0, 0.05, N_TEST)
        seed_shift = 0.0 if spec.kind == "baseline" else noise_rng.normal(0, 0.005)
        ndcg = np.clip(base + effect + seed_shift + noise, 0, 1)
        kendall = np.clip(base + effect + noise, -1, 1)
        kendall[::10] = np.nan  # tied votes: undefined for some questions
        per_question = pd.DataFrame(
            {"retrieval/graded_ndcg@10": ndcg, "retrieval/ndcg@10": ndcg, "retrieval/mrr@10": ndcg, "within/accuracy@1": (ndcg > 0.5).astype(float),
             "within/kendall_tau": kendall},
            index=pd.Index([f"beer.stackexchange.com:test{i}" for i in range(N_TEST)], name="question_id"),
        )
        result = EvalResult.from_per_question(per_question, counts={"retrieval/questions": N_TEST})
        result.save(run_dir / "eval")
        if spec.kind == "train":
            lines = [f'{{"step": {s}, "loss": {2.0 / s}}}' for s in range(1, 5)]
            lines += [f'{{"step": {s}, "texts": {40 * s}, "dev/retrieval/graded_ndcg@10": {0.4 + 0.01 * s}}}'
                      for s in (0, 4)]
            (run_dir / "train").mkdir(parents=True, exist_ok=True)
            (run_dir / "train" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        spent = {"steps": 4, "texts": 160, "tokens": 1600, "questions": 48, "question_order": "f" * 64}
        return RunOutcome(summary=result.summary, train_time_s=1.0 if spec.kind == "train" else None,
                          eval_time_s=0.5, texts_per_s=100.0 if spec.kind == "train" else None,
                          spent=spent if spec.kind == "train" else {})
