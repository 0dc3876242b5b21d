"""Tiny Q&A records and deterministic fake encoders for evaluation tests.

Questions are titled ``Q<i>`` and answers read ``A<i>:<votes>:<j>``; the oracle encoder puts
question ``i`` on axis ``i`` and tilts each answer away from it by an amount that grows
as its votes fall (or, reversed, as they rise), so the ideal ranking is known exactly.
"""

from __future__ import annotations

import numpy as np

from qaembed.records import Answer, QARecord

TILT = 0.05


def make_records(votes_per_question: list[list[float]], prefix: str = "t") -> list[QARecord]:
    return [
        QARecord(
            id=f"{prefix}:{i}",
            title=f"Q{i}",
            answers=[Answer(id=f"{prefix}:{i}.{j}", text=f"A{i}:{v:g}:{j}", score=v) for j, v in enumerate(votes)],
        )
        for i, votes in enumerate(votes_per_question)
    ]


def oracle_encoder(num_questions: int, reverse: bool = False, calls: list | None = None):
    """Encode ``Q<i>`` as axis i; ``A<i>:<v>:<j>`` as axis i tilted by TILT * (100 - v) (or v + 100 if reverse).

    Answers with equal votes get equal embeddings; ``X<i>`` (a distractor) is exactly axis i.
    """
    dim = num_questions + 1

    def encode(texts: list[str]) -> np.ndarray:
        if calls is not None:
            calls.append(list(texts))
        out = np.zeros((len(texts), dim))
        for row, text in enumerate(texts):
            if text.startswith("Q"):
                out[row, int(text[1:])] = 1.0
            elif text.startswith("X"):
                out[row, int(text[1:])] = 1.0
            else:
                question, votes, _ = text[1:].split(":")
                out[row, int(question)] = 1.0
                out[row, -1] = TILT * ((float(votes) + 100) if reverse else (100 - float(votes)))
        return out

    return encode


def random_encoder(dim: int = 8):
    """A fixed random embedding per distinct text (stable across calls)."""
    table: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)

    def encode(texts: list[str]) -> np.ndarray:
        for text in texts:
            if text not in table:
                table[text] = rng.normal(size=dim)
        return np.stack([table[text] for text in texts])

    return encode
