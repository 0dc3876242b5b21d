"""Candidate filters and selection of mine_negatives, on similarities chosen by hand.

Question q0 is the unit vector e1. Each answer is a unit vector whose cosine with q0 is
chosen (``c``) and whose remaining part points in a chosen direction ``phi`` of the e2-e3
plane, so answers with different ``phi`` are not near-duplicates of each other. Other
questions' queries point along e4, away from every answer.
"""

from __future__ import annotations

import math

import pytest

from qaembed.errors import ConfigError, DataError
from qaembed.mining import MiningConfig, mine_negatives
from qaembed.mining.mine import FILTERS
from qaembed.records import Answer, QARecord

ANSWERS = {  # answer text -> (cosine with q0, phi)
    "Grind it fine and tamp firmly.": (0.955, 0.0),  # q0's top answer: the positive
    "Use a finer grind.": (0.999, math.pi / 2),  # q0's own lower answer: most similar, never a negative
    "A finer grind gives more extraction.": (0.969, math.pi),  # more similar than the positive
    "Try a darker roast.": (0.878, 3 * math.pi / 2),
    "Preheat the cup.": (0.765, math.pi / 2),
    "Descale the machine monthly.": (0.622, math.pi),
    "grind it FINE and  tamp firmly.": (0.170, math.pi),  # normalized-text duplicate of the positive
    "Grind it fine, then tamp firmly.": (0.952, 0.0),  # cosine near-duplicate of the positive (0.9996)
}


def _vec(cosine: float, phi: float) -> list[float]:
    rest = math.sqrt(1 - cosine**2)
    return [cosine, rest * math.cos(phi), rest * math.sin(phi), 0.0]


def _records() -> list[QARecord]:
    texts = list(ANSWERS)
    records = [QARecord(id="q0", title="How do I pull a better espresso shot?", answers=[
        Answer(id="q0.a", text=texts[0], score=5), Answer(id="q0.b", text=texts[1], score=1)])]
    for i, text in enumerate(texts[2:], start=1):
        records.append(QARecord(id=f"q{i}", title=f"Other question {i}", answers=[Answer(id=f"q{i}.a", text=text, score=1)]))
    return records


def _encoder(table_encoder):
    vectors = {text: _vec(*spec) for text, spec in ANSWERS.items()}
    vectors["How do I pull a better espresso shot?"] = [1.0, 0.0, 0.0, 0.0]
    for i in range(1, 7):
        vectors[f"Other question {i}"] = [0.0, 0.1 * i, 0.0, 1.0]
    return table_encoder(vectors)


def _q0_negatives(table_encoder, **options) -> list[str]:
    config = MiningConfig(cache=False, device="cpu", **options)
    result = mine_negatives(_records(), _encoder(table_encoder), config)
    return [n.text for n in result.records[0].negatives], result


def test_own_answers_and_near_duplicates_are_never_negatives(table_encoder):
    texts, result = _q0_negatives(table_encoder, relative_margin=None, num_negatives=6, range_max=9)
    assert texts == ["A finer grind gives more extraction.", "Try a darker roast.", "Preheat the cup.",
                     "Descale the machine monthly."]
    assert result.statistics["removed"]["own_answer"] >= 2  # q0's two answers (other questions add theirs)
    assert result.statistics["removed"]["near_duplicate"] >= 2
    negative = result.records[0].negatives[0]
    assert (negative.id, negative.question_id) == ("q1.a", "q1")
    assert negative.similarity == pytest.approx(0.969, abs=1e-5)
    assert negative.rank == 1  # raw rank among all answers: only q0's own lower answer is more similar


def test_near_duplicate_cosine_threshold_is_an_option(table_encoder):
    texts, _ = _q0_negatives(table_encoder, relative_margin=None, near_duplicate_cosine=None, num_negatives=2, range_max=9)
    assert texts == ["A finer grind gives more extraction.", "Grind it fine, then tamp firmly."]


def test_margins_remove_candidates_close_to_the_positive(table_encoder):
    relative, result = _q0_negatives(table_encoder, num_negatives=2, range_max=9)  # default relative 0.05
    assert relative == ["Try a darker roast.", "Preheat the cup."]
    assert result.statistics["removed"]["relative_margin"] >= 1
    absolute, _ = _q0_negatives(table_encoder, absolute_margin=0.1, num_negatives=2, range_max=9)
    assert absolute == ["Preheat the cup.", "Descale the machine monthly."]  # 0.878 + 0.1 > 0.955


def test_max_score_and_range_min(table_encoder):
    capped, _ = _q0_negatives(table_encoder, relative_margin=None, max_score=0.8, num_negatives=2, range_max=9)
    assert capped == ["Preheat the cup.", "Descale the machine monthly."]
    skipped, result = _q0_negatives(table_encoder, num_negatives=1, range_min=1, range_max=9)
    assert skipped == ["Preheat the cup."]  # survivors: darker roast (skipped), preheat, descale
    assert result.statistics["removed"]["range_min"] >= 1


