"""Fixtures for the training tests: a tiny prepared dataset and a config on the tiny model
(``tiny_model_dir``, tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaembed.data.dataset import write_jsonl_records
from qaembed.records import Answer, QARecord

_TOPICS = ["beer", "coffee", "qubits", "teaching", "models", "hops", "espresso", "gates", "algebra", "prompts"]


def _record(index: int, n_answers: int) -> QARecord:
    topic = _TOPICS[index % len(_TOPICS)]
    answers = [
        Answer(id=f"t:{index}-{k}", text=f"answer {k} about {topic} number {index} " + "detail " * (k + index % 4),
               score=float(n_answers - k + (index % 3)))
        for k in range(n_answers)
    ]
    return QARecord(id=f"t:{index}", title=f"question {index} on {topic}?", body=f"I wonder about {topic} {index}.",
                    answers=answers)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A prepared dataset folder: 48 train, 12 dev, 12 test questions with 1-4 graded answers."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    records = [_record(i, 1 + i % 4) for i in range(72)]
    write_jsonl_records(root / "train.jsonl", records[:48])
    write_jsonl_records(root / "dev.jsonl", records[48:60])
    write_jsonl_records(root / "test.jsonl", records[60:])
    return root


@pytest.fixture()
def tiny_config(tiny_model_dir, tiny_dataset):
    """A small valid training config (raw dict) on the tiny model and dataset."""
    return {
        "model": {"base": str(tiny_model_dir), "max_seq_length": 32},
        "data": {"dataset": str(tiny_dataset)},
        "strategy": {"name": "hard_negative"},
        "loss": {"name": "infonce", "options": {"temperature": 0.1}},
        "training": {"batch_size": 8, "max_steps": 6, "lr": 1e-3, "log_every": 1, "save_every": 2,
                     "eval_every": 3, "seed": 3},
    }
