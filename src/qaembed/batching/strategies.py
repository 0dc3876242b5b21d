"""Batching strategies: which questions and answers enter a batch, with which labels.

A strategy never tokenizes; it yields :class:`RankingBatch` objects (see ``batch.py``)
that the collator (``collate.py``) turns into model features. Every strategy shares the
seeded length-aware sampler (``sampler.py``), and ``batch_size`` counts questions
(queries), so different strategies consume questions in the same order wherever their
eligibility rules agree.

Closed set of names (``STRATEGIES``):

========================  ===================================================================
``infonce``               one answer per question: the top-voted (``take_top``) or a seeded random one
``multiple_positives``    the top ``pos_count`` answers of each question, all positives
``hard_negative``         up to ``max_answers`` answers; top is positive, the others hard negatives
``triplet``               one positive and one negative per question (``neg_strategy``)
``listwise``              up to ``max_answers`` graded answers (questions with 2+ answers only)
``mined``                 top answer positive plus mined negatives (``mined.py``; ``qaembed mine``)
``pairs``                 pair data: duplicates (anchor, positive) both ways, labelled non-duplicates
                          as hard negatives (``pairs.py``; the only strategy for pair datasets)
========================  ===================================================================

Every strategy says which records it batches in ``data_kind``: ``"qa"`` (:class:`QARecord`) or
``"pairs"`` (:class:`~qaembed.data.pairs.PairRecord`).

Labels: ``relevance`` is the answer's vote gain within its question (``relevance.py``,
computed over all the question's answers); ``rank`` its position among the question's
answers by votes (ties broken by accepted flag, then id); ``positive`` and ``known`` as
described in ``batch.py``. Randomness (random answers, negatives) comes from
``numpy.random.default_rng([seed, epoch, 1])``, the order from ``default_rng([seed, epoch])``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from qaembed.batching.assemble import DocChoice, LabelledAnswer, assemble_batch
from qaembed.batching.batch import RankingBatch
from qaembed.batching.relevance import RelevanceMethod, normalize_votes
from qaembed.batching.sampler import length_aware_batches
from qaembed.options import parse_options, unknown_name_error
from qaembed.records import QARecord, QuestionTextMode, question_text


class StrategyConfig(BaseModel):
    """Options every strategy has; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    query_text: QuestionTextMode = Field("title_body", description="question text used as the query")
    relevance: RelevanceMethod = Field("minmax", description="vote normalization within a question")
    relevance_temperature: float = Field(1.0, gt=0, description="temperature (in votes) of softmax relevance")
    bucket_batches: int = Field(50, ge=1, description="batches per length-sorted bucket of the sampler")