def test_fewer_survivors_than_k_gives_fewer_negatives(table_encoder):
    texts, result = _q0_negatives(table_encoder, max_score=0.7, num_negatives=3, range_max=9)
    assert texts == ["Descale the machine monthly."]
    assert result.statistics["questions_with_fewer_than_k"] >= 1


def test_random_sampling_is_seeded_and_stays_in_the_window(table_encoder):
    window = {"Try a darker roast.", "Preheat the cup.", "Descale the machine monthly."}
    draws = set()
    for seed in range(8):
        texts, _ = _q0_negatives(table_encoder, sampling="random", seed=seed, num_negatives=2, range_max=9)
        assert set(texts) <= window and len(texts) == 2
        assert texts == _q0_negatives(table_encoder, sampling="random", seed=seed, num_negatives=2, range_max=9)[0]
        draws.add(tuple(texts))
    assert len(draws) > 1


def test_inputs_are_not_modified_and_statistics_are_consistent(table_encoder):
    records = _records()
    config = MiningConfig(cache=False, device="cpu", num_negatives=2, range_max=9)
    result = mine_negatives(records, _encoder(table_encoder), config)
    assert all(not r.negatives for r in records)
    stats = result.statistics
    assert set(stats["removed"]) == set(FILTERS)
    assert stats["negatives"] == sum(len(r.negatives) for r in result.records)
    assert stats["similarity"]["negative"]["count"] == stats["negatives"]
    assert stats["similarity"]["positive"]["count"] == len(records)
    for record in result.records:
        own = {a.text for a in record.answers}
        assert not own & {n.text for n in record.negatives}


def test_question_without_answers_is_a_data_error(table_encoder):
    records = _records() + [QARecord(id="q9", title="Unanswered")]
    with pytest.raises(DataError, match="q9.*no answers") as info:
        mine_negatives(records, _encoder(table_encoder), MiningConfig(cache=False), source_path="train.jsonl")
    assert (info.value.line, info.value.field) == (len(records), "answers")
    with pytest.raises(DataError, match="no questions"):
        mine_negatives([], _encoder(table_encoder), MiningConfig(cache=False))


def test_k_larger_than_the_candidate_pool_is_a_config_error(table_encoder):
    with pytest.raises(ConfigError, match="candidate pool.*q0.*only 6"):
        mine_negatives(_records(), _encoder(table_encoder), MiningConfig(cache=False, num_negatives=7, range_max=20))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(range_min=5, range_max=3), "range_min \\(5\\) must be smaller than range_max \\(3\\)"),
        (dict(range_min=2, range_max=2), "must be smaller"),
        (dict(num_negatives=4, range_min=2, range_max=5), "num_negatives \\(4\\) is larger than the rank window"),
        (dict(absolute_margin=0.1, relative_margin=0.1), "at most one of absolute_margin and relative_margin"),
        (dict(sampling="hardest"), "sampling"),
        (dict(num_negatives=0), "num_negatives"),
        (dict(index="flat"), "index"),
        # --max-score nan removed nothing (every comparison with NaN is false) and mining.json held a bare NaN
        (dict(max_score=float("nan")), "option 'max_score': Input should be a finite number"),
        (dict(absolute_margin=float("nan")), "option 'absolute_margin': Input should be a finite number"),
        (dict(relative_margin=float("inf")), "option 'relative_margin': Input should be a finite number"),
    ],
)
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        MiningConfig.from_options(**options)


def test_default_range_max_follows_sentence_transformers():
    assert MiningConfig(num_negatives=3, relative_margin=None, near_duplicate_cosine=None).effective_range_max(2) == 5
    assert MiningConfig(num_negatives=3, range_min=4).effective_range_max(2) == 36
    assert MiningConfig(range_max=50).effective_range_max(7) == 50


def test_chunked_filtering_matches_one_chunk(table_encoder, monkeypatch):
    """Results do not depend on how many questions are filtered at once."""
    import qaembed.mining.mine as mine_module

    config = MiningConfig(cache=False, device="cpu", num_negatives=2, range_max=9)
    whole = mine_negatives(_records(), _encoder(table_encoder), config)
    monkeypatch.setattr(mine_module, "_FILTER_ELEMENTS", 1)  # one question per chunk
    chunked = mine_negatives(_records(), _encoder(table_encoder), config)
    assert [r.negatives for r in chunked.records] == [r.negatives for r in whole.records]
    assert chunked.statistics == whole.statistics
    assert sum(len(r.negatives) for r in whole.records) > 0


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_faiss_indexes_mine_the_same_negatives_on_a_small_corpus(table_encoder, index):
    """On 8 answers IVF probes every cell and HNSW visits every node: both are exact here."""
    exact, _ = _q0_negatives(table_encoder, index="exact", num_negatives=3, range_max=9)
    approximate, result = _q0_negatives(table_encoder, index=index, num_negatives=3, range_max=9)
    assert approximate == exact and result.search["index"] == index
