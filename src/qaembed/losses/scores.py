"""Scorers: embeddings -> the (n_q, n_d) score matrix every loss takes.

Losses never see embeddings, so a scorer is the only thing that changes between
single-vector (cosine) and late-interaction (MaxSim) training.

* :func:`cosine_scores`: pooled embeddings, cosine similarity.
* :func:`maxsim_scores`: token embeddings (ColBERT's late interaction): for every query
  token the best dot product over the document's tokens, summed over the query's tokens
  (``reduce="sum"``, ColBERT / PyLate ``colbert_scores``) or averaged over the query's real
  tokens (``reduce="mean"``, in [-1, 1] for L2-normalized tokens, the scale every loss's
  defaults were tuned on for cosine). Token embeddings are expected to be L2-normalized per
  token already (``qaembed.late_interaction.token_embeddings`` does that on the encoder side);
  MaxSim itself takes plain dot products, as ColBERT does.

>>> import torch
>>> cosine_scores(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])).round(decimals=4)
tensor([[1.0000, 0.0000, 0.7071]])
>>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])  # 1 query, 3 tokens (last is padding)
>>> d = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, -1.0], [5.0, 5.0]]])  # 2 docs, 2 tokens
>>> q_mask, d_mask = torch.tensor([[1, 1, 0]]), torch.tensor([[1, 1], [1, 0]])
>>> maxsim_scores(q, q_mask, d, d_mask)  # doc 0: 1.0 + 0.8; doc 1: 0.0 + (-1.0)
tensor([[ 1.8000, -1.0000]])
>>> maxsim_scores(q, q_mask, d, d_mask, reduce="mean")
tensor([[ 0.9000, -0.5000]])
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

MaxSimReduce = Literal["sum", "mean"]


def cosine_scores(q_emb: torch.Tensor, d_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query with every document: (n_q, dim), (n_d, dim) -> (n_q, n_d).

    Same normalization as ``sentence_transformers.util.cos_sim`` (``F.normalize``, eps 1e-12).
    """
    if q_emb.dim() != 2 or d_emb.dim() != 2 or q_emb.shape[1] != d_emb.shape[1]:
        raise ValueError(
            f"cosine_scores needs (n_q, dim) and (n_d, dim) embeddings, "
            f"got {tuple(q_emb.shape)} and {tuple(d_emb.shape)}"
        )
    return F.normalize(q_emb, p=2, dim=1) @ F.normalize(d_emb, p=2, dim=1).T  # (n_q, n_d)


def maxsim_scores(
    q_tok: torch.Tensor,
    q_mask: torch.Tensor,
    d_tok: torch.Tensor,
    d_mask: torch.Tensor,
    *,
    reduce: MaxSimReduce = "sum",
    doc_chunk_size: int | None = None,
) -> torch.Tensor:
    """MaxSim of every query with every document: ``(n_q, L_q, dim)``, ``(n_d, L_d, dim)`` -> ``(n_q, n_d)``.

    ``score(i, j) = Σ_{a: q_mask[i, a]} max_{b: d_mask[j, b]} <q_tok[i, a], d_tok[j, b]>``

    * padding never contributes: a padded document token cannot win the max (its similarity
      is replaced by ``-inf`` before the max, with ``torch.where``, so it gets no gradient
      either), and a padded query token adds exactly 0. A document without any real token
      scores 0 for every query (nothing to match);
    * ``reduce="mean"`` divides by the query's number of real tokens (at least 1), so for
      L2-normalized tokens the score lies in [-1, 1] like a cosine;
    * ``doc_chunk_size`` bounds memory: the ``(n_q, chunk, L_q, L_d)`` similarity block is built
      for that many documents at a time (``None``: all at once). Values and gradients do not
      depend on it.

    Masks are bool or 0/1 integers (an ``attention_mask``). Computed in the embeddings' dtype.
    """
    if q_tok.dim() != 3 or d_tok.dim() != 3 or q_tok.shape[2] != d_tok.shape[2]:
        raise ValueError(
            f"maxsim_scores needs (n_q, L_q, dim) and (n_d, L_d, dim) token embeddings, "
            f"got {tuple(q_tok.shape)} and {tuple(d_tok.shape)}"
        )
    if q_mask.shape != q_tok.shape[:2] or d_mask.shape != d_tok.shape[:2]:
        raise ValueError(
            f"maxsim_scores: masks must be (n_q, L_q) and (n_d, L_d), got {tuple(q_mask.shape)} for "
            f"{tuple(q_tok.shape)} and {tuple(d_mask.shape)} for {tuple(d_tok.shape)}"
        )
    if reduce not in ("sum", "mean"):
        raise ValueError(f"maxsim_scores: reduce must be 'sum' or 'mean', got {reduce!r}")
    if doc_chunk_size is not None and doc_chunk_size < 1:
        raise ValueError(f"maxsim_scores: doc_chunk_size must be >= 1, got {doc_chunk_size}")
    q_mask, d_mask = q_mask.bool(), d_mask.bool()
    n_d = d_tok.shape[0]
    step = n_d if doc_chunk_size is None else doc_chunk_size
    blocks = []
    for start in range(0, max(n_d, 1), max(step, 1)):
        tok, mask = d_tok[start : start + step], d_mask[start : start + step]  # (c, L_d, dim), (c, L_d)
        sim = torch.einsum("qad,cbd->qcab", q_tok, tok)  # (n_q, c, L_q, L_d)
        sim = torch.where(mask[None, :, None, :], sim, torch.full_like(sim, float("-inf")))
        best = sim.max(dim=3).values if sim.shape[3] else sim.new_full(sim.shape[:3], float("-inf"))
        has_tokens = mask.any(dim=1)[None, :, None]  # (1, c, 1)
        best = torch.where(q_mask[:, None, :] & has_tokens, best, torch.zeros_like(best))  # (n_q, c, L_q)
        blocks.append(best.sum(dim=2))  # (n_q, c)
    scores = torch.cat(blocks, dim=1) if blocks else q_tok.new_zeros((q_tok.shape[0], 0))  # (n_q, n_d)
    if reduce == "mean":
        scores = scores / q_mask.sum(dim=1, keepdim=True).clamp(min=1).to(scores.dtype)
    return scores
