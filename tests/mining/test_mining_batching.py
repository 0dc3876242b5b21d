"""Mined negatives in batches: the ``mined`` strategy and ``triplet`` with ``neg_strategy="mined"``.

The case that matters: question A's mined negatives are question B's top answer and B's
second answer, and B is in the same batch. Each document must carry B's own label for B
(positive / known and relevant) and be a known negative (relevance 0) for A.
"""

from __future__ import annotations

import numpy as np
import pytest

from qaembed.batching import build_strategy
from qaembed.errors import DataError
from qaembed.records import Answer, MinedNegative, QARecord

B_TOP = "Use water at 93 degrees."
B_SECOND = "Boiling water scorches the grounds."


def _records() -> list[QARecord]:
    b = QARecord(id="b", title="How hot should brewing water be?", answers=[
        Answer(id="b1", text=B_TOP, score=10), Answer(id="b2", text=B_SECOND, score=4), Answer(id="b3", text="Taste.", score=0)])
    a = QARecord(
        id="a", title="Why is my coffee bitter?",
        answers=[Answer(id="a1", text="Grind coarser.", score=3)],
        negatives=[
            MinedNegative(id="b1", text=B_TOP, question_id="b", similarity=0.7, rank=0),
            MinedNegative(id="b2", text=B_SECOND, question_id="b", similarity=0.6, rank=1),
            MinedNegative(id="c1", text="Store beans airtight.", question_id="c", similarity=0.5, rank=2),
        ],
    )
    return [a, b]


def _column(batch, text):
    return batch.docs.index(text)


def test_mined_strategy_marks_coinciding_documents_for_both_questions():
    a, b = _records()
    batch = build_strategy("mined").build_batch([a, b], np.random.default_rng(0))
    row_a, row_b = batch.query_ids.index("a"), batch.query_ids.index("b")
    top, second, other = _column(batch, B_TOP), _column(batch, B_SECOND), _column(batch, "Store beans airtight.")
    # For B (the owner): its top answer is a positive, its second answer known and relevant.
    assert batch.positive[row_b, top] and batch.known[row_b, top] and batch.relevance[row_b, top] == 1.0
    assert batch.known[row_b, second] and not batch.positive[row_b, second]
    assert 0 < batch.relevance[row_b, second] < 1 and batch.rank[row_b, second] == 1
    assert not batch.in_batch_negative[row_b, second]
    # For A (the mining question): all three are known negatives with relevance 0.
    for col in (top, second, other):
        assert batch.known[row_a, col] and not batch.positive[row_a, col]
        assert batch.relevance[row_a, col] == 0 and batch.rank[row_a, col] == -1
    assert batch.hard_negative[row_a].sum() == 3
    # The third-party negative is an in-batch negative for B (not B's answer).
    assert batch.in_batch_negative[row_b, other]
    # B's lowest answer was never brought by anyone: not in the batch.
    assert "Taste." not in batch.docs


def test_mined_strategy_num_negatives_takes_the_most_similar():
    a, b = _records()
    batch = build_strategy("mined", {"num_negatives": 1}).build_batch([a], np.random.default_rng(0))
    assert batch.docs == ["Grind coarser.", B_TOP]


def test_mined_strategy_requires_a_mined_dataset():
    plain = [r.model_copy(update={"negatives": []}) for r in _records()]
    with pytest.raises(DataError, match="qaembed mine"):
        list(build_strategy("mined").batches(plain, batch_size=2, seed=0))
    batches = list(build_strategy("mined").batches(_records(), batch_size=2, seed=0))
    assert [sorted(b.query_ids) for b in batches] == [["a", "b"]]  # B (no negatives of its own) still enters


def test_triplet_mined_labels_the_owner_too():
    a, b = _records()
    b = b.model_copy(update={"negatives": [MinedNegative(id="a1", text="Grind coarser.", question_id="a", similarity=0.4, rank=0)]})
    strategy = build_strategy("triplet", {"neg_strategy": "mined"})
    seen = set()
    for seed in range(12):
        batch = strategy.build_batch([a, b], np.random.default_rng(seed))
        row_a, row_b = batch.query_ids.index("a"), batch.query_ids.index("b")
        extra = [d for d in batch.docs if d not in ("Grind coarser.", B_TOP)]
        negative = extra[0] if extra else B_TOP  # A's drawn negative (B_TOP is already B's positive)
        seen.add(negative)
        col = _column(batch, negative)
        assert batch.known[row_a, col] and not batch.positive[row_a, col] and batch.relevance[row_a, col] == 0
        if negative in (B_TOP, B_SECOND):  # B's own answer: labelled for B, never an in-batch negative
            assert batch.known[row_b, col] and batch.relevance[row_b, col] > 0
        else:
            assert batch.in_batch_negative[row_b, col]
        # B's mined negative is A's top answer: positive for A, known negative for B.
        coarse = _column(batch, "Grind coarser.")
        assert batch.positive[row_a, coarse] and batch.known[row_b, coarse] and not batch.positive[row_b, coarse]
        assert bool((batch.positive & ~batch.known).any()) is False
    assert seen == {B_TOP, B_SECOND, "Store beans airtight."}  # seeded draws cover every mined negative


def test_triplet_mined_skips_questions_without_negatives():
    strategy = build_strategy("triplet", {"neg_strategy": "mined"})
    a, b = _records()
    assert strategy.eligible(a) and not strategy.eligible(b)


def test_triplet_mined_on_unmined_dataset_is_an_error():
    from qaembed.batching import build_strategy
    from qaembed.errors import DataError
    from qaembed.records import Answer, QARecord

    records = [QARecord(id=f"s:{i}", title=f"q{i}", answers=[Answer(id=f"s:a{i}", text=f"a{i}", score=1)]) for i in range(4)]
    strategy = build_strategy("triplet", {"neg_strategy": "mined"})
    with pytest.raises(DataError, match="needs mined negatives"):
        next(iter(strategy.batches(records, batch_size=2, seed=0)))
