"""Cross-process pieces of the loop: sharding a batch, gathering embeddings with gradient.

Under ``accelerate launch`` / ``torchrun`` every process builds the same global batch of
``batch_size * world_size`` questions (same seed) and keeps its own shard
(:func:`split_batch`). With ``training.gather_across_devices`` each process gathers the
query and document embeddings of all shards (:func:`all_gather_with_grad`) and combines
the shards' label matrices, which it already holds (:func:`concat_batches`,
block-diagonal: another shard's documents are in-batch negatives), so every process
computes the loss of the full global batch.

Gradients: :func:`all_gather_with_grad`'s backward sums the gradient of the gathered
tensor over processes and returns each process its own rows. Every process computes the
same loss ``L``, so each process's embedding gradient is ``world_size * dL/de``, and
DDP's gradient *averaging* over processes then yields exactly ``dL/dtheta`` of the
single-process global batch (tested in ``tests/train/test_distributed.py``).

Token embeddings (MaxSim, ``qaembed.train.scoring``) come as ``(tokens, mask)``: each process
pads its batch to its own longest text, so before the gather every tensor is zero-padded to
the largest size any process has in each dimension after the first (:func:`pad_across_processes`,
one ``all_reduce(MAX)`` of the shape); padded tokens have mask 0 and never score.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from qaembed.batching.batch import RankingBatch
from qaembed.train.gradcache import Embedded, pad_to, rows


def split_batch(batch: RankingBatch, parts: int) -> list[RankingBatch]:
    """``parts`` shards of consecutive queries; each keeps the documents its queries know.

    A document known to queries of two shards appears in both (``concat_batches`` merges
    it again by text).
    """
    if batch.num_queries < parts:
        raise ValueError(f"cannot split a batch of {batch.num_queries} queries into {parts} shards")
    bounds = torch.linspace(0, batch.num_queries, parts + 1).round().long().tolist()
    shards = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        cols = torch.nonzero(batch.known[start:stop].any(dim=0)).flatten()
        col_list = cols.tolist()
        shards.append(
            RankingBatch(
                queries=batch.queries[start:stop],
                docs=[batch.docs[c] for c in col_list],
                relevance=batch.relevance[start:stop][:, cols],
                positive=batch.positive[start:stop][:, cols],
                known=batch.known[start:stop][:, cols],
                rank=batch.rank[start:stop][:, cols],
                query_ids=batch.query_ids[start:stop],
                doc_ids=[batch.doc_ids[c] for c in col_list],
            )
        )
    return shards


def concat_batches(batches: list[RankingBatch]) -> tuple[RankingBatch, torch.Tensor]:
    """Block-diagonal union of batches, documents merged by text.

    Returns the merged batch and ``doc_rows``: (n_d,) long indices into the concatenation of
    the batches' documents, so ``torch.cat(doc_embeddings)[doc_rows]`` are the merged
    batch's document embeddings. A query's labels come from its own batch; every document
    of another batch that its own batch does not hold is an in-batch negative.
    """
    text_column: dict[str, int] = {}
    doc_rows: list[int] = []
    docs: list[str] = []
    doc_ids: list[str] = []
    columns: list[torch.Tensor] = []  # per batch: (n_d_b,) merged column of each of its docs
    offset = 0
    for batch in batches:
        cols = []
        for position, (text, doc_id) in enumerate(zip(batch.docs, batch.doc_ids, strict=True)):
            if text not in text_column:
                text_column[text] = len(docs)
                docs.append(text)
                doc_ids.append(doc_id)
                doc_rows.append(offset + position)
            cols.append(text_column[text])
        columns.append(torch.tensor(cols, dtype=torch.long))
        offset += batch.num_docs
    n_q, n_d = sum(b.num_queries for b in batches), len(docs)
    first = batches[0]
    relevance = torch.zeros((n_q, n_d), dtype=first.relevance.dtype)
    positive = torch.zeros((n_q, n_d), dtype=torch.bool)
    known = torch.zeros((n_q, n_d), dtype=torch.bool)
    rank = torch.full((n_q, n_d), -1, dtype=first.rank.dtype)
    row = 0
    for batch, cols in zip(batches, columns, strict=True):
        rows = slice(row, row + batch.num_queries)
        relevance[rows, cols] = batch.relevance.cpu()
        positive[rows, cols] = batch.positive.cpu()
        known[rows, cols] = batch.known.cpu()
        rank[rows, cols] = batch.rank.cpu()
        row += batch.num_queries
    merged = RankingBatch(
        queries=[q for b in batches for q in b.queries],
        docs=docs,
        relevance=relevance,
        positive=positive,
        known=known,
        rank=rank,
        query_ids=[i for b in batches for i in b.query_ids],
        doc_ids=doc_ids,
    )
    return merged, torch.tensor(doc_rows, dtype=torch.long)


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every process's rows (sizes may differ); backward: sum over processes, own rows."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:
        ctx.sizes, ctx.rank = sizes, rank
        longest = max(sizes)
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        gathered = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(gathered, padded.contiguous())
        return torch.cat([part[:size] for part, size in zip(gathered, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def all_gather_with_grad(tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """(sum(sizes), ...): the rows of every process in rank order; ``sizes[r]`` rows come from rank ``r``."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    if len(sizes) != dist.get_world_size() or sizes[dist.get_rank()] != tensor.shape[0]:
        raise ValueError(f"sizes {sizes} do not match world size {dist.get_world_size()} / local rows {tensor.shape[0]}")
    return _AllGatherWithGrad.apply(tensor, sizes, dist.get_rank())


