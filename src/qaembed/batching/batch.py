"""A training batch as a ranking problem.

Every batching strategy produces a :class:`RankingBatch`: ``n_q`` query texts, ``n_d``
*unique* document texts, and (n_q, n_d) matrices that say how each query relates to each
document. Losses are pure functions of the (n_q, n_d) score matrix and this batch, so
they never need to know which strategy built it.

Matrices (all shaped ``(n_q, n_d)``):

* ``relevance`` (float): graded gain of the document for the query, from votes normalized
  within the question (0 for non-relevant or unknown pairs).
* ``positive`` (bool): pairs the strategy treats as positives (e.g. the top answer for
  ``infonce``, the top ``pos_count`` for ``multiple_positives``).
* ``known`` (bool): pairs whose label is known: the question's own answers in the batch and
  its mined or chosen negatives. Every pair that is not ``known`` is an in-batch negative.
  ``positive`` implies ``known``; ``known & ~positive`` are the hard negatives.
* ``rank`` (long): rank of the document among the query's own answers by votes (0 = top),
  ``-1`` where the document is not one of the query's answers.

Example
-------
>>> import torch
>>> b = RankingBatch(
...     queries=["q0", "q1"], docs=["a0", "a1", "b0"],
...     relevance=torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]]),
...     positive=torch.tensor([[True, False, False], [False, False, True]]),
...     known=torch.tensor([[True, True, False], [False, False, True]]),
...     rank=torch.tensor([[0, 1, -1], [-1, -1, 0]]),
...     query_ids=["s:1", "s:2"], doc_ids=["s:10", "s:11", "s:20"])
>>> b.hard_negative.tolist()
[[False, True, False], [False, False, False]]
>>> b.in_batch_negative.tolist()
[[False, False, True], [True, True, False]]
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class RankingBatch:
    queries: list[str]  # n_q query texts
    docs: list[str]  # n_d unique document texts
    relevance: torch.Tensor  # (n_q, n_d) float graded gain in [0, 1]
    positive: torch.Tensor  # (n_q, n_d) bool
    known: torch.Tensor  # (n_q, n_d) bool
    rank: torch.Tensor  # (n_q, n_d) long, -1 where not the query's own answer
    query_ids: list[str]  # n_q question ids
    doc_ids: list[str]  # n_d answer ids

    def __post_init__(self) -> None:
        n_q, n_d = len(self.queries), len(self.docs)
        if len(self.query_ids) != n_q or len(self.doc_ids) != n_d:
            raise ValueError(
                f"RankingBatch: {n_q} queries / {len(self.query_ids)} query_ids, "
                f"{n_d} docs / {len(self.doc_ids)} doc_ids"
            )
        for name in ("relevance", "positive", "known", "rank"):
            shape = tuple(getattr(self, name).shape)
            if shape != (n_q, n_d):
                raise ValueError(f"RankingBatch.{name} has shape {shape}, expected ({n_q}, {n_d})")
        if len(set(self.docs)) != n_d:
            raise ValueError("RankingBatch.docs must be unique texts")
        # on CPU only: strategies build batches there; .to(device) copies one already checked, and the
        # check on an accelerator would wait for the device every step
        if self.positive.device.type == "cpu" and bool((self.positive & ~self.known).any()):
            raise ValueError("RankingBatch: every positive pair must also be known")

    @classmethod
    def from_lists(
        cls,
        queries: list[str],
        docs: list[str],
        relevance: list[list[float]],
        positive: list[list[bool]],
        known: list[list[bool]],
        rank: list[list[int]],
        query_ids: list[str] | None = None,
        doc_ids: list[str] | None = None,
    ) -> RankingBatch:
        """A batch from nested lists (examples, tests); ids default to the texts."""
        return cls(
            queries=list(queries),
            docs=list(docs),
            relevance=torch.tensor(relevance, dtype=torch.float32),
            positive=torch.tensor(positive, dtype=torch.bool),
            known=torch.tensor(known, dtype=torch.bool),
            rank=torch.tensor(rank, dtype=torch.long),
            query_ids=list(query_ids if query_ids is not None else queries),
            doc_ids=list(doc_ids if doc_ids is not None else docs),
        )

    @property
    def num_queries(self) -> int:
        return len(self.queries)

    @property
    def num_docs(self) -> int:
        return len(self.docs)

    @property
    def hard_negative(self) -> torch.Tensor:
        """(n_q, n_d) bool: known pairs that are not positives (own lower-voted answers, mined negatives)."""
        return self.known & ~self.positive

    @property
    def in_batch_negative(self) -> torch.Tensor:
        """(n_q, n_d) bool: pairs with no known label (other questions' documents)."""
        return ~self.known

    def to(self, device: torch.device | str) -> RankingBatch:
        """A copy with every tensor on ``device``."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value.to(device) if isinstance(value, torch.Tensor) else value
        return RankingBatch(**values)
