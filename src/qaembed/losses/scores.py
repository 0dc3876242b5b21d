"""Scorers: embeddings -> the (n_q, n_d) score matrix every loss takes.

Losses never see embeddings, so a scorer is the only thing that changes between
single-vector (cosine) and late-interaction (MaxSim, to come) training.

>>> import torch
>>> cosine_scores(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])).round(decimals=4)
tensor([[1.0000, 0.0000, 0.7071]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
