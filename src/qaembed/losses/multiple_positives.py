"""InfoNCE with several positives per query, optionally rank- or score-weighted.

Formula
-------
With ``l = s / τ``, positives ``P_i`` of query ``i`` and negatives ``N_i`` (hard negatives
if ``hard_negatives``, in-batch negatives if ``in_batch_negatives``), each positive is
its own term and the query's *other* positives are left out of its denominator::

    ℓ_ij = -log( e^{l_ij} / (e^{l_ij} + Σ_{k ∈ N_i} e^{l_ik}) ),   j ∈ P_i
    L    = mean_i [ Σ_{j ∈ P_i} w_ij ℓ_ij / Σ_{j ∈ P_i} w_ij ]

Weights (the original project's "rank-weighted InfoNCE"; ``w = 1`` when both are off)::

    w_ij = 1 + rank_weight · 1/(1 + rank_ij) · [use_ranks] + score_weight · relevance_ij · [use_scores]

so the top answers (rank 0) and the highest-voted ones count more. This is the
mean-over-positives form (each positive its own softmax); the log-sum-exp-over-positives
form would let one easy positive hide the others.

References
----------
Khosla et al., *Supervised Contrastive Learning* (2020), arXiv:2004.11362 (the
per-positive "L_out" form); the original qaembed seed's ``rank_infonce`` loss
(``rank_infonce_rank0.1_score0.05_t0.2`` there is ``use_ranks=True, rank_weight=0.1,
use_scores=True, score_weight=0.05, temperature=0.2`` here).

Strategies
----------
``multiple_positives`` (top ``pos_count`` answers as positives), ``infonce``,
``hard_negative`` and ``mined`` (one positive: then it equals ``infonce``).

Recommendations
---------------
Questions with several good answers (high-voted second answers): every good answer is
pulled toward the question instead of being pushed away as a negative.

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q"], ["a", "b", "c"], relevance=[[1.0, 0.5, 0.0]],
...     positive=[[True, True, False]], known=[[True, True, False]], rank=[[0, 1, -1]])
>>> out = MultiplePositivesLoss(MultiplePositivesConfig(temperature=1.0))(torch.tensor([[0.0, 0.0, 0.0]]), batch)
>>> round(out.loss.item(), 4)  # each positive against c alone: log 2
0.6931
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.masking import in_batch_accuracy, masked_logits, masked_mean, negatives


class MultiplePositivesConfig(LossConfig):
    temperature: float = Field(0.05, gt=0, le=10, description="τ; logits are scores / τ")
    in_batch_negatives: bool = Field(True, description="other questions' documents are negatives")
    hard_negatives: bool = Field(True, description="the query's known non-positive documents are negatives")
    use_ranks: bool = Field(False, description="weight positives by 1/(1 + rank)")
    rank_weight: float = Field(0.1, ge=0, le=100, description="weight of the rank term (use_ranks)")
    use_scores: bool = Field(False, description="weight positives by their relevance")
    score_weight: float = Field(0.05, ge=0, le=100, description="weight of the relevance term (use_scores)")


class MultiplePositivesLoss(RankingLoss):
    name = "multiple_positives"
    config_class = MultiplePositivesConfig
    strategies = ("multiple_positives", "infonce", "hard_negative", "mined")

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        config: MultiplePositivesConfig = self.config
        logits = scores / config.temperature  # (n_q, n_d)
        negative_pairs = negatives(batch, config.hard_negatives, config.in_batch_negatives)  # (n_q, n_d)
        negative_lse = torch.logsumexp(masked_logits(logits, negative_pairs), dim=1, keepdim=True)  # (n_q, 1)
        # -log(e^l / (e^l + e^lse)) = softplus(lse - l), for every pair; only positives are kept
        per_pair = F.softplus(negative_lse - logits)  # (n_q, n_d)
        weights = torch.ones_like(batch.relevance)
        if config.use_ranks:
            weights = weights + config.rank_weight / (1 + batch.rank.clamp(min=0).to(weights.dtype))
        if config.use_scores:
            weights = weights + config.score_weight * batch.relevance
        weights = torch.where(batch.positive, weights, torch.zeros_like(weights)).to(scores.dtype)  # (n_q, n_d)
        weighted = torch.where(batch.positive, per_pair * weights, torch.zeros_like(per_pair))
        weight_sum = weights.sum(dim=1)  # (n_q,)
        has_positive = batch.positive.any(dim=1)
        per_query = weighted.sum(dim=1) / weight_sum.clamp(min=torch.finfo(weight_sum.dtype).tiny)
        loss = masked_mean(per_query, has_positive)  # no boolean indexing: that would wait for the device
        candidates = batch.positive | negative_pairs
        metrics = {"loss": loss.detach(), "accuracy": in_batch_accuracy(scores, candidates, batch)}
        return LossOutput(loss, metrics)
