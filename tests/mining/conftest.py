"""Fixtures for mining tests: a small synthetic Q&A split and a table-driven encoder.

``qa_records`` is 30 questions about 10 coffee topics with 1-3 answers each (realistic
enough that all-MiniLM-L6-v2 finds topical neighbours; every question and answer text is
unique, so sentence-transformers' text deduplication changes nothing).

``TableEncoder`` maps each text to a vector given by the test, so filter behaviour can be
checked against similarities chosen by hand; it has the small part of the
SentenceTransformer interface that mining uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qaembed.data.dataset import write_jsonl_records
from qaembed.records import Answer, QARecord

TOPICS = [
    "espresso", "French press", "cold brew", "pour-over", "burr grinder",
    "decaf coffee", "latte art", "green coffee beans", "milk frothing", "moka pot",
]
ASPECTS = [
    ("What grind size should I use for {t}?", [
        "For {t} a {g} grind works best; adjust by taste.",
        "I keep the grind for {t} {g}; too fine makes it bitter.",
    ]),
    ("How hot should the water be for {t}?", [
        "Keep the water for {t} around {w} degrees Celsius.",
        "Water just off the boil, about {w} C, is right for {t}.",
        "I never measured; for {t} I wait {s} seconds after boiling.",
    ]),
    ("How should I store supplies for {t}?", [
        "Store what you use for {t} in an airtight jar away from light.",
    ]),
]
GRINDS = ["fine", "coarse", "extra coarse", "medium-fine", "adjustable", "medium", "fine", "medium", "fine", "fine"]


def make_records() -> list[QARecord]:
    records = []
    for t_index, topic in enumerate(TOPICS):
        for a_index, (question, answers) in enumerate(ASPECTS):
            q_id = f"t:{t_index}-{a_index}"
            values = dict(t=topic, g=GRINDS[t_index], w=88 + t_index, s=20 + 3 * t_index)
            records.append(QARecord(
                id=q_id,
                title=question.format(**values),
                body=f"I am new to {topic} and want to get it right.",
                answers=[
                    Answer(id=f"{q_id}.{k}", text=text.format(**values), score=len(answers) - k + (t_index % 2))
                    for k, text in enumerate(answers)
                ],
            ))
    return records


@pytest.fixture()
def qa_records() -> list[QARecord]:
    return make_records()


@pytest.fixture()
def qa_dataset(tmp_path: Path, qa_records) -> Path:
    """A prepared dataset folder: train = the 30 questions, dev/test = a few of them, plus a manifest."""
    folder = tmp_path / "prepared"
    write_jsonl_records(folder / "train.jsonl", qa_records)
    write_jsonl_records(folder / "dev.jsonl", qa_records[:2])
    write_jsonl_records(folder / "test.jsonl", qa_records[2:4])
    (folder / "manifest.json").write_text('{"seed": 0}\n')
    return folder


class TableEncoder:
    """Encodes each text to the vector the test gave for it (L2-normalized when asked)."""

    prompts: dict = {}
    default_prompt_name = None
    max_seq_length = 16

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = {text: np.asarray(v, dtype=np.float32) for text, v in vectors.items()}
        self.calls = 0

    def get_embedding_dimension(self) -> int:
        return len(next(iter(self.vectors.values())))

    def _encode(self, texts, normalize_embeddings=False, **_):
        self.calls += 1
        out = np.stack([self.vectors[t] for t in texts])
        if normalize_embeddings:
            out = out / np.linalg.norm(out, axis=1, keepdims=True)
        return out

    encode_query = _encode
    encode_document = _encode


@pytest.fixture()
def table_encoder():
    return TableEncoder
