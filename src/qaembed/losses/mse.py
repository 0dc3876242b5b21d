"""Vote regression: cosine similarity of (question, answer) regressed onto the normalized vote score.

Formula
-------
Over the pairs ``A`` = the query's own answers (``rank ≥ 0``) ∪ the in-batch documents if
``in_batch_negatives`` (target 0), with relevance ``r`` (votes normalized within the
question)::

    L = mean_{(i, j) ∈ A} (s_ij - r_ij)²

References
----------
The original qaembed seed's MSE-on-scores loss; sentence-transformers
``CosineSimilarityLoss`` is the same regression with external pair labels
(see ``cosine_pair``).

Strategies
----------
``hard_negative``, ``listwise`` and ``multiple_positives`` (several graded answers per
question; with one answer per question every target is 1).

Recommendations
---------------
Calibrated scores (a similarity that reads like a normalized vote); weak as the only
ranking signal, better as an auxiliary part of ``multitask``.

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q"], ["a", "b"], relevance=[[1.0, 0.5]],
...     positive=[[True, False]], known=[[True, True]], rank=[[0, 1]])
>>> round(VoteRegressionLoss()(torch.tensor([[0.8, 0.8]]), batch).loss.item(), 4)  # (0.2² + 0.3²) / 2
0.065
"""

from __future__ import annotations

import torch
from pydantic import Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.masking import pair_regression


class VoteRegressionConfig(LossConfig):
    in_batch_negatives: bool = Field(False, description="also regress other questions' documents onto 0")


class VoteRegressionLoss(RankingLoss):
    name = "mse"
    config_class = VoteRegressionConfig
    strategies = ("hard_negative", "listwise", "multiple_positives")

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        config: VoteRegressionConfig = self.config
        pairs = batch.rank >= 0
        if config.in_batch_negatives:
            pairs = pairs | batch.in_batch_negative
        return LossOutput(*pair_regression(scores, batch.relevance, pairs))
