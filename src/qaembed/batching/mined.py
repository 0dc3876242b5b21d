"""The ``mined`` batching strategy, and the labelling rule for mined negatives in any batch.

Records mined by ``qaembed mine`` carry ``negatives`` (other questions' answers that the
mining model found similar to the question, see :mod:`qaembed.mining`). The ``mined``
strategy puts each question in the batch with its top-voted answer (positive, its vote
gain as relevance, rank 0) and its first ``num_negatives`` mined negatives (most similar
first; all of them when unset) as *known* non-positives with relevance 0. Questions left
without mined negatives by the miner still enter with their positive (they still see
in-batch negatives), so the set of questions matches ``infonce``; a record list in which
no question has mined negatives is an error (the dataset was not mined).

Coinciding documents. A mined negative of question A may be an answer of question B that
is also in the batch. The batch stores each text once, with labels per (question,
document) pair, so the document is a known negative for A and, for B, carries B's own
label: positive if it is B's top answer, otherwise known with B's vote gain and rank (as
``hard_negative`` labels lower-voted answers). It is never an unlabelled in-batch
negative for B. :func:`label_owned_answers` adds those owner labels; ``triplet`` with
``neg_strategy="mined"`` uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from qaembed.batching.assemble import DocChoice, LabelledAnswer, assemble_batch
from qaembed.batching.batch import RankingBatch
from qaembed.batching.strategies import BatchStrategy, StrategyConfig
from qaembed.errors import DataError
from qaembed.records import QARecord


def mined_negative_choices(record: QARecord, limit: int | None = None) -> list[DocChoice]:
    """The record's mined negatives (most similar first, at most ``limit``) as known, non-relevant documents."""
    negatives = record.negatives if limit is None else record.negatives[:limit]
    return [DocChoice(doc_id=n.id, text=n.text, relevance=0.0, positive=False, rank=-1) for n in negatives]


def label_owned_answers(
    labelled: Sequence[Sequence[LabelledAnswer]], choices: Sequence[Sequence[DocChoice]]
) -> list[list[DocChoice]]:
    """Add each question's own label to every batch document that is one of its answers.

    ``labelled[i]``: question ``i``'s answers with their labels, top first (as
    ``BatchStrategy.labelled_answers`` gives). ``choices[i]``: what question ``i`` brought.
    A document (by text) that is an answer of question ``j`` but that ``j`` did not bring
    (another question's mined negative) gets ``j``'s label: positive when rank 0, else
    known with its relevance and rank.
    """
    owners: dict[str, list[tuple[int, DocChoice]]] = {}
    for row, answers in enumerate(labelled):
        for item in answers:
            owners.setdefault(item.answer.text, []).append((row, item.choice(positive=item.rank == 0)))
    result = [list(docs) for docs in choices]
    present = [{choice.text for choice in docs} for docs in choices]
    batch_texts = dict.fromkeys(choice.text for docs in choices for choice in docs)
    for text in batch_texts:
        for row, own in owners.get(text, ()):
            if text not in present[row]:
                result[row].append(own)
                present[row].add(text)
    return result


def require_mined(records: Sequence[QARecord], strategy: str) -> None:
    """Raise DataError when no record carries mined negatives (the dataset was not mined)."""
    if records and not any(record.negatives for record in records):
        raise DataError(
            f"batching strategy {strategy!r} needs mined negatives, but no question has any; "
            "run `qaembed mine --data DIR --out MINED_DIR` and train on MINED_DIR"
        )


class MinedConfig(StrategyConfig):
    num_negatives: int | None = Field(
        None, ge=1, description="mined negatives per question, most similar first (None: all the question has)"
    )


class MinedStrategy(BatchStrategy):
    """Top answer positive plus the question's mined negatives (known, relevance 0)."""

    name = "mined"
    config_class = MinedConfig

    def choose(self, record: QARecord, rng: np.random.Generator) -> list[DocChoice]:
        return self._choices(record, self.labelled_answers(record))

    def _choices(self, record: QARecord, labelled: list[LabelledAnswer]) -> list[DocChoice]:
        return [labelled[0].choice(positive=True)] + mined_negative_choices(record, self.config.num_negatives)

    def length_key(self, record: QARecord) -> int:
        negatives = [len(n.text) for n in record.negatives[: self.config.num_negatives]]
        return max([super().length_key(record)] + negatives)

    def build_batch(self, records: Sequence[QARecord], rng: np.random.Generator) -> RankingBatch:
        labelled = [self.labelled_answers(record) for record in records]
        choices = [self._choices(record, items) for record, items in zip(records, labelled, strict=True)]
        choices = label_owned_answers(labelled, choices)
        return assemble_batch(self.query_texts(records), [r.id for r in records], choices)

    def batches(self, records, batch_size, seed, epoch=0, drop_last=False):
        require_mined(records, self.name)
        return super().batches(records, batch_size, seed, epoch, drop_last)
