"""Binary cross-entropy on labelled pairs: ColTrast's late-interaction loss.

Formula
-------
Over the pairs ``P`` (positives, label 1) and ``N`` (hard negatives: the query's known
non-positive documents, if ``hard_negatives``; in-batch negatives: every unlabelled document,
if ``in_batch_negatives``; label 0), with logits ``l = (s - offset) / τ``::

    L = mean_{(i, j) ∈ P ∪ N} BCEWithLogits(l_ij, y_ij)

or, with ``balanced`` (the default), the mean over positives and the mean over negatives
averaged, ``(mean_P + mean_N) / 2``, so the many in-batch negatives do not drown the
positives.

Score normalization
-------------------
The loss assumes scores in [-1, 1]. MaxSim sums one best match per query token, so its raw
value grows with the query's length; the training scorer therefore divides by the query's
number of real (non-padding) tokens (``scorer.reduce: mean``, the default;
``qaembed.losses.scores.maxsim_scores``), which for L2-normalized tokens lies in [-1, 1]
like a cosine. ``offset`` is the score at which the pair's probability is 1/2, ``τ`` sets
how sharply it turns. Works unchanged on cosine scores.

References
----------
ColTrast (the original project's late-interaction system): one encoder, 0.3 × contrastive
loss on the pooled cosine + 0.7 × this BCE on normalized MaxSim (``configs/coltrast.yaml``);
Khattab & Zaharia, *ColBERT* (2020), arXiv:2004.12832 (MaxSim late interaction).

Strategies
----------
All of them: it only needs the positive and negative pairs' labels.

Recommendations
---------------
As the MaxSim part of ``scorer: combined`` next to ``infonce`` on the pooled embedding
(ColTrast). Alone it calibrates scores (a pair's probability) but ranks less sharply than
InfoNCE, which compares each positive with all of its negatives at once. Relations: with
``τ`` → ∞ around ``offset`` it behaves like ``cosine_pair``'s squared error on binary labels.

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q"], ["a", "b"], relevance=[[1.0, 0.0]],
...     positive=[[True, False]], known=[[True, True]], rank=[[0, 1]])
>>> loss = PairBCELoss(PairBCEConfig(temperature=1.0, offset=0.0))  # (log(1+e^-0.5) + log(1+e^0)) / 2
>>> round(loss(torch.tensor([[0.5, 0.0]]), batch).loss.item(), 4)
0.5836
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.masking import masked_mean, negatives


class PairBCEConfig(LossConfig):
    temperature: float = Field(0.1, gt=0, le=10, description="τ; logits are (score - offset) / τ")
    offset: float = Field(0.0, ge=-1, le=1, description="score at which a pair's probability is 1/2")
    balanced: bool = Field(True, description="average the positives' and the negatives' means (else one mean)")
    in_batch_negatives: bool = Field(True, description="other questions' documents are negatives")
    hard_negatives: bool = Field(True, description="the query's known non-positive documents are negatives")


class PairBCELoss(RankingLoss):
    name = "pair_bce"
    config_class = PairBCEConfig
    strategies = ("infonce", "multiple_positives", "hard_negative", "triplet", "listwise", "mined", "pairs")

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        config: PairBCEConfig = self.config
        logits = (scores - config.offset) / config.temperature  # (n_q, n_d)
        positive = batch.positive
        negative = negatives(batch, config.hard_negatives, config.in_batch_negatives)  # (n_q, n_d)
        per_pair = F.binary_cross_entropy_with_logits(logits, positive.to(logits.dtype), reduction="none")
        if config.balanced:
            loss = (masked_mean(per_pair, positive) + masked_mean(per_pair, negative)) / 2
        else:
            loss = masked_mean(per_pair, positive | negative)
        with torch.no_grad():
            probability = torch.sigmoid(logits)
            metrics = {
                "loss": loss.detach(),
                "positive_probability": masked_mean(probability, positive),
                "negative_probability": masked_mean(probability, negative),
            }
        return LossOutput(loss, metrics)
