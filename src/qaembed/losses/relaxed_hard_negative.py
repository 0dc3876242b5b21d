"""Relaxed hard negatives: a soft target that leaves some mass on the question's other answers.

Formula
-------
With ``l = s / τ`` and candidates ``C_i`` = the query's known documents ∪ in-batch
negatives (if ``in_batch_negatives``), the target puts ``1 - p`` on the positive (the top
answer) and shares ``p`` (``relaxation``) equally among the question's other answers
``O_i`` (own answers, ``rank ≥ 0``, not positive); mined negatives and in-batch documents
get 0. A query with no other answer gets the one-hot target::

    t_ij = (1 - p)·[j = p(i)] + p·[j ∈ O_i] / |O_i|
    L    = mean_i KL(t_i ‖ softmax_{C_i}(l_i)) = mean_i Σ_j t_ij (log t_ij - log q_ij)

With ``p = 0`` it is InfoNCE with hard negatives.

References
----------
The original qaembed seed's "relaxed hard negative" loss (top answer 1-p, the other
answers of the question share p); label smoothing (Szegedy et al. 2016, arXiv:1512.00567)
restricted to the question's own answers.

Strategies
----------
``hard_negative`` and ``listwise`` (the top answer is the one positive).

Recommendations
---------------
When lower-voted answers are often still correct (typical on Q&A sites), InfoNCE with
hard negatives pushes good answers away; this keeps them close to the question while
still ranking the top answer first.

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q"], ["a", "b"], relevance=[[1.0, 0.0]],
...     positive=[[True, False]], known=[[True, True]], rank=[[0, 1]])
>>> loss = RelaxedHardNegativeLoss(RelaxedHardNegativeConfig(relaxation=0.5, temperature=1.0))
>>> round(loss(torch.tensor([[0.3, 0.3]]), batch).loss.item(), 6)  # target = prediction = (0.5, 0.5)
0.0
"""

from __future__ import annotations

import torch
from pydantic import Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.masking import (
    in_batch_accuracy,
    kl_per_query,
    known_or_in_batch,
    masked_logits,
    single_positive_index,
)


class RelaxedHardNegativeConfig(LossConfig):
    temperature: float = Field(0.05, gt=0, le=10, description="τ; logits are scores / τ")
    relaxation: float = Field(0.1, ge=0, lt=1, description="p: target mass shared by the question's other answers")
    in_batch_negatives: bool = Field(True, description="other questions' documents are candidates with target 0")


class RelaxedHardNegativeLoss(RankingLoss):
    name = "relaxed_hard_negative"
    config_class = RelaxedHardNegativeConfig
    strategies = ("hard_negative", "listwise")

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        config: RelaxedHardNegativeConfig = self.config
        single_positive_index(batch, self.name)
        candidates = known_or_in_batch(batch, config.in_batch_negatives)
        log_q = torch.log_softmax(masked_logits(scores / config.temperature, candidates), dim=1)  # (n_q, n_d)
        others = batch.hard_negative & (batch.rank >= 0)  # (n_q, n_d) own lower answers
        n_others = others.sum(dim=1, keepdim=True)  # (n_q, 1)
        p = torch.where(n_others > 0, config.relaxation, 0.0)  # (n_q, 1)
        target = (1 - p) * batch.positive + p * others / n_others.clamp(min=1)  # (n_q, n_d)
        loss = kl_per_query(target, log_q).mean()
        accuracy = in_batch_accuracy(scores, candidates, batch)
        return LossOutput(loss, {"loss": loss.detach(), "accuracy": accuracy})
