"""Scorer of a training run: what the encoder's forward pass hands on, and the loss over the scores.

``training`` knows three scorers (``scorer.name`` in the config, :class:`~qaembed.train.config.ScorerSection`):

=========  =====================================  ===========================================
scorer     embeddings per text (``embed``)        loss (``loss``)
=========  =====================================  ===========================================
cosine     pooled ``(n, dim)``                    ``loss_fn(cosine_scores(q, d), batch)``
maxsim     tokens ``(n, L, t)``, mask ``(n, L)``  ``loss_fn(maxsim_scores(...), batch)``
combined   pooled, tokens, mask                   ``w_p * pooled_loss(cosine) + w_m * maxsim_loss(MaxSim)``
=========  =====================================  ===========================================

Everything a scorer embeds is a tensor or a tuple of tensors with one row per text, so
GradCache (``gradcache.py``) caches them chunk by chunk and cross-process gathering
(``distributed.py``) pads token tensors to a common length and gathers them like pooled
embeddings. Losses never change: they see one ``(n_q, n_d)`` matrix at a time.

``combined`` metrics: ``pooled`` and ``maxsim`` (each part's loss, unweighted) and every part
metric prefixed (``pooled/accuracy``, ``maxsim/accuracy``); the loop logs them as
``loss/pooled``, ``loss/maxsim``, ...
"""

from __future__ import annotations

import torch
from torch import nn

from qaembed.batching.batch import RankingBatch
from qaembed.late_interaction import token_embeddings, truncate_queries
from qaembed.losses.base import LossOutput, RankingLoss
from qaembed.losses.scores import cosine_scores, maxsim_scores
from qaembed.train.config import ScorerSection
from qaembed.train.gradcache import Embedded


class Scoring:
    """``embed(model, features)`` and ``loss(queries, docs, batch)`` of one scorer."""

    def __init__(self, scorer: ScorerSection, loss_fn: RankingLoss, maxsim_loss: RankingLoss | None = None) -> None:
        self.scorer = scorer
        self.name = scorer.name
        self.loss_fn = loss_fn  # cosine / maxsim: the loss; combined: the pooled part
        self.maxsim_loss = maxsim_loss if maxsim_loss is not None else loss_fn  # combined: the MaxSim part

    def to(self, device: torch.device | str) -> Scoring:
        self.loss_fn = self.loss_fn.to(device)
        self.maxsim_loss = self.maxsim_loss.to(device)
        return self

    def embed(self, model: nn.Module, features: dict[str, torch.Tensor]) -> Embedded:
        """One forward pass: pooled ``(n, dim)``; or ``(tokens, mask)``; or ``(pooled, tokens, mask)``."""
        output = model(dict(features))
        if self.name == "cosine":
            return output["sentence_embedding"]
        tokens, mask = token_embeddings(output, option=f"scorer: {self.name}")  # (n, L, t), (n, L)
        if self.name == "maxsim":
            return tokens, mask
        return output["sentence_embedding"], tokens, mask

    def maxsim(self, queries: tuple[torch.Tensor, torch.Tensor], docs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """(n_q, n_d) MaxSim scores of token embeddings, query tokens cut at ``scorer.query_length``."""
        (q_tok, q_mask), (d_tok, d_mask) = queries, docs
        q_mask = truncate_queries(q_mask, self.scorer.query_length)
        return maxsim_scores(q_tok, q_mask, d_tok, d_mask, reduce=self.scorer.reduce,
                             doc_chunk_size=self.scorer.doc_chunk_size)

    def loss(self, queries: Embedded, docs: Embedded, batch: RankingBatch) -> LossOutput:
        if self.name == "cosine":
            return self.loss_fn(cosine_scores(queries, docs), batch)
        if self.name == "maxsim":
            return self.loss_fn(self.maxsim(queries, docs), batch)
        weights = self.scorer.weights
        pooled = self.loss_fn(cosine_scores(queries[0], docs[0]), batch)
        late = self.maxsim_loss(self.maxsim(queries[1:], docs[1:]), batch)
        total = weights.pooled * pooled.loss + weights.maxsim * late.loss
        metrics: dict[str, torch.Tensor] = {"loss": total.detach(), "pooled": pooled.loss.detach(),
                                            "maxsim": late.loss.detach()}  # 0-d tensors, as every loss's
        for prefix, part in (("pooled", pooled), ("maxsim", late)):
            metrics.update({f"{prefix}/{key}": value for key, value in part.metrics.items() if key != "loss"})
        return LossOutput(total, metrics)


def build_scoring(scorer: ScorerSection, loss_fn: RankingLoss) -> Scoring:
    """The run's :class:`Scoring`; ``loss_fn`` is the ``loss`` section's loss (already validated).

    ``combined``: ``scorer.pooled_loss`` / ``scorer.maxsim_loss`` replace ``loss_fn`` for their part.
    """
    from qaembed.losses import build_loss

    if scorer.name != "combined":
        return Scoring(scorer, loss_fn)
    pooled = build_loss(scorer.pooled_loss.name, scorer.pooled_loss.options) if scorer.pooled_loss else loss_fn
    late = build_loss(scorer.maxsim_loss.name, scorer.maxsim_loss.options) if scorer.maxsim_loss else loss_fn
    return Scoring(scorer, pooled, late)


__all__ = ["Embedded", "Scoring", "build_scoring"]
