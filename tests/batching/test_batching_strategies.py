"""Batching strategies: labels, dedup, reproducible seeded order, eligibility, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qaembed.batching import (
    STRATEGIES,
    DocChoice,
    assemble_batch,
    build_strategy,
    length_aware_batches,
    normalize_votes,
)
from qaembed.errors import ConfigError


def all_in_one_batch(strategy_name, records, **options):
    strategy = build_strategy(strategy_name, options)
    (batch,) = list(strategy.batches(records, batch_size=len(records), seed=0))
    return batch


def row(batch, qid):
    return batch.query_ids.index(qid)


def col(batch, text):
    return batch.docs.index(text)


def test_hard_negative_labels_on_fixture(qa_records):
    batch = all_in_one_batch("hard_negative", qa_records)
    i = row(batch, "q0")
    cols = [col(batch, t) for t in ("roast barley and patience", "use lots of hops", "buy one")]
    assert batch.relevance[i, cols].tolist() == [1.0, 0.5, 0.0]
    assert batch.rank[i, cols].tolist() == [0, 1, 2]
    assert batch.positive[i, cols].tolist() == [True, False, False]
    assert batch.known[i].sum() == 3 and batch.positive[i].sum() == 1
    # other questions' docs are unknown with rank -1 and relevance 0
    other = col(batch, "hops")
    assert not batch.known[i, other] and batch.rank[i, other] == -1 and batch.relevance[i, other] == 0
    # all-tied question: every answer gets relevance 1.0, one positive (the first by id)
    t = row(batch, "q3")
    assert batch.relevance[t, batch.known[t]].tolist() == [1.0, 1.0, 1.0]
    assert batch.docs[int(batch.positive[t].nonzero())] == "yes it is"


def test_shared_answer_text_is_one_column_with_both_labels(qa_records):
    batch = all_in_one_batch("hard_negative", qa_records)
    assert len(batch.docs) == len(set(batch.docs))
    shared = col(batch, "buy one")
    q0, q4 = row(batch, "q0"), row(batch, "q4")
    assert batch.known[[q0, q4], shared].tolist() == [True, True]
    assert batch.rank[[q0, q4], shared].tolist() == [2, 1]
    assert batch.relevance[q4, shared] == 0.0 and batch.relevance[q0, shared] == 0.0
    total_answers = sum(len(r.answers) for r in qa_records)
    assert batch.num_docs == total_answers - 1


def test_assemble_keeps_the_max_label_when_a_pair_repeats():
    batch = assemble_batch(
        ["q"], ["q"], [[DocChoice("a", "same", 0.2, False, 3), DocChoice("b", "same", 0.9, True, 1)]]
    )
    assert batch.docs == ["same"] and batch.doc_ids == ["a"]
    assert batch.relevance.tolist() == [[pytest.approx(0.9)]]
    assert batch.positive.tolist() == [[True]] and batch.rank.tolist() == [[1]]


def test_multiple_positives_and_listwise_selection(qa_records):
    batch = all_in_one_batch("multiple_positives", qa_records, pos_count=2)
    assert batch.positive.sum(dim=1).tolist() == [min(2, len(r.answers)) for r in _by_ids(qa_records, batch)]
    assert torch.equal(batch.positive, batch.known)
    listwise = all_in_one_batch("listwise", qa_records, max_answers=3)
    assert set(listwise.query_ids) == {r.id for r in qa_records if len(r.answers) >= 2}
    assert listwise.known[row(listwise, "q5")].sum() == 3
    assert listwise.positive.sum(dim=1).eq(1).all()


def test_infonce_take_top_and_seeded_random_answer(qa_records):
    top = all_in_one_batch("infonce", qa_records)
    assert top.docs[int(top.positive[row(top, "q5")].nonzero())] == "two weeks for ales"
    strategy = build_strategy("infonce", {"take_top": False})
    picks = {
        seed: [b.docs for b in strategy.batches(qa_records, batch_size=8, seed=seed)] for seed in (0, 1, 2, 3)
    }
    again = [b.docs for b in strategy.batches(qa_records, batch_size=8, seed=0)]
    assert picks[0] == again
    assert len({tuple(sorted(p[0])) for p in picks.values()}) > 1  # different seeds pick different answers


@pytest.mark.parametrize("neg_strategy", ["hard_negative", "in_batch", "mixed"])
def test_triplet_has_one_positive_and_one_negative(qa_records, neg_strategy):
    batch = all_in_one_batch("triplet", qa_records, neg_strategy=neg_strategy)
    assert batch.positive.sum(dim=1).eq(1).all()
    assert batch.hard_negative.sum(dim=1).eq(1).all()
    from_batch = batch.hard_negative & (batch.rank < 0)
    if neg_strategy == "hard_negative":
        assert "q2" not in batch.query_ids and not from_batch.any()
    if neg_strategy == "in_batch":
        assert from_batch.sum(dim=1).eq(1).all()
        # the negative is another question's positive, with relevance 0
        assert (batch.positive.any(dim=0) | batch.hard_negative.any(dim=0)).all()
        assert batch.relevance[from_batch].eq(0).all()
        assert not (from_batch & batch.positive).any()


def test_order_reproducible_per_seed_and_epoch(qa_records):
    strategy = build_strategy("hard_negative")
    run = lambda seed, epoch: [b.query_ids for b in strategy.batches(qa_records, 3, seed=seed, epoch=epoch)]  # noqa: E731
    assert run(0, 0) == run(0, 0)
    assert run(0, 0) != run(0, 1) or run(0, 0) != run(1, 0)
    ids = [qid for batch in run(0, 0) for qid in batch]
    assert sorted(ids) == sorted(r.id for r in qa_records)  # every question once per epoch
    assert [len(b) for b in run(0, 0)].count(3) == 2 and strategy.num_batches(qa_records, 3) == 3


def test_strategies_share_the_question_order(qa_records):
    orders = {
        name: [b.query_ids for b in build_strategy(name).batches(qa_records, 3, seed=5, epoch=2)]
        for name in ("infonce", "multiple_positives", "hard_negative")
    }
    assert orders["infonce"] == orders["multiple_positives"] == orders["hard_negative"]


def test_sampler_sorts_by_length_within_buckets():
    lengths = np.random.default_rng(0).integers(1, 1000, size=400)
    batches = length_aware_batches(lengths, batch_size=10, seed=3, epoch=0, bucket_batches=40)
    assert sorted(i for b in batches for i in b) == list(range(400))
    # one bucket: every batch is a sorted, contiguous slice of lengths
    for b in batches:
        assert list(lengths[b]) == sorted(lengths[b])
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    random_spread = np.mean([np.ptp(lengths[i : i + 10]) for i in range(0, 400, 10)])
    assert spread < random_spread / 5
    assert batches != length_aware_batches(lengths, batch_size=10, seed=4, epoch=0, bucket_batches=40)
    assert length_aware_batches(lengths, 10, 3, 0, 40) == batches


def test_drop_last_drops_only_the_short_batch():
    batches = length_aware_batches(list(range(25)), batch_size=10, seed=0, epoch=0, drop_last=True)
    assert sorted(len(b) for b in batches) == [10, 10]


@pytest.mark.parametrize(
    ("method", "votes", "expected"),
    [
        ("minmax", [4, 2, 0], [1.0, 0.5, 0.0]),
        ("rank", [4, 2, 2, 0], [1.0, 2 / 3, 2 / 3, 0.0]),
        ("softmax", [1, 0], [1.0, float(np.exp(-2.0))]),
        ("minmax", [3, 3, 3], [1.0, 1.0, 1.0]),
        ("rank", [5], [1.0]),
    ],
)
def test_normalize_votes(method, votes, expected):
    assert normalize_votes(votes, method, temperature=0.5).tolist() == pytest.approx(expected)


def test_relevance_option_changes_labels(qa_records):
    batch = all_in_one_batch("hard_negative", qa_records, relevance="rank")
    i = row(batch, "q5")
    assert sorted(batch.relevance[i][batch.known[i]].tolist(), reverse=True) == pytest.approx([1, 2 / 3, 1 / 3, 0])


def test_query_text_option(qa_records):
    assert all_in_one_batch("infonce", qa_records, query_text="title").queries[0] in {r.title for r in qa_records}
    body = all_in_one_batch("infonce", qa_records, query_text="title_body").queries[0]
    assert body.startswith(tuple(r.title for r in qa_records)) and "details of" in body


@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        ("nope", {}, "unknown batching strategy 'nope'; allowed: hard_negative, infonce, listwise, "),
        ("infonce", {"take_topp": True}, "unknown option 'take_topp' (allowed: query_text"),
        ("multiple_positives", {"pos_count": 0}, "option 'pos_count': Input should be greater than or equal to 1"),
        ("triplet", {"neg_strategy": "random"}, "option 'neg_strategy': Input should be 'hard_negative', 'in_batch', "),
        ("hard_negative", {"relevance": "zscore"}, "option 'relevance'"),
    ],
)
def test_strategy_config_errors_name_field_and_allowed(name, options, fragment):
    with pytest.raises(ConfigError) as info:
        build_strategy(name, options)
    assert fragment in str(info.value)


def test_every_strategy_yields_valid_batches(qa_records):
    for name in sorted(name for name, cls in STRATEGIES.items() if cls.data_kind == "qa" and name != "mined"):  # mined needs mined records (tests/batching/test_mined*); pairs: test_batching_pairs.py
        for batch in build_strategy(name).batches(qa_records, batch_size=3, seed=1):
            assert batch.num_queries <= 3
            assert batch.positive.any(dim=1).all()


def _by_ids(records, batch):
    by_id = {r.id: r for r in records}
    return [by_id[qid] for qid in batch.query_ids]
