"""MaxSim scorer: equals a per-pair loop and an independent ColBERT/PyLate-style reference,
padding never contributes, chunking changes nothing, gradients flow."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qaembed.losses.scores import maxsim_scores


def _random_tokens(n: int, length: int, dim: int, generator: torch.Generator):
    """L2-normalized token embeddings with random right padding (every text keeps >= 1 token);
    padded positions hold large random junk, so any leak would show."""
    tokens = F.normalize(torch.randn(n, length, dim, generator=generator, dtype=torch.float64), dim=-1)
    lengths = torch.randint(1, length + 1, (n,), generator=generator)
    mask = torch.arange(length)[None, :] < lengths[:, None]  # (n, length)
    junk = 50 * torch.randn(n, length, dim, generator=generator, dtype=torch.float64)
    return torch.where(mask[..., None], tokens, junk), mask.long()


def _loop_maxsim(q_tok, q_mask, d_tok, d_mask):
    """The definition, one pair and one token at a time."""
    scores = torch.zeros(len(q_tok), len(d_tok), dtype=q_tok.dtype)
    for i in range(len(q_tok)):
        for j in range(len(d_tok)):
            total = 0.0
            for a in range(q_tok.shape[1]):
                if not q_mask[i, a]:
                    continue
                total += max(float(q_tok[i, a] @ d_tok[j, b]) for b in range(d_tok.shape[1]) if d_mask[j, b])
            scores[i, j] = total
    return scores


def _colbert_reference(q_tok, d_tok, q_mask, d_mask):
    """PyLate's ``colbert_scores`` formula, written here independently (PyLate is not installable
    alongside sentence-transformers 6): einsum ``ash,bth->abst``, padded document tokens masked
    to -inf before the max over document tokens, query padding zeroed before the sum."""
    sims = torch.einsum("ash,bth->abst", q_tok, d_tok)  # (n_q, n_d, L_q, L_d)
    sims = sims.masked_fill(~d_mask.bool()[None, :, None, :], float("-inf"))
    best = sims.max(dim=-1).values  # (n_q, n_d, L_q)
    best = best * q_mask.to(best.dtype)[:, None, :]
    return best.sum(dim=-1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maxsim_equals_loop_and_reference(seed):
    generator = torch.Generator().manual_seed(seed)
    q_tok, q_mask = _random_tokens(4, 7, 5, generator)
    d_tok, d_mask = _random_tokens(6, 9, 5, generator)
    scores = maxsim_scores(q_tok, q_mask, d_tok, d_mask)
    assert scores.shape == (4, 6)
    torch.testing.assert_close(scores, _loop_maxsim(q_tok, q_mask, d_tok, d_mask), atol=1e-6, rtol=0)
    torch.testing.assert_close(scores, _colbert_reference(q_tok, d_tok, q_mask, d_mask), atol=1e-6, rtol=0)
    # float32 too (the training dtype)
    scores32 = maxsim_scores(q_tok.float(), q_mask, d_tok.float(), d_mask)
    torch.testing.assert_close(scores32.double(), scores, atol=1e-5, rtol=0)


def test_mean_divides_by_real_query_tokens_and_lies_in_unit_interval():
    generator = torch.Generator().manual_seed(3)
    q_tok, q_mask = _random_tokens(5, 6, 4, generator)
    d_tok, d_mask = _random_tokens(3, 8, 4, generator)
    total = maxsim_scores(q_tok, q_mask, d_tok, d_mask)
    mean = maxsim_scores(q_tok, q_mask, d_tok, d_mask, reduce="mean")
    torch.testing.assert_close(mean, total / q_mask.sum(dim=1, keepdim=True), atol=1e-12, rtol=0)
    assert bool((mean.abs() <= 1 + 1e-9).all())


@pytest.mark.parametrize("chunk", [1, 2, 4, 100])
def test_doc_chunks_change_nothing(chunk):
    generator = torch.Generator().manual_seed(4)
    q_tok, q_mask = _random_tokens(3, 5, 4, generator)
    d_tok, d_mask = _random_tokens(7, 6, 4, generator)
    torch.testing.assert_close(
        maxsim_scores(q_tok, q_mask, d_tok, d_mask, doc_chunk_size=chunk), maxsim_scores(q_tok, q_mask, d_tok, d_mask),
        atol=1e-12, rtol=0,
    )


def test_padding_never_contributes():
    generator = torch.Generator().manual_seed(5)
    q_tok, q_mask = _random_tokens(4, 6, 3, generator)
    d_tok, d_mask = _random_tokens(5, 7, 3, generator)
    # every real similarity negative: a padded document token must still not win the max
    d_tok = torch.where(d_mask.bool()[..., None], -q_tok[:1, :1].expand(5, 7, 3), d_tok)
    q_tok = torch.where(q_mask.bool()[..., None], q_tok[:1, :1].expand(4, 6, 3), q_tok)
    base = maxsim_scores(q_tok, q_mask, d_tok, d_mask)
    assert bool((base < 0).all())
    d_changed = torch.where(d_mask.bool()[..., None], d_tok, torch.full_like(d_tok, 7.0))
    q_changed = torch.where(q_mask.bool()[..., None], q_tok, torch.full_like(q_tok, -3.0))
    torch.testing.assert_close(maxsim_scores(q_changed, q_mask, d_changed, d_mask), base, atol=0, rtol=0)
    # padding columns appended on either side change nothing
    q_wide = torch.cat([q_tok, torch.randn(4, 3, 3, dtype=q_tok.dtype)], dim=1)
    d_wide = torch.cat([d_tok, torch.randn(5, 2, 3, dtype=d_tok.dtype)], dim=1)
    q_wide_mask = torch.cat([q_mask, torch.zeros(4, 3, dtype=q_mask.dtype)], dim=1)
    d_wide_mask = torch.cat([d_mask, torch.zeros(5, 2, dtype=d_mask.dtype)], dim=1)
    torch.testing.assert_close(maxsim_scores(q_wide, q_wide_mask, d_wide, d_wide_mask), base, atol=1e-12, rtol=0)


def test_document_without_tokens_scores_zero():
    q_tok = torch.ones(2, 3, 2)
    d_tok = torch.ones(2, 4, 2)
    d_mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    scores = maxsim_scores(q_tok, torch.ones(2, 3), d_tok, d_mask)
    assert scores[:, 1].tolist() == [0.0, 0.0] and scores[:, 0].tolist() == [6.0, 6.0]


def test_gradients_flow_to_real_tokens_only():
    generator = torch.Generator().manual_seed(6)
    q_tok, q_mask = _random_tokens(3, 5, 4, generator)
    d_tok, d_mask = _random_tokens(4, 6, 4, generator)
    q_tok.requires_grad_()
    d_tok.requires_grad_()
    maxsim_scores(q_tok, q_mask, d_tok, d_mask, reduce="mean", doc_chunk_size=3).sum().backward()
    assert q_tok.grad.abs()[q_mask.bool()].sum() > 0 and d_tok.grad.abs()[d_mask.bool()].sum() > 0
    assert q_tok.grad[~q_mask.bool()].abs().max() == 0 and d_tok.grad[~d_mask.bool()].abs().max() == 0
    assert torch.isfinite(q_tok.grad).all() and torch.isfinite(d_tok.grad).all()
    # against the loop's autograd on one pair
    q_tok.grad, d_tok.grad = None, None
    maxsim_scores(q_tok, q_mask, d_tok, d_mask)[1, 2].backward()
    q_ref, d_ref = q_tok.detach().clone().requires_grad_(), d_tok.detach().clone().requires_grad_()
    _colbert_reference(q_ref, d_ref, q_mask, d_mask)[1, 2].backward()
    torch.testing.assert_close(q_tok.grad, q_ref.grad)
    torch.testing.assert_close(d_tok.grad, d_ref.grad)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="token embeddings"):
        maxsim_scores(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match="masks"):
        maxsim_scores(torch.ones(2, 3, 4), torch.ones(2, 2), torch.ones(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match="reduce"):
        maxsim_scores(torch.ones(1, 1, 1), torch.ones(1, 1), torch.ones(1, 1, 1), torch.ones(1, 1), reduce="max")
