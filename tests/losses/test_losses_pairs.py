"""Losses on ``pairs`` batches equal their sentence-transformers counterparts on the same embeddings."""

from __future__ import annotations

import pytest
import torch

from qaembed.batching.pairs import PairsConfig, PairsStrategy
from qaembed.data.pairs import PairQuestion, PairRecord
from qaembed.losses import build_loss
from qaembed.losses.scores import cosine_scores


def _pairs(negatives_per_anchor: int) -> list[PairRecord]:
    q = lambda i: PairQuestion(id=f"q{i}", text=f"question {i}")  # noqa: E731
    pairs = []
    for k in range(6):  # anchors 100k+1 ~ 100k+2; each side has its own labelled non-duplicates
        a, b = 100 * k + 1, 100 * k + 2
        pairs.append(PairRecord(id=f"d{k}", question1=q(a), question2=q(b), label=1, source="t"))
        for j in range(negatives_per_anchor):
            pairs.append(PairRecord(id=f"n{k}-{j}", question1=q(a), question2=q(100 * k + 10 + j), label=0, source="t"))
            pairs.append(PairRecord(id=f"m{k}-{j}", question1=q(b), question2=q(100 * k + 20 + j), label=0, source="t"))
    return pairs


def _embeddings(batches):
    generator = torch.Generator().manual_seed(0)
    texts = sorted({t for b in batches for t in b.queries + b.docs})
    return {t: torch.randn(16, generator=generator, dtype=torch.float64) for t in texts}


def _columns(batch, table):
    """(anchors, positives, [negatives per slot]) embeddings, each (n_q, dim), from the batch's labels."""
    positives = [batch.docs[int(batch.positive[i].nonzero()[0, 0])] for i in range(batch.num_queries)]
    negatives = [[batch.docs[int(j)] for j in (batch.known & ~batch.positive)[i].nonzero()[:, 0]]
                 for i in range(batch.num_queries)]
    stack = lambda texts: torch.stack([table[t] for t in texts])  # noqa: E731
    slots = len(negatives[0])
    return stack(batch.queries), stack(positives), [stack([n[s] for n in negatives]) for s in range(slots)], negatives


def _scores(batch, table):
    return cosine_scores(torch.stack([table[t] for t in batch.queries]), torch.stack([table[t] for t in batch.docs]))


def test_infonce_with_two_hard_negatives_equals_mnrl_with_two_negative_columns():
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    batches = list(PairsStrategy(PairsConfig(max_negatives=2)).batches(_pairs(2), batch_size=6, seed=1))
    assert [b.num_queries for b in batches] == [6, 6]
    table = _embeddings(batches)
    for batch in batches:
        assert bool((batch.known.sum(dim=1) == 3).all())
        anchors, positives, negative_columns, _ = _columns(batch, table)
        ours = build_loss("infonce", {"temperature": 0.05})(_scores(batch, table), batch).loss
        mnrl = MultipleNegativesRankingLoss(torch.nn.Identity(), scale=20.0)
        expected = mnrl.compute_loss_from_embeddings([anchors, positives, *negative_columns], labels=None)
        assert ours.item() == pytest.approx(expected.item(), rel=1e-10)


def test_cosine_pair_equals_st_cosine_similarity_loss_on_the_labelled_pairs():
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    batches = list(PairsStrategy(PairsConfig(max_negatives=2)).batches(_pairs(2), batch_size=6, seed=2))
    table = _embeddings(batches)
    st_loss = CosineSimilarityLoss(torch.nn.Identity())
    for batch in batches:
        anchors, positives, _, negatives = _columns(batch, table)
        # the labelled pairs: (anchor, its duplicate, 1) and (anchor, each labelled non-duplicate, 0)
        left = [q for q, n in zip(batch.queries, negatives) for _ in range(1 + len(n))]
        right = [d for p, n in zip([batch.docs[int(batch.positive[i].nonzero()[0, 0])]
                                    for i in range(batch.num_queries)], negatives) for d in [p, *n]]
        labels = torch.tensor([y for n in negatives for y in [1.0] + [0.0] * len(n)], dtype=torch.float64)
        expected = st_loss.compute_loss_from_embeddings(
            [torch.stack([table[t] for t in left]), torch.stack([table[t] for t in right])], labels)
        ours = build_loss("cosine_pair", {"labels": "binary"})(_scores(batch, table), batch).loss
        assert ours.item() == pytest.approx(expected.item(), rel=1e-10)
        # a loss that ignored the negatives would differ: regressing only the duplicates onto 1
        only_positive = st_loss.compute_loss_from_embeddings([anchors, positives], torch.ones(batch.num_queries))
        assert abs(ours.item() - only_positive.item()) > 1e-3


def test_multitask_is_the_original_projects_mnrl_plus_weighted_cosine_similarity_loss():
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss, MultipleNegativesRankingLoss

    batch = next(PairsStrategy().batches(_pairs(1), batch_size=6, seed=0))
    table = _embeddings([batch])
    anchors, positives, negative_columns, _ = _columns(batch, table)
    mnrl = MultipleNegativesRankingLoss(torch.nn.Identity(), scale=20.0).compute_loss_from_embeddings(
        [anchors, positives, *negative_columns], labels=None)
    labels = torch.cat([torch.ones(batch.num_queries), torch.zeros(batch.num_queries)]).double()
    cosine = CosineSimilarityLoss(torch.nn.Identity()).compute_loss_from_embeddings(
        [torch.cat([anchors, anchors]), torch.cat([positives, negative_columns[0]])], labels)
    loss = build_loss("multitask", {"parts": [{"loss": "infonce", "weight": 1.0, "options": {"temperature": 0.05}},
                                              {"loss": "cosine_pair", "weight": 0.3}]})
    out = loss(_scores(batch, table), batch)
    assert out.loss.item() == pytest.approx(mnrl.item() + 0.3 * cosine.item(), rel=1e-10)
    assert out.metrics["cosine_pair/loss"].item() == pytest.approx(cosine.item(), rel=1e-10)


def test_pair_losses_accept_the_pairs_strategy_and_q_and_a_losses_do_not():
    from qaembed.errors import ConfigError
    from qaembed.losses import check_strategy
    from qaembed.train.data import pair_losses

    assert pair_losses() == ["infonce", "cosine_pair", "pair_bce", "multitask"]
    for name in ("infonce", "cosine_pair", "pair_bce"):
        check_strategy(name, "pairs")
    with pytest.raises(ConfigError, match="its parts share no strategy|does not accept batching strategy 'pairs'"):
        check_strategy("multitask", "pairs", {"parts": [{"loss": "infonce"}, {"loss": "listwise"}]})
    for name in ("listwise", "mse", "multiple_positives", "relaxed_hard_negative", "triplet"):
        with pytest.raises(ConfigError, match=f"loss '{name}' does not accept batching strategy 'pairs'"):
            check_strategy(name, "pairs")
