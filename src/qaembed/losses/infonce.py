"""InfoNCE (contrastive cross-entropy) with one positive per query.

Formula
-------
With logits ``l = s / τ`` (``s`` the score matrix, ``τ`` = ``temperature``), positive
``p(i)`` of query ``i`` and candidate set ``C_i`` = {``p(i)``} ∪ hard negatives (the
query's known non-positive documents, if ``hard_negatives``) ∪ in-batch negatives (every
unlabelled document, if ``in_batch_negatives``)::

    L_q→d = mean_i [ logsumexp_{j ∈ C_i} l_ij - l_i,p(i) ]

With ``symmetric`` the document side is added (as in CLIP): for positive document
``p(i)`` the candidates are the queries for which that document is a candidate negative,
plus ``i``; ``L = (L_q→d + L_d→q) / 2``.

Variants of the original project: ``standard`` (both negatives on), ``no in-batch
negatives`` (``in_batch_negatives=False``: only the question's own lower-voted answers)
and ``no hard negatives`` (``hard_negatives=False``).

Relations
---------
With ``in_batch_negatives=True`` this is exactly sentence-transformers'
``MultipleNegativesRankingLoss`` with ``scale = 1/τ`` (tested on values and gradients);
with ``symmetric=True`` it equals MNRL with ``directions=("query_to_doc", "doc_to_query")``
and ``partition_mode="per_direction"``. ``multiple_positives`` reduces to it when every
query has one positive.

References
----------
van den Oord et al., *Representation Learning with Contrastive Predictive Coding* (2018),
arXiv:1807.03748; Henderson et al., *Efficient Natural Language Response Suggestion*
(2017), arXiv:1705.00652.

Strategies
----------
``infonce`` (top or random answer), ``hard_negative`` (own lower answers as hard
negatives), ``triplet`` (one explicit negative), ``mined`` (mined negatives as hard
negatives), ``pairs`` (duplicate-question pairs: the duplicate positive, labelled non-duplicates
as hard negatives; with one negative per anchor it equals sentence-transformers'
``MultipleNegativesRankingLoss`` on (anchor, positive, negative) triples). Needs exactly one
positive per query.

Recommendations
---------------
The default first choice: large batches (more in-batch negatives) help; τ ≈ 0.05.
Turn ``hard_negatives`` on with ``hard_negative`` batches when the lower-voted answers are
truly worse; off when they are often also good (then prefer ``relaxed_hard_negative``).

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q0", "q1"], ["a0", "a1"], relevance=[[1.0, 0.0], [0.0, 1.0]],
...     positive=[[True, False], [False, True]], known=[[True, False], [False, True]], rank=[[0, -1], [-1, 0]])
>>> out = InfoNCELoss(InfoNCEConfig(temperature=1.0))(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), batch)
>>> round(out.loss.item(), 4)  # log(1 + e^-1)
0.3133
"""

from __future__ import annotations

import torch
from pydantic import Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.masking import in_batch_accuracy, masked_logits, negatives, single_positive_index


class InfoNCEConfig(LossConfig):
    temperature: float = Field(0.05, gt=0, le=10, description="τ; logits are scores / τ (MNRL scale = 1/τ)")
    symmetric: bool = Field(False, description="add the document→query direction and average")
    in_batch_negatives: bool = Field(True, description="other questions' documents are negatives")
    hard_negatives: bool = Field(True, description="the query's known non-positive documents are negatives")


class InfoNCELoss(RankingLoss):
    name = "infonce"
    config_class = InfoNCEConfig
    strategies = ("infonce", "hard_negative", "triplet", "mined", "pairs")

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        config: InfoNCEConfig = self.config
        positive_col = single_positive_index(batch, self.name)  # (n_q,)
        logits = scores / config.temperature  # (n_q, n_d)
        candidates = batch.positive | negatives(batch, config.hard_negatives, config.in_batch_negatives)
        positive_logit = logits.gather(1, positive_col[:, None]).squeeze(1)  # (n_q,)
        query_side = torch.logsumexp(masked_logits(logits, candidates), dim=1) - positive_logit  # (n_q,)
        metrics = {"accuracy": in_batch_accuracy(scores, candidates, batch)}
        if not config.symmetric:
            loss = query_side.mean()
            return LossOutput(loss, {"loss": loss.detach(), **metrics})
        # document side: row i holds every query's logit against document p(i)
        doc_logits = logits.T[positive_col]  # (n_q, n_q)
        own = torch.eye(len(positive_col), dtype=torch.bool, device=scores.device)
        doc_candidates = (candidates & ~batch.positive).T[positive_col] | own  # (n_q, n_q)
        doc_side = torch.logsumexp(masked_logits(doc_logits, doc_candidates), dim=1) - positive_logit
        loss = (query_side.mean() + doc_side.mean()) / 2
        metrics["query_to_doc"] = query_side.detach().mean()
        metrics["doc_to_query"] = doc_side.detach().mean()
        return LossOutput(loss, {"loss": loss.detach(), **metrics})
