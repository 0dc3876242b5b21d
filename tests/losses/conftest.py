"""Loss test fixtures: small ranking batches built by the real strategies."""

from __future__ import annotations

import pytest

from qaembed.batching import build_strategy
from qaembed.records import Answer, MinedNegative, QARecord


def _record(qid: str, answers: list[tuple[str, float]], mined: tuple[str, ...] = ()) -> QARecord:
    """``mined``: texts of other questions' answers (as ``qaembed mine`` would attach; "x.aN" ids)."""
    return QARecord(
        id=qid,
        title=f"question {qid}",
        answers=[Answer(id=f"{qid}.a{j}", text=text, score=score) for j, (text, score) in enumerate(answers)],
        negatives=[
            MinedNegative(id=f"m{k}.{qid}", text=text, question_id="other", similarity=0.9 - k / 10, rank=k)
            for k, text in enumerate(mined)
        ],
    )


LOSS_RECORDS = [
    _record("q0", [("a0 top", 10), ("a0 mid", 5), ("a0 low", 0)], mined=("unrelated mined answer", "a1 low")),
    _record("q1", [("a1 top", 7), ("a1 low", 3)], mined=("another mined answer",)),
    _record("q2", [("a2 only", 4)]),
    _record("q3", [("a3 top", 9), ("a3 second", 8), ("a3 third", 1), ("a3 last", -2)]),
    _record("q4", [("a4 top", 3), ("a4 low", 1)]),
]


@pytest.fixture()
def make_batch():
    """make_batch(strategy, **options): one batch holding every fixture question the strategy accepts."""

    def make(strategy: str, **options):
        (batch,) = list(build_strategy(strategy, options).batches(LOSS_RECORDS, batch_size=len(LOSS_RECORDS), seed=0))
        return batch

    return make
