"""GradCache gives the plain pass's loss and parameter gradients, for several losses."""

from __future__ import annotations

import pytest
import torch

from qaembed.batching.collate import Collator
from qaembed.batching.strategies import build_strategy
from qaembed.data.dataset import read_split
from qaembed.losses import build_loss
from qaembed.losses.scores import cosine_scores
from qaembed.train.gradcache import forward_backward, split_features


def _loss_and_grads(model, loss_fn, batch, mini_batch_size):
    model.zero_grad(set_to_none=True)
    features = Collator(model, 32)(batch)

    def compute_loss(q, d):
        return loss_fn(cosine_scores(q, d), batch)

    output = forward_backward(model, features, batch.num_queries, compute_loss, mini_batch_size=mini_batch_size)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return output.loss.item(), grads


@pytest.mark.parametrize(
    ("loss_name", "strategy_name", "options"),
    [("infonce", "hard_negative", {}), ("listwise", "listwise", {}), ("mse", "listwise", {})],
)
def test_gradcache_matches_plain_pass(tiny_model_dir, tiny_dataset, loss_name, strategy_name, options):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    model.eval()  # no dropout: the chunked pass must reproduce the plain one exactly
    records = read_split(tiny_dataset, "train")
    batch = next(build_strategy(strategy_name).batches(records, batch_size=8, seed=0))
    loss_fn = build_loss(loss_name, options)
    plain_loss, plain_grads = _loss_and_grads(model, loss_fn, batch, None)
    cached_loss, cached_grads = _loss_and_grads(model, loss_fn, batch, 5)
    assert batch.num_queries + batch.num_docs > 10  # at least three chunks
    assert cached_loss == pytest.approx(plain_loss, abs=1e-5)
    assert plain_grads.keys() == cached_grads.keys() and plain_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_gradcache_replays_dropout_masks(tiny_model_dir, tiny_dataset):
    """With dropout on, each chunk's second forward reuses the first one's RNG state:
    the gradients equal those of a plain pass over the same chunks with the same RNG."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.3
    model.train()
    batch = next(build_strategy("infonce").batches(read_split(tiny_dataset, "train"), batch_size=6, seed=1))
    features = Collator(model, 32)(batch)
    loss_fn = build_loss("infonce", {})

    def compute_loss(q, d):
        return loss_fn(cosine_scores(q, d), batch)

    torch.manual_seed(7)
    forward_backward(model, features, batch.num_queries, compute_loss, mini_batch_size=4)
    cached = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    # reference: the same chunks embedded with autograd, in order, from the same seed
    torch.manual_seed(7)
    embeddings = torch.cat([model(chunk)["sentence_embedding"] for chunk in split_features(features, 4)])
    compute_loss(embeddings[: batch.num_queries], embeddings[batch.num_queries :]).loss.backward()
    for name, param in model.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(cached[name], param.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_split_features_trims_each_chunk_to_its_longest_text():
    features = {
        "input_ids": torch.tensor([[1, 2, 0, 0], [1, 0, 0, 0], [1, 2, 3, 4]]),
        "attention_mask": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]),
    }
    chunks = split_features(features, 2)
    assert [tuple(c["input_ids"].shape) for c in chunks] == [(2, 2), (1, 4)]
    assert chunks[0]["attention_mask"].tolist() == [[1, 1], [1, 0]]
