"""Cross-process in-batch negatives: 2 CPU processes (gloo) give the single-process loss and gradients."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from qaembed.batching.batch import RankingBatch
from qaembed.train.distributed import concat_batches, split_batch

DIM = 6


def _global_batch() -> RankingBatch:
    """5 queries, 7 docs; doc 'shared' is known to queries 1 and 3 (it lands in both shards)."""
    docs = ["a0", "a1", "shared", "b0", "c0", "c1", "d0"]
    known = torch.zeros((5, 7), dtype=torch.bool)
    positive = torch.zeros((5, 7), dtype=torch.bool)
    rank = torch.full((5, 7), -1)
    for q, cols in enumerate([[0, 1], [2], [4, 5], [2, 3], [6]]):
        known[q, cols] = True
        positive[q, cols[0]] = True
        rank[q, cols] = torch.arange(len(cols))
    return RankingBatch(
        queries=[f"q{i}" for i in range(5)], docs=docs, relevance=positive.float() * 0.8 + known.float() * 0.2,
        positive=positive, known=known, rank=rank, query_ids=[f"s:{i}" for i in range(5)],
        doc_ids=[f"s:d{i}" for i in range(7)],
    )


def _embeddings(texts: list[str]) -> torch.Tensor:
    """A deterministic embedding per text (the same on every process)."""
    rows = []
    for text in texts:
        generator = torch.Generator().manual_seed(sum(ord(c) * 31**i for i, c in enumerate(text)) % 2**31)
        rows.append(torch.randn(DIM, generator=generator))
    return torch.stack(rows)


def _loss(q: torch.Tensor, d: torch.Tensor, batch: RankingBatch) -> torch.Tensor:
    from qaembed.losses import build_loss
    from qaembed.losses.scores import cosine_scores

    return build_loss("infonce", {"temperature": 0.1})(cosine_scores(q, d), batch).loss


def _worker(rank: int, world: int, port: int, results) -> None:
    import torch.distributed as dist

    from qaembed.train.distributed import gathered_loss_inputs

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        shards = split_batch(_global_batch(), world)
        local = shards[rank]
        q = _embeddings(local.queries).requires_grad_()
        d = _embeddings(local.docs).requires_grad_()
        all_q, all_d, merged = gathered_loss_inputs(q, d, shards)
        loss = _loss(all_q, all_d, merged)
        loss.backward()
        results[rank] = (loss.item(), local.queries, local.docs, q.grad.clone(), d.grad.clone())
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_split_then_concat_restores_the_batch_labels():
    batch = _global_batch()
    shards = split_batch(batch, 2)
    assert [s.num_queries for s in shards] == [2, 3] or [s.num_queries for s in shards] == [3, 2]
    assert sum("shared" in s.docs for s in shards) == 2  # duplicated across shards
    merged, doc_rows = concat_batches(shards)
    assert merged.queries == batch.queries and sorted(merged.docs) == sorted(batch.docs)
    order = [merged.docs.index(text) for text in batch.docs]
    for name in ("relevance", "positive", "known", "rank"):
        assert torch.equal(getattr(merged, name)[:, order], getattr(batch, name)), name
    all_docs = [text for s in shards for text in s.docs]
    assert [all_docs[i] for i in doc_rows.tolist()] == merged.docs


def test_two_processes_match_one_process_on_the_global_batch():
    batch = _global_batch()
    q = _embeddings(batch.queries).requires_grad_()
    d = _embeddings(batch.docs).requires_grad_()
    expected = _loss(q, d, batch)
    expected.backward()

    world = 2
    manager = mp.get_context("fork").Manager()
    results = manager.dict()
    # fork: the workers inherit the imported modules (spawn would re-import torch in each)
    mp.start_processes(_worker, args=(world, _free_port(), results), nprocs=world, join=True, start_method="fork")
    q_grad = dict(zip(batch.queries, q.grad))
    d_grad = dict(zip(batch.docs, d.grad))
    shared_grad = torch.zeros(DIM)
    for rank in range(world):
        loss, queries, docs, local_q_grad, local_d_grad = results[rank]
        assert loss == pytest.approx(expected.item(), abs=1e-6)
        # DDP averages parameter gradients over processes: the effective gradient is grad / world
        for text, grad in zip(queries, local_q_grad / world):
            torch.testing.assert_close(grad, q_grad[text], atol=1e-6, rtol=1e-5)
        for text, grad in zip(docs, local_d_grad / world):
            if text == "shared":  # its copies on both processes together carry its gradient
                shared_grad += grad
            else:
                torch.testing.assert_close(grad, d_grad[text], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shared_grad, d_grad["shared"], atol=1e-6, rtol=1e-5)


# ---- token embeddings (MaxSim): padded to a common length, then gathered like pooled ones ----

TOKEN_DIM = 4


def _token_embeddings(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (n, L, dim) tokens per text, 2-5 real tokens by text, padded to this call's longest."""
    lengths = [2 + sum(map(ord, text)) % 4 for text in texts]
    tokens = torch.zeros(len(texts), max(lengths), TOKEN_DIM)
    for row, (text, length) in enumerate(zip(texts, lengths, strict=True)):
        generator = torch.Generator().manual_seed(sum(ord(c) * 17**i for i, c in enumerate(text)) % 2**31)
        tokens[row, :length] = torch.nn.functional.normalize(torch.randn(length, TOKEN_DIM, generator=generator), dim=1)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return tokens, mask


