"""Turn per-question document choices into one :class:`RankingBatch`.

Strategies decide, for each question of a batch, which documents enter and with which
labels (:class:`DocChoice`); :func:`assemble_batch` deduplicates documents by text
(a text appears once in ``docs``; when several questions or answers share a text, that
one column carries every label: positive and known are OR-ed, relevance is the maximum,
rank the best) and fills the (n_q, n_d) matrices. Pairs nobody labelled stay unknown:
in-batch negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from qaembed.batching.batch import RankingBatch
from qaembed.records import Answer


@dataclass(frozen=True)
class DocChoice:
    """One document a strategy puts in the batch for one question, with its label."""

    doc_id: str
    text: str
    relevance: float  # graded gain in [0, 1]; 0 for negatives
    positive: bool
    rank: int  # rank among the question's own answers (0 = top); -1 if not its own answer


class LabelledAnswer(NamedTuple):
    """One of a question's own answers with the labels its votes give it (``BatchStrategy.labelled_answers``)."""

    answer: Answer
    relevance: float  # normalized votes within the question, in [0, 1]
    rank: int  # by votes, 0 = top

    def choice(self, positive: bool) -> DocChoice:
        """This answer as a batch document of its own question."""
        return DocChoice(doc_id=self.answer.id, text=self.answer.text, relevance=self.relevance, positive=positive,
                         rank=self.rank)


def assemble_batch(
    queries: Sequence[str], query_ids: Sequence[str], choices: Sequence[Sequence[DocChoice]]
) -> RankingBatch:
    """A RankingBatch from ``choices[i]``, the labelled documents of query ``i``."""
    if not (len(queries) == len(query_ids) == len(choices)):
        raise ValueError("assemble_batch: queries, query_ids and choices must have the same length")
    column_of: dict[str, int] = {}
    doc_ids: list[str] = []
    rows: list[int] = []
    cols: list[int] = []
    relevance: list[float] = []
    positive: list[bool] = []
    rank: list[int] = []
    for row, docs in enumerate(choices):
        for choice in docs:
            col = column_of.setdefault(choice.text, len(column_of))
            if col == len(doc_ids):
                doc_ids.append(choice.doc_id)
            rows.append(row)
            cols.append(col)
            relevance.append(choice.relevance)
            positive.append(choice.positive)
            rank.append(choice.rank)
    n_q, n_d = len(queries), len(column_of)
    index = (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long))
    flat = index[0] * n_d + index[1]  # (n_pairs,) a (row, col) pair may repeat: keep max / OR / best
    relevance_matrix = torch.zeros(n_q * n_d).scatter_reduce_(
        0, flat, torch.tensor(relevance, dtype=torch.float32), reduce="amax", include_self=True
    ).view(n_q, n_d)
    positive_matrix = torch.zeros(n_q * n_d, dtype=torch.bool)
    positive_matrix[flat[torch.tensor(positive, dtype=torch.bool)]] = True
    positive_matrix = positive_matrix.view(n_q, n_d)
    known_matrix = torch.zeros(n_q, n_d, dtype=torch.bool)
    known_matrix[index] = True
    rank_values = torch.tensor(rank, dtype=torch.long)
    own = rank_values >= 0
    big = torch.iinfo(torch.long).max
    rank_matrix = torch.full((n_q, n_d), big, dtype=torch.long)
    rank_matrix.view(-1).scatter_reduce_(
        0, flat[own], rank_values[own], reduce="amin", include_self=True
    )
    rank_matrix = torch.where(rank_matrix == big, torch.full_like(rank_matrix, -1), rank_matrix)
    return RankingBatch(
        queries=list(queries),
        docs=list(column_of),
        relevance=relevance_matrix,
        positive=positive_matrix,
        known=known_matrix,
        rank=rank_matrix,
        query_ids=list(query_ids),
        doc_ids=doc_ids,
    )

