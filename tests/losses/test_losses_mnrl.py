"""InfoNCE equals sentence-transformers' MultipleNegativesRankingLoss (values and gradients)."""

from __future__ import annotations

import pytest
import torch

from qaembed.batching import DocChoice, assemble_batch
from qaembed.losses import build_loss
from qaembed.losses.scores import cosine_scores


def _mnrl(temperature: float, **kwargs):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(torch.nn.Identity(), scale=1 / temperature, **kwargs)


def _batch(n: int, with_negatives: bool):
    """Query i: positive doc i, and (with_negatives) hard negative doc n + i, like MNRL's (anchor, positive, negative)."""
    choices = [
        [DocChoice(f"p{i}", f"pos {i}", 1.0, True, 0)]
        + ([DocChoice(f"n{i}", f"neg {i}", 0.0, False, 1)] if with_negatives else [])
        for i in range(n)
    ]
    batch = assemble_batch([f"q {i}" for i in range(n)], [f"q{i}" for i in range(n)], choices)
    # assemble_batch orders doc columns by first appearance: p0, n0, p1, n1, ...; reorder to p*, n*
    order = [batch.docs.index(f"pos {i}") for i in range(n)] + (
        [batch.docs.index(f"neg {i}") for i in range(n)] if with_negatives else []
    )
    from qaembed.batching import RankingBatch

    pick = lambda m: m[:, order]  # noqa: E731
    return RankingBatch(batch.queries, [batch.docs[j] for j in order], pick(batch.relevance), pick(batch.positive),
                        pick(batch.known), pick(batch.rank), batch.query_ids, [batch.doc_ids[j] for j in order])


def _embeddings(n: int, dim: int, columns: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, dim, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(columns)]


@pytest.mark.parametrize("temperature", [0.01, 0.05, 0.2, 1.0])
@pytest.mark.parametrize("with_negatives", [False, True], ids=["pairs", "triplets"])
@pytest.mark.parametrize("symmetric", [False, True], ids=["q2d", "symmetric"])
def test_infonce_equals_mnrl(temperature, with_negatives, symmetric):
    n, dim = 6, 16
    columns = 3 if with_negatives else 2
    ours = _embeddings(n, dim, columns, seed=int(temperature * 100))
    theirs = [e.detach().clone().requires_grad_() for e in ours]

    batch = _batch(n, with_negatives)
    scores = cosine_scores(ours[0], torch.cat(ours[1:]))
    loss = build_loss("infonce", {"temperature": temperature, "symmetric": symmetric})(scores, batch).loss
    loss.backward()

    extra = {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"} if symmetric else {}
    expected = _mnrl(temperature, **extra).compute_loss_from_embeddings(theirs, labels=None)
    expected.backward()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    for mine, reference in zip(ours, theirs, strict=True):
        assert torch.allclose(mine.grad, reference.grad, rtol=1e-8, atol=1e-12)
