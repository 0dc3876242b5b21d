"""Masking helpers shared by the losses: excluded pairs get exactly zero gradient.

Excluded logits are replaced with :func:`torch.where` by a large *finite* negative that
depends on the dtype (a quarter of its most negative value, so subtracting a row maximum
cannot overflow), never ``-inf``: ``exp`` of it is exactly 0, a zero target times its
log-probability is 0 (not NaN), and ``where`` sends no gradient to the replaced entries.
"""

from __future__ import annotations

import torch

from qaembed.batching.batch import RankingBatch


def large_negative(dtype: torch.dtype) -> float:
    """A finite value whose ``exp`` is 0 in ``dtype``; works in fp32, bf16 and fp16."""
    return torch.finfo(dtype).min / 4


def masked_logits(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``logits`` where ``keep``, a large negative elsewhere (no gradient to those entries)."""
    return torch.where(keep, logits, torch.full_like(logits, large_negative(logits.dtype)))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` (0 with a zero gradient when the mask is empty)."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1).to(values.dtype)


def single_positive_index(batch: RankingBatch, loss_name: str) -> torch.Tensor:
    """(n_q,) column of each query's one positive; ValueError if a query has none or several."""
    counts = batch.positive.sum(dim=1)  # (n_q,)
    # checked where it is free: on CPU batches (built by a strategy, or by hand). On an accelerator the
    # batch was built by a strategy the config validated for this loss, and the check would make every
    # step wait for the device.
    if batch.positive.device.type == "cpu" and bool((counts != 1).any()):
        bad = int((counts != 1).nonzero()[0, 0])
        raise ValueError(
            f"loss {loss_name!r} needs exactly one positive per query; query {batch.query_ids[bad]!r} has "
            f"{int(counts[bad])} (use a strategy it accepts)"
        )
    return batch.positive.to(torch.int8).argmax(dim=1)


def in_batch_accuracy(scores: torch.Tensor, candidates: torch.Tensor, batch: RankingBatch) -> torch.Tensor:
    """0-d fraction of queries whose best-scoring candidate is one of their positives (0 with no query)."""
    if not scores.shape[0]:
        return scores.new_zeros((), dtype=torch.float32)
    best = masked_logits(scores.detach(), candidates).argmax(dim=1, keepdim=True)  # (n_q, 1)
    return batch.positive.gather(1, best).float().mean()


def negatives(batch: RankingBatch, hard_negatives: bool, in_batch_negatives: bool) -> torch.Tensor:
    """(n_q, n_d) bool: the query's hard negatives and/or in-batch negatives."""
    mask = torch.zeros_like(batch.positive)
    if hard_negatives:
        mask = mask | batch.hard_negative
    if in_batch_negatives:
        mask = mask | batch.in_batch_negative
    return mask


def known_or_in_batch(batch: RankingBatch, in_batch_negatives: bool) -> torch.Tensor:
    """(n_q, n_d) bool: the known pairs, plus every in-batch pair if ``in_batch_negatives``."""
    return batch.known | batch.in_batch_negative if in_batch_negatives else batch.known


def kl_per_query(target: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """(n_q,) KL(target ‖ q) from a target distribution and log-probabilities; 0·log 0 = 0."""
    target = target.to(log_q.dtype)
    per_pair = torch.xlogy(target, target) - target * log_q  # (n_q, n_d)
    return torch.where(target > 0, per_pair, torch.zeros_like(per_pair)).sum(dim=1)


def pair_regression(
    scores: torch.Tensor, labels: torch.Tensor, pairs: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean squared error of ``scores`` against ``labels`` over ``pairs``, and its metrics (0-d tensors)."""
    error = scores - labels.to(scores.dtype)  # (n_q, n_d)
    loss = masked_mean(error * error, pairs)
    return loss, {"loss": loss.detach(), "mean_abs_error": masked_mean(error.detach().abs(), pairs)}
