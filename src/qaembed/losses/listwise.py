"""Listwise KL: the score distribution over a question's answers should match its vote distribution.

Formula
-------
Candidates ``C_i`` = the query's known documents (its answers, mined negatives) ∪ the
in-batch documents if ``in_batch_negatives`` (relevance 0). With relevance ``r`` (votes
normalized within the question, see ``qaembed.batching.relevance``)::

    t_i = softmax_{C_i}(r_i / τ_target),   q_i = softmax_{C_i}(s_i / τ)
    L   = mean_{i : |C_i| ≥ 2} KL(t_i ‖ q_i)

References
----------
Cao et al., *Learning to Rank: From Pairwise Approach to Listwise Approach* (ListNet,
2007); the original qaembed seed's listwise loss over each question's scored answers
(``in_batch_negatives`` is new here).

Strategies
----------
``listwise`` (2+ answers per question, up to ``max_answers``) and ``hard_negative``.

Recommendations
---------------
When vote counts carry signal beyond "top vs rest": it learns the full order of a
question's answers. Pair with a contrastive loss (``multitask``) or turn on
``in_batch_negatives`` so that other questions' answers are also pushed away.

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q"], ["a", "b"], relevance=[[1.0, 0.0]],
...     positive=[[True, False]], known=[[True, True]], rank=[[0, 1]])
>>> loss = ListwiseLoss(ListwiseConfig(temperature=1.0, target_temperature=1.0))
>>> round(loss(torch.tensor([[1.0, 0.0]]), batch).loss.item(), 6)  # scores equal relevance
0.0
"""

from __future__ import annotations

import torch
from pydantic import Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.masking import in_batch_accuracy, kl_per_query, known_or_in_batch, masked_logits, masked_mean


class ListwiseConfig(LossConfig):
    temperature: float = Field(0.05, gt=0, le=10, description="τ of the score softmax")
    target_temperature: float = Field(0.1, gt=0, le=10, description="τ_target of the relevance softmax")
    in_batch_negatives: bool = Field(False, description="other questions' documents are candidates with relevance 0")


class ListwiseLoss(RankingLoss):
    name = "listwise"
    config_class = ListwiseConfig
    strategies = ("listwise", "hard_negative")

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        config: ListwiseConfig = self.config
        candidates = known_or_in_batch(batch, config.in_batch_negatives)
        target = torch.softmax(masked_logits(batch.relevance / config.target_temperature, candidates), dim=1)
        target = torch.where(candidates, target, torch.zeros_like(target))  # (n_q, n_d)
        log_q = torch.log_softmax(masked_logits(scores / config.temperature, candidates), dim=1)  # (n_q, n_d)
        kl = kl_per_query(target, log_q)  # (n_q,)
        ranked = candidates.sum(dim=1) >= 2
        loss = masked_mean(kl, ranked)  # no boolean indexing: that would wait for the device every step
        accuracy = in_batch_accuracy(scores, candidates, batch)
        return LossOutput(loss, {"loss": loss.detach(), "accuracy": accuracy})
