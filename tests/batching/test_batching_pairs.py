"""The ``pairs`` strategy: no cluster-mate is an in-batch negative; InfoNCE on it equals MNRL on triples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qaembed.batching.pairs import PairsConfig, PairsStrategy
from qaembed.data.pairs import DelimitedPairs, PairQuestion, PairRecord, duplicate_clusters
from qaembed.losses import build_loss
from qaembed.losses.scores import cosine_scores

QQP = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "pairs" / "qqp.tsv"


def _pairs():
    return list(DelimitedPairs(QQP, kind="pairs-qqp").pairs())


@pytest.mark.parametrize("seed", range(5))
def test_no_cluster_mate_is_an_in_batch_negative(seed):
    pairs = _pairs()
    ids = sorted({q.id for p in pairs for q in (p.question1, p.question2)})
    clusters = duplicate_clusters(ids, [(p.question1.id, p.question2.id) for p in pairs if p.label == 1])
    labelled = {(p.question1.id, p.question2.id): p.label for p in pairs}
    labelled |= {(b, a): y for (a, b), y in labelled.items()}
    batches = list(PairsStrategy(PairsConfig(max_negatives=2)).batches(pairs, batch_size=3, seed=seed))
    anchors = [q for b in batches for q in b.query_ids]
    assert len(anchors) == 8  # 4 duplicate pairs, both directions, each exactly once
    for batch in batches:
        for i, query in enumerate(batch.query_ids):
            for j, doc in enumerate(batch.doc_ids):
                if clusters[doc] == clusters[query]:
                    assert batch.positive[i, j], (query, doc)  # the only cluster-mate is the own positive
                if batch.known[i, j] and not batch.positive[i, j]:
                    assert labelled[(query, doc)] == 0  # hard negatives are labelled non-duplicates
            assert batch.positive[i].sum() == 1
            assert batch.queries[i] not in batch.docs


def test_batches_are_deterministic():
    a = [b.query_ids for b in PairsStrategy().batches(_pairs(), 2, seed=4)]
    b = [b.query_ids for b in PairsStrategy().batches(list(reversed(_pairs())), 2, seed=4)]
    assert a == b  # independent of input order
    assert a != [b.query_ids for b in PairsStrategy().batches(_pairs(), 2, seed=5)]


def test_infonce_on_pairs_equals_mnrl_on_triples():
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    q = lambda i: PairQuestion(id=f"q{i}", text=f"question {i}")  # noqa: E731
    pairs = []
    for k in range(5):  # anchor 10k+1 ~ 10k+2, each with one labelled non-duplicate 10k+3
        a, b, n = 10 * k + 1, 10 * k + 2, 10 * k + 3
        pairs += [PairRecord(id=f"d{k}", question1=q(a), question2=q(b), label=1, source="t"),
                  PairRecord(id=f"n{k}", question1=q(a), question2=q(n), label=0, source="t"),
                  PairRecord(id=f"m{k}", question1=q(b), question2=q(n + 1), label=0, source="t")]
    batches = list(PairsStrategy().batches(pairs, batch_size=10, seed=0))
    # both directions of one duplicate pair never share a batch: 5 clusters -> 2 batches of 5 anchors
    assert [b.num_queries for b in batches] == [5, 5]
    generator = torch.Generator().manual_seed(0)
    texts = sorted({t for b in batches for t in b.queries + b.docs})
    table = {t: torch.randn(16, generator=generator, dtype=torch.float64) for t in texts}
    for batch, temperature in zip(batches, (0.05, 1.0)):
        assert bool((batch.known.sum(dim=1) == 2).all())
        negative_of = [batch.docs[int(((batch.known & ~batch.positive)[i]).nonzero()[0, 0])] for i in range(5)]
        positive_of = [batch.docs[int(batch.positive[i].nonzero()[0, 0])] for i in range(5)]
        scores = cosine_scores(torch.stack([table[t] for t in batch.queries]), torch.stack([table[t] for t in batch.docs]))
        ours = build_loss("infonce", {"temperature": temperature})(scores, batch).loss
        triples = [torch.stack([table[t] for t in column]) for column in (batch.queries, positive_of, negative_of)]
        mnrl = MultipleNegativesRankingLoss(torch.nn.Identity(), scale=1 / temperature)
        expected = mnrl.compute_loss_from_embeddings(triples, labels=None)
        assert ours.item() == pytest.approx(expected.item(), rel=1e-10)
        # gradients with respect to the scores' inputs agree too
        queries = torch.stack([table[t] for t in batch.queries]).requires_grad_()
        docs = torch.stack([table[t] for t in batch.docs]).requires_grad_()
        build_loss("infonce", {"temperature": temperature})(cosine_scores(queries, docs), batch).loss.backward()
        anchors = torch.stack([table[t] for t in batch.queries]).requires_grad_()
        mnrl.compute_loss_from_embeddings([anchors, triples[1], triples[2]], labels=None).backward()
        assert torch.allclose(queries.grad, anchors.grad, rtol=1e-8, atol=1e-12)