def _maxsim_loss(q, d, batch: RankingBatch) -> torch.Tensor:
    from qaembed.losses import build_loss
    from qaembed.losses.scores import maxsim_scores

    (q_tok, q_mask), (d_tok, d_mask) = q, d
    scores = maxsim_scores(q_tok, q_mask, d_tok, d_mask, reduce="mean")
    return build_loss("infonce", {"temperature": 0.1})(scores, batch).loss


def _token_worker(rank: int, world: int, port: int, results) -> None:
    import torch.distributed as dist

    from qaembed.train.distributed import gathered_loss_inputs

    # a forked child must not enter the OpenMP pool its parent already used (it would wait forever);
    # MaxSim's einsum is large enough to go parallel, the pooled test's products are not
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        local = split_batch(_global_batch(), world)[rank]
        q_tok, q_mask = _token_embeddings(local.queries)
        d_tok, d_mask = _token_embeddings(local.docs)
        q_tok.requires_grad_()
        d_tok.requires_grad_()
        all_q, all_d, merged = gathered_loss_inputs((q_tok, q_mask), (d_tok, d_mask), split_batch(_global_batch(), world))
        assert all_q[1].dtype == torch.bool and all_q[0].shape[1] == all_q[1].shape[1]
        loss = _maxsim_loss(all_q, all_d, merged)
        loss.backward()
        results[rank] = (loss.item(), local.queries, local.docs, q_tok.grad.clone(), d_tok.grad.clone())
    finally:
        dist.destroy_process_group()


def test_pad_and_gather_helpers_are_identities_on_one_process():
    from qaembed.train.distributed import gather_embedded, pad_across_processes
    from qaembed.train.gradcache import cat_padded, pad_to

    tokens, mask = _token_embeddings(["ab", "abcd", "x"])
    assert pad_across_processes(tokens) is tokens
    gathered = gather_embedded((tokens, mask), [3])
    assert torch.equal(gathered[0], tokens) and torch.equal(gathered[1], mask) and gathered[1].dtype == torch.bool
    padded = pad_to(tokens, (3, tokens.shape[1] + 2, TOKEN_DIM))
    assert padded.shape == (3, tokens.shape[1] + 2, TOKEN_DIM) and torch.equal(padded[:, : tokens.shape[1]], tokens)
    assert bool((padded[:, tokens.shape[1] :] == 0).all())
    joined = cat_padded([mask[:1], mask[1:, :2]])
    assert joined.shape == (3, mask.shape[1]) and joined[1:, 2:].sum() == 0


def test_two_processes_match_one_process_for_maxsim_token_embeddings():
    world = 2
    manager = mp.get_context("fork").Manager()
    results = manager.dict()
    mp.start_processes(_token_worker, args=(world, _free_port(), results), nprocs=world, join=True, start_method="fork")
    batch = _global_batch()
    q_tok, q_mask = _token_embeddings(batch.queries)
    d_tok, d_mask = _token_embeddings(batch.docs)
    q_tok.requires_grad_()
    d_tok.requires_grad_()
    expected = _maxsim_loss((q_tok, q_mask), (d_tok, d_mask), batch)
    expected.backward()
    q_grad = dict(zip(batch.queries, q_tok.grad))
    d_grad = dict(zip(batch.docs, d_tok.grad))
    shared_grad = None
    for rank in range(world):
        loss, queries, docs, local_q_grad, local_d_grad = results[rank]
        assert loss == pytest.approx(expected.item(), abs=1e-6)
        for text, grad in zip(queries, local_q_grad / world):
            reference = q_grad[text]
            torch.testing.assert_close(grad, reference[: grad.shape[0]], atol=1e-6, rtol=1e-5)
        for text, grad in zip(docs, local_d_grad / world):
            reference = d_grad[text][: grad.shape[0]]
            if text == "shared":
                shared_grad = grad if shared_grad is None else shared_grad + grad
            else:
                torch.testing.assert_close(grad, reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shared_grad, d_grad["shared"][: shared_grad.shape[0]], atol=1e-6, rtol=1e-5)
