"""Pair label regression (like sentence-transformers' ``CosineSimilarityLoss``).

Formula
-------
Over the labelled pairs ``K`` (``known``; plus in-batch documents with label 0 if
``in_batch_negatives``) with label ``y`` = 1 for positives and 0 for known negatives
(``labels="binary"``), or ``y`` = relevance (``labels="relevance"``)::

    L = mean_{(i, j) ∈ K} (s_ij - y_ij)²

References
----------
Reimers & Gurevych, *Sentence-BERT* (2019), arXiv:1908.10084 (``CosineSimilarityLoss``).

Strategies
----------
All of them: it only needs the known pairs' labels. On ``pairs`` batches (duplicate-question
data) with ``labels: binary`` the known pairs are each anchor's duplicate (label 1) and its
labelled non-duplicates (label 0), so the loss is sentence-transformers' ``CosineSimilarityLoss``
(MSE of the cosine onto the pair label) on exactly those pairs
(``tests/losses/test_losses_pairs.py``).

Recommendations
---------------
As an auxiliary task in ``multitask`` (e.g. with a small weight next to InfoNCE), or to
compare against the pair-regression baseline users know from sentence-transformers.
Differs from ``mse`` in which pairs it uses (all known pairs, mined negatives too) and in
its binary default labels.

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q"], ["a", "b"], relevance=[[1.0, 0.5]],
...     positive=[[True, False]], known=[[True, True]], rank=[[0, 1]])
>>> round(CosinePairLoss()(torch.tensor([[0.8, 0.4]]), batch).loss.item(), 4)  # (0.2² + 0.4²) / 2
0.1
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.masking import known_or_in_batch, pair_regression


class CosinePairConfig(LossConfig):
    labels: Literal["binary", "relevance"] = Field(
        "binary", description="pair label: positive 1 / negative 0, or relevance"
    )
    in_batch_negatives: bool = Field(False, description="also regress other questions' documents onto 0")


class CosinePairLoss(RankingLoss):
    name = "cosine_pair"
    config_class = CosinePairConfig
    strategies = ("infonce", "multiple_positives", "hard_negative", "triplet", "listwise", "mined", "pairs")

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        config: CosinePairConfig = self.config
        pairs = known_or_in_batch(batch, config.in_batch_negatives)
        labels = batch.positive if config.labels == "binary" else batch.relevance  # in-batch pairs: 0 in both
        return LossOutput(*pair_regression(scores, labels, pairs))