class BatchStrategy:
    """Base of every strategy: eligibility, per-question choices, and the shared sampler."""

    name: ClassVar[str]
    config_class: ClassVar[type[StrategyConfig]] = StrategyConfig
    data_kind: ClassVar[str] = "qa"  # batches QARecords; the ``pairs`` strategy batches PairRecords
    min_answers: ClassVar[int] = 1  # questions with fewer answers are skipped (see eligible)

    def __init__(self, config: StrategyConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()

    def eligible(self, record: QARecord) -> bool:
        """Whether the question can enter this strategy's batches."""
        return len(record.answers) >= self.min_answers

    def labelled_answers(self, record: QARecord) -> list[LabelledAnswer]:
        """Every answer with its relevance and rank, top-voted first."""
        ranked = record.ranked_answers()
        gains = normalize_votes([a.score for a in ranked], self.config.relevance, self.config.relevance_temperature)
        return [LabelledAnswer(answer, float(gain), rank)
                for rank, (answer, gain) in enumerate(zip(ranked, gains, strict=True))]

    def choose(self, record: QARecord, rng: np.random.Generator) -> list[DocChoice]:  # pragma: no cover
        """The labelled documents one question brings to its batch."""
        raise NotImplementedError

    def build_batch(self, records: Sequence[QARecord], rng: np.random.Generator) -> RankingBatch:
        """One batch from the questions ``records`` (in order)."""
        choices = [self.choose(record, rng) for record in records]
        return assemble_batch(self.query_texts(records), [r.id for r in records], choices)

    def query_texts(self, records: Sequence[QARecord]) -> list[str]:
        return [question_text(record, self.config.query_text) for record in records]

    def length_key(self, record: QARecord) -> int:
        """Sort key of the sampler: the longest text the question may bring, in characters."""
        return max([len(question_text(record, self.config.query_text))] + [len(a.text) for a in record.answers])

    def batches(
        self, records: Sequence[QARecord], batch_size: int, seed: int, epoch: int = 0, drop_last: bool = False
    ) -> Iterator[RankingBatch]:
        """The batches of one epoch; the same (records, batch_size, seed, epoch) give the same batches."""
        eligible = [record for record in records if self.eligible(record)]
        order = length_aware_batches(
            [self.length_key(r) for r in eligible], batch_size, seed, epoch, self.config.bucket_batches, drop_last
        )
        rng = np.random.default_rng([seed, epoch, 1])
        for indices in order:
            yield self.build_batch([eligible[i] for i in indices], rng)

    def num_batches(self, records: Sequence[QARecord], batch_size: int, drop_last: bool = False) -> int:
        count = sum(1 for record in records if self.eligible(record))
        return count // batch_size if drop_last else -(-count // batch_size)


class InfoNCEConfig(StrategyConfig):
    take_top: bool = Field(True, description="positive is the top-voted answer (else a seeded random answer)")


class InfoNCEStrategy(BatchStrategy):
    """One answer per question: the top-voted one, or a random one (seeded)."""

    name = "infonce"
    config_class = InfoNCEConfig

    def choose(self, record: QARecord, rng: np.random.Generator) -> list[DocChoice]:
        labelled = self.labelled_answers(record)
        pick = 0 if self.config.take_top else int(rng.integers(len(labelled)))
        return [labelled[pick].choice(positive=True)]


class MultiplePositivesConfig(StrategyConfig):
    pos_count: int = Field(3, ge=1, description="top answers per question taken as positives")


class MultiplePositivesStrategy(BatchStrategy):
    """The top ``pos_count`` answers of each question, all positives."""

    name = "multiple_positives"
    config_class = MultiplePositivesConfig

    def choose(self, record: QARecord, rng: np.random.Generator) -> list[DocChoice]:
        return [item.choice(positive=True) for item in self.labelled_answers(record)[: self.config.pos_count]]


class HardNegativeConfig(StrategyConfig):
    max_answers: int = Field(8, ge=1, description="answers per question (top-voted first)")


class HardNegativeStrategy(BatchStrategy):
    """All answers of each question (up to ``max_answers``): top positive, the others hard negatives."""

    name = "hard_negative"
    config_class = HardNegativeConfig

    def choose(self, record: QARecord, rng: np.random.Generator) -> list[DocChoice]:
        labelled = self.labelled_answers(record)[: self.config.max_answers]
        return [item.choice(positive=item.rank == 0) for item in labelled]


class TripletConfig(StrategyConfig):
    neg_strategy: Literal["hard_negative", "in_batch", "mixed", "mined"] = Field(
        "hard_negative",
        description="hard_negative: a lower-voted own answer; in_batch: another question's positive "
        "in the batch; mixed: hard with probability hard_fraction when the question has 2+ answers; "
        "mined: a seeded random one of the question's mined negatives (qaembed mine; see batching/mined.py)",
    )
    hard_fraction: float = Field(0.5, ge=0, le=1, description="mixed: probability of a hard negative")


class TripletStrategy(BatchStrategy):
    """(query, positive, negative): top answer positive, one negative per question.

    ``hard_negative`` takes a seeded random lower-voted answer of the same question
    (questions with one answer are skipped); ``in_batch`` the positive of another
    question of the batch (seeded), labelled ``known`` with relevance 0; ``mixed`` draws
    hard with probability ``hard_fraction`` for questions that have 2+ answers, in-batch
    otherwise.
    """

    name = "triplet"
    config_class = TripletConfig

    def eligible(self, record: QARecord) -> bool:
        if self.config.neg_strategy == "mined":
            return len(record.answers) >= 1 and len(record.negatives) >= 1
        needed = 2 if self.config.neg_strategy == "hard_negative" else 1
        return len(record.answers) >= needed

    def batches(self, records, batch_size, seed, epoch=0, drop_last=False):
        if self.config.neg_strategy == "mined":
            from qaembed.batching.mined import require_mined

            require_mined(records, "triplet (neg_strategy=mined)")
        return super().batches(records, batch_size, seed, epoch, drop_last)

    def own_negative(self, record: QARecord, labelled: list[LabelledAnswer], rng: np.random.Generator) -> DocChoice | None:
        """The negative the question brings itself, or None to take one from the batch."""
        strategy = self.config.neg_strategy
        if strategy == "mined":
            from qaembed.batching.mined import mined_negative_choices

            return mined_negative_choices(record)[int(rng.integers(len(record.negatives)))]
        if strategy == "in_batch" or len(labelled) < 2:
            return None
        if strategy == "mixed" and rng.random() >= self.config.hard_fraction:
            return None
        return labelled[1 + int(rng.integers(len(labelled) - 1))].choice(positive=False)

    def build_batch(self, records: Sequence[QARecord], rng: np.random.Generator) -> RankingBatch:
        labelled = [self.labelled_answers(record) for record in records]
        positives = [items[0].choice(positive=True) for items in labelled]
        n = len(records)
        # other question of the batch for in-batch negatives: i + offset, offset in [1, n)
        others = (np.arange(n) + rng.integers(1, max(n, 2), size=n)) % n
        choices = []
        for i, (record, items) in enumerate(zip(records, labelled, strict=True)):
            negative = self.own_negative(record, items, rng)
            if negative is None and n > 1:
                other = positives[int(others[i])]
                negative = DocChoice(other.doc_id, other.text, relevance=0.0, positive=False, rank=-1)
            choices.append([positives[i]] + ([negative] if negative is not None else []))
        if self.config.neg_strategy == "mined":  # a mined negative may be another batch question's answer
            from qaembed.batching.mined import label_owned_answers

            choices = label_owned_answers(labelled, choices)
        return assemble_batch(self.query_texts(records), [r.id for r in records], choices)


class ListwiseConfig(StrategyConfig):
    max_answers: int = Field(8, ge=2, description="graded answers per question (top-voted first)")


class ListwiseStrategy(HardNegativeStrategy):
    """Up to ``max_answers`` graded answers per question (top positive); only questions with 2+ answers."""

    name = "listwise"
    config_class = ListwiseConfig
    min_answers = 2


STRATEGIES: dict[str, type[BatchStrategy]] = {
    cls.name: cls
    for cls in (InfoNCEStrategy, MultiplePositivesStrategy, HardNegativeStrategy, TripletStrategy, ListwiseStrategy)
}


def build_strategy(name: str, options: Mapping[str, Any] | None = None) -> BatchStrategy:
    """The strategy ``name`` with validated ``options``; ConfigError names the field / allowed values."""
    if name not in STRATEGIES:
        raise unknown_name_error("batching strategy", name, STRATEGIES)
    cls = STRATEGIES[name]
    return cls(parse_options("batching strategy", name, cls.config_class, options))
