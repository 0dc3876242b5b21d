"""Triplet margin loss on cosine similarity.

Formula
-------
For each query ``i`` with positive ``p(i)`` and each of its negatives ``n`` (known
non-positive documents; also the in-batch documents if ``in_batch_negatives``)::

    L = mean_{(i, n)} max(0, margin - s_i,p(i) + s_i,n)

References
----------
Schroff et al., *FaceNet* (2015), arXiv:1503.03832; sentence-transformers ``TripletLoss``
with ``TripletDistanceMetric.COSINE`` (there the distance is ``1 - cos``, the same hinge).

Strategies
----------
``triplet`` (one negative per query: hard, in-batch, mixed or mined), ``hard_negative``
(every lower-voted answer is a negative) and ``mined`` (every mined negative). Needs exactly one positive per query.

Recommendations
---------------
A baseline: only the margin matters, so it stops pushing once the positive wins by
``margin``, which keeps embeddings of near-duplicate answers close. Usually weaker than
InfoNCE with the same data; useful in ``multitask`` and for comparisons.

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q"], ["a", "b"], relevance=[[1.0, 0.0]],
...     positive=[[True, False]], known=[[True, True]], rank=[[0, 1]])
>>> round(TripletLoss(TripletConfig(margin=0.5))(torch.tensor([[0.6, 0.4]]), batch).loss.item(), 4)
0.3
"""

from __future__ import annotations

import torch
from pydantic import Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.masking import masked_mean, negatives, single_positive_index


class TripletConfig(LossConfig):
    margin: float = Field(0.2, gt=0, le=2, description="required cosine gap between positive and negative")
    in_batch_negatives: bool = Field(False, description="also use other questions' documents as negatives")


class TripletLoss(RankingLoss):
    name = "triplet"
    config_class = TripletConfig
    strategies = ("triplet", "hard_negative", "mined")

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        config: TripletConfig = self.config
        positive_col = single_positive_index(batch, self.name)  # (n_q,)
        negative_pairs = negatives(batch, hard_negatives=True, in_batch_negatives=config.in_batch_negatives)
        positive_score = scores.gather(1, positive_col[:, None])  # (n_q, 1)
        hinge = torch.relu(config.margin - positive_score + scores)  # (n_q, n_d)
        loss = masked_mean(hinge, negative_pairs)
        wins = (positive_score.detach() > scores.detach()) & negative_pairs
        accuracy = wins.sum() / negative_pairs.sum().clamp(min=1)  # 0-d float (true division of counts)
        return LossOutput(loss, {"loss": loss.detach(), "accuracy": accuracy})
