"""qaembed's miner chooses the same negatives as sentence-transformers' ``mine_hard_negatives``.

Like with like: ``mine_hard_negatives`` works on (query, positive) rows, treats every row
of a repeated query as one of its positives (masked from its candidates, and the margin
is taken from the *weakest* positive), and searches ``dedup(corpus + positives)``.

* Without a margin, the equivalent input is one row per (question, answer) for every
  answer, with the corpus left to default to the positives, i.e. all answers: the
  question's own answers are masked exactly as qaembed masks them.
* With a margin, qaembed measures it from the top-voted answer, so the comparison uses the
  same questions with only their top answer: one row per question, corpus = all answers.

qaembed's extra near-duplicate cosine filter is switched off (``near_duplicate_cosine=None``);
the fixture has no normalized-text duplicates, so its normalized-text check removes nothing.
Both sides use the real all-MiniLM-L6-v2 and ``top`` sampling.
"""

from __future__ import annotations

import pytest

from qaembed.mining import MiningConfig, mine_negatives
from qaembed.mining.mine import normalize_text
from qaembed.records import question_text


def _st_negatives(model, rows, corpus, cache, **settings) -> dict[str, list[tuple[str, float]]]:
    """Per query, the negatives (text, similarity) mined for its top-answer row, best first."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    dataset = Dataset.from_dict({"query": [q for q, _ in rows], "answer": [a for _, a in rows]})
    mined = mine_hard_negatives(
        dataset, model, corpus=corpus, output_format="triplet", output_scores=True, verbose=False,
        cache_folder=str(cache), **settings,
    )
    first_positive = {}
    for query, answer in rows:
        first_positive.setdefault(query, answer)
    out: dict[str, list[tuple[str, float]]] = {}
    for row in mined:
        if row["answer"] == first_positive[row["query"]]:
            out.setdefault(row["query"], []).append((row["negative"], row["scores"][1]))
    return out


def _ours(model, records, cache, **settings) -> dict[str, list[tuple[str, float]]]:
    config = MiningConfig(device="cpu", near_duplicate_cosine=None, **settings)
    result = mine_negatives(records, model, config, cache_folder=cache, model_id="minilm-under-test")
    return {
        question_text(r, config.question_text): [(n.text, n.similarity) for n in r.negatives]
        for r in result.records
        if r.negatives
    }


def _assert_same(ours, theirs):
    assert ours.keys() == theirs.keys()
    for query in theirs:
        assert [t for t, _ in ours[query]] == [t for t, _ in theirs[query]], query
        assert [s for _, s in ours[query]] == pytest.approx([s for _, s in theirs[query]], abs=1e-5)


@pytest.fixture(scope="module")
def mining_model(_minilm_session):
    return _minilm_session  # read-only use: encode only


@pytest.fixture(scope="module")
def embedding_cache(tmp_path_factory):
    """One embedding cache per side for the module, so each text set is encoded once."""
    return tmp_path_factory.mktemp("st-cache"), tmp_path_factory.mktemp("qaembed-cache")


def test_fixture_has_no_normalized_duplicates(qa_records):
    texts = [a.text for r in qa_records for a in r.answers]
    assert len({normalize_text(t) for t in texts}) == len(texts)


@pytest.mark.parametrize(
    "settings",
    [
        dict(num_negatives=3, range_max=12),
        dict(num_negatives=4, range_min=2, range_max=15, max_score=0.75),
    ],
)
def test_all_answers_masked_without_margin(mining_model, embedding_cache, qa_records, settings):
    records = qa_records
    rows = [(question_text(r), a.text) for r in records for a in r.answers]
    theirs = _st_negatives(mining_model, rows, None, embedding_cache[0], **settings)
    ours = _ours(mining_model, records, embedding_cache[1], relative_margin=None, **settings)
    _assert_same(ours, theirs)
    assert sum(len(v) for v in ours.values()) >= 2 * len(records)  # the comparison covers real output


@pytest.mark.parametrize(
    "settings",
    [
        dict(num_negatives=3, relative_margin=0.05),
        dict(num_negatives=3, range_min=1, absolute_margin=0.05, max_score=0.7),
    ],
)
def test_top_answer_margin(mining_model, embedding_cache, qa_records, settings):
    records = [r.model_copy(update={"answers": [r.top_answer()]}) for r in qa_records]
    all_answers = [a.text for r in qa_records for a in r.answers]
    rows = [(question_text(r), r.answers[0].text) for r in records]
    theirs = _st_negatives(mining_model, rows, all_answers, embedding_cache[0], **settings)
    # The same records, but with all their answers in the corpus: ours searches every
    # answer of the split; give the other answers to throwaway questions that are not compared.
    ours = _ours(mining_model, records + _holders(qa_records), embedding_cache[1], **settings)
    ours = {q: v for q, v in ours.items() if q in {question for question, _ in rows}}
    _assert_same(ours, theirs)
    assert sum(len(v) for v in ours.values()) >= len(records)


def _holders(records):
    """One throwaway question per non-top answer, so the corpus is all answers; never compared.

    One answer each keeps ``max_answers`` at 1, as in the one-row-per-query dataset.
    """
    from qaembed.records import QARecord

    return [
        QARecord(id=f"holder:{a.id}", title=f"holder {a.id}", answers=[a])
        for r in records
        for a in r.answers
        if a.id != r.top_answer().id
    ]
