"""The ``pairs`` batching strategy: duplicate-question pairs as ranking problems.

Examples: every label-1 pair gives two, (anchor, positive) in both directions; each
anchor's label-0 partners are its explicit hard negatives (up to ``max_negatives``, a
seeded choice). A batch is assembled with :func:`~qaembed.batching.assemble.assemble_batch`:
query ``i`` has its positive (``positive``, relevance 1) and its hard negatives (``known``,
relevance 0); every other document of the batch is an in-batch negative.

Never a cluster-mate as an in-batch negative: :class:`~qaembed.batching.batch.RankingBatch`
has no "known but excluded" state (a known non-positive pair *is* a hard negative), so the
strategy keeps cluster-mates out of each other's batches instead. Each example touches a
set of duplicate clusters (its anchor's, which holds its positive, and its negatives');
a batch only takes examples whose cluster sets are disjoint, so no document of the batch
is a duplicate of a query unless it is that query's own positive, and a query's own text
never appears as a document. An example that does not fit is deferred to the next batch
(the order stays seeded and deterministic). A label-0 partner inside the anchor's own
duplicate cluster (contradictory labels through transitivity) is not used as a negative,
and counted in :attr:`PairsStrategy.notes`.

With one hard negative per example this is exactly sentence-transformers'
``MultipleNegativesRankingLoss`` on (anchor, positive, negative) triples under the
``infonce`` loss (``tests/batching/test_batching_pairs.py``).

Example
-------
>>> from qaembed.data.pairs import PairQuestion, PairRecord
>>> q = lambda i: PairQuestion(id=f"q{i}", text=f"question {i}")
>>> pairs = [PairRecord(id="p1", question1=q(1), question2=q(2), label=1, source="t"),
...          PairRecord(id="p2", question1=q(1), question2=q(3), label=0, source="t")]
>>> batch = next(PairsStrategy().batches(pairs, batch_size=4, seed=0))
>>> batch.queries, batch.docs
(['question 1'], ['question 2', 'question 3'])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from qaembed.batching.assemble import DocChoice, assemble_batch
from qaembed.batching.batch import RankingBatch
from qaembed.data.pairs import PairQuestion, PairRecord, duplicate_clusters


class PairsConfig(BaseModel):
    """Options of the ``pairs`` strategy; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    max_negatives: int = Field(1, ge=0, description="labelled non-duplicates per anchor as hard negatives")
    both_directions: bool = Field(True, description="each duplicate pair gives (a, b) and (b, a)")


@dataclass(frozen=True)
class PairExample:
    anchor: PairQuestion
    positive: PairQuestion
    negatives: tuple[PairQuestion, ...]


class PairsStrategy:
    """Duplicate pairs as (anchor, positive) both ways, labelled non-duplicates as hard negatives (pair data)."""

    name = "pairs"
    config_class = PairsConfig
    data_kind = "pairs"  # batches PairRecords (qaembed.data.pairs), not QARecords

    def __init__(self, config: PairsConfig | None = None) -> None:
        self.config = config or PairsConfig()
        self.notes: Counter[str] = Counter()

    def examples(self, pairs: Sequence[PairRecord], rng: np.random.Generator) -> tuple[list[PairExample], dict]:
        """The examples of one epoch (before shuffling) and the question -> cluster map."""
        ids = sorted({q.id for p in pairs for q in (p.question1, p.question2)})
        clusters = duplicate_clusters(ids, ((p.question1.id, p.question2.id) for p in pairs if p.label == 1))
        non_duplicates: dict[str, list[PairQuestion]] = {}
        for p in pairs:
            if p.label == 0:
                for a, b in ((p.question1, p.question2), (p.question2, p.question1)):
                    if clusters[a.id] == clusters[b.id]:
                        self.notes["negative_inside_own_cluster"] += 1
                        continue
                    non_duplicates.setdefault(a.id, []).append(b)
        for candidates in non_duplicates.values():  # input order must not matter
            candidates.sort(key=lambda question: question.id)
        examples = []
        for p in sorted(pairs, key=lambda pair: pair.id):
            if p.label != 1:
                continue
            directions = [(p.question1, p.question2)]
            if self.config.both_directions:
                directions.append((p.question2, p.question1))
            for anchor, positive in directions:
                candidates = non_duplicates.get(anchor.id, [])
                take = min(self.config.max_negatives, len(candidates))
                chosen = rng.choice(len(candidates), take, replace=False) if take else []
                examples.append(PairExample(anchor, positive, tuple(candidates[int(i)] for i in sorted(chosen))))
        return examples, clusters

    def batches(self, pairs: Sequence[PairRecord], batch_size: int, seed: int, epoch: int = 0,
                drop_last: bool = False) -> Iterator[RankingBatch]:
        """The batches of one epoch; the same (pairs, batch_size, seed, epoch) give the same batches."""
        rng = np.random.default_rng([seed, epoch, 1])
        examples, clusters = self.examples(pairs, rng)
        order = list(np.random.default_rng([seed, epoch]).permutation(len(examples)))
        pending = [examples[i] for i in order]
        while pending:
            batch, used, deferred = [], set(), []
            for index, example in enumerate(pending):
                if len(batch) == batch_size:
                    deferred.extend(pending[index:])
                    break
                touched = {clusters[example.anchor.id]} | {clusters[n.id] for n in example.negatives}
                if touched & used:
                    deferred.append(example)
                else:
                    batch.append(example)
                    used |= touched
            pending = deferred
            if drop_last and len(batch) < batch_size:
                return
            yield self.build_batch(batch)

    def num_batches(self, pairs: Sequence[PairRecord], batch_size: int, drop_last: bool = False) -> int:
        """Batches of epoch 0 for seed 0 (the loop's epoch length; cluster deferral may change it by one per epoch)."""
        return sum(1 for _ in self.batches(pairs, batch_size, seed=0, drop_last=drop_last))

    @staticmethod
    def build_batch(examples: Sequence[PairExample]) -> RankingBatch:
        choices = [
            [DocChoice(e.positive.id, e.positive.text, 1.0, True, 0)]
            + [DocChoice(n.id, n.text, 0.0, False, -1) for n in e.negatives]
            for e in examples
        ]
        return assemble_batch([e.anchor.text for e in examples], [e.anchor.id for e in examples], choices)