def pad_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` zero-padded in every dimension after the first to the largest size of any process.

    One process (or no process group): unchanged. Pooled embeddings have the same shape
    everywhere, so only token tensors and masks grow.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1 or tensor.dim() < 2:
        return tensor
    sizes = torch.tensor(tensor.shape[1:], dtype=torch.long, device=tensor.device)
    dist.all_reduce(sizes, op=dist.ReduceOp.MAX)
    return pad_to(tensor, (tensor.shape[0], *sizes.tolist()))


def gather_embedded(embedded: Embedded, sizes: list[int]) -> Embedded:
    """Every process's rows of a tensor or tuple of tensors (padded to a common shape), gradient to own rows.

    Bool masks travel as uint8 (not every backend gathers bool) and come back as bool.
    """
    parts = (embedded,) if isinstance(embedded, torch.Tensor) else tuple(embedded)
    gathered = []
    for tensor in parts:
        is_bool = tensor.dtype == torch.bool
        padded = pad_across_processes(tensor.to(torch.uint8) if is_bool else tensor)
        result = all_gather_with_grad(padded, sizes)
        gathered.append(result.bool() if is_bool else result)
    return gathered[0] if isinstance(embedded, torch.Tensor) else tuple(gathered)


def _device(embedded: Embedded) -> torch.device:
    return (embedded if isinstance(embedded, torch.Tensor) else embedded[0]).device


def gathered_loss_inputs(
    query_embeddings: Embedded, doc_embeddings: Embedded, shards: list[RankingBatch]
) -> tuple[Embedded, Embedded, RankingBatch]:
    """The global batch's query and document embeddings and labels, with gradient to local rows.

    ``shards`` are every process's batches in rank order (each process builds them all from
    the same seed, so no labels travel between processes, only embeddings). Embeddings are a
    tensor (pooled) or a tuple of row-aligned tensors (MaxSim's tokens and mask).
    """
    all_queries = gather_embedded(query_embeddings, [s.num_queries for s in shards])  # (sum n_q, ...)
    all_docs = gather_embedded(doc_embeddings, [s.num_docs for s in shards])  # (sum n_d, ...)
    merged, doc_rows = concat_batches(shards)
    return all_queries, rows(all_docs, doc_rows.to(_device(all_docs))), merged.to(_device(query_embeddings))
