"""One training forward/backward over a batch's texts, plain or with GradCache.

The loop tokenizes ``queries + docs`` once (``qaembed.batching.collate``) and calls
:func:`forward_backward` with a ``compute_loss(query_embeddings, doc_embeddings)``
closure. Without ``mini_batch_size`` that is one forward pass and one backward pass.

With ``mini_batch_size`` (GradCache, Gao et al. 2021, "Scaling Deep Contrastive Learning
Batch Size under Memory Limited Setup", https://arxiv.org/abs/2101.06983):

1. embed the texts chunk by chunk (``mini_batch_size`` texts each) without autograd,
   remembering the RNG state before each chunk;
2. concatenate the embeddings as a leaf tensor that requires grad, compute the loss on the
   full score matrix and backward: this gives d loss / d embedding for every text;
3. embed each chunk again with autograd, under the RNG state saved for it (dropout masks
   match step 1), and backward ``sum(embedding * cached_grad)``: the parameter gradients
   accumulate to exactly those of the plain pass, while activation memory is that of one
   chunk.

Because losses are pure functions of scores, this works for every loss. Each chunk is
trimmed to its own longest text (fewer padded tokens than the batch-wide padding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import ContextManager

import torch
from torch import nn

from qaembed.losses.base import LossOutput

LossFn = Callable[[torch.Tensor, torch.Tensor], LossOutput]


def embed(model: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
    """(n, dim) sentence embeddings of tokenized texts (a SentenceTransformer forward)."""
    return model(dict(features))["sentence_embedding"]


def split_features(features: dict[str, torch.Tensor], chunk_size: int) -> list[dict[str, torch.Tensor]]:
    """Row chunks of ``chunk_size`` texts, each cut to the longest text it holds.

    Padding is on the right (BERT-style tokenizers), so dropping trailing columns where
    every row's attention mask is 0 changes no embedding.
    """
    mask = features["attention_mask"]
    chunks = []
    for start in range(0, mask.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        length = int(mask[rows].sum(dim=1).max())
        chunks.append(
            {key: (value[rows, :length] if value.dim() == 2 else value[rows]) for key, value in features.items()}
        )
    return chunks


class _RngState:
    """CPU and CUDA RNG states at one moment, to replay a forward pass with the same dropout."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        self.cuda = [torch.cuda.get_rng_state(d) for d in self.cuda_devices]

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=self.cuda_devices):
            torch.set_rng_state(self.cpu)
            for device, state in zip(self.cuda_devices, self.cuda, strict=True):
                torch.cuda.set_rng_state(state, device)
            yield


def forward_backward(
    model: nn.Module,
    features: dict[str, torch.Tensor],
    num_queries: int,
    compute_loss: LossFn,
    *,
    mini_batch_size: int | None = None,
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
    no_sync: Callable[[], ContextManager] = contextlib.nullcontext,
) -> LossOutput:
    """Forward all texts, compute the loss, backward; returns the loss output (graph freed).

    ``features`` hold ``num_queries`` query rows followed by the document rows.
    ``backward(scalar)`` runs a backward pass (``accelerator.backward`` applies fp16 loss
    scaling); ``no_sync()`` suppresses DDP's gradient all-reduce for all but the last chunk.
    """
    num_texts = features["attention_mask"].shape[0]
    if mini_batch_size is None or mini_batch_size >= num_texts:
        embeddings = embed(model, features)  # (n_q + n_d, dim)
        output = compute_loss(embeddings[:num_queries], embeddings[num_queries:])
        backward(output.loss)
        return LossOutput(output.loss.detach(), output.metrics)

    chunks = split_features(features, mini_batch_size)
    rng_states = []
    with torch.no_grad():
        parts = []
        for chunk in chunks:
            rng_states.append(_RngState())
            parts.append(embed(model, chunk))
    cached = torch.cat(parts).float().requires_grad_()  # (n_q + n_d, dim) leaf
    output = compute_loss(cached[:num_queries], cached[num_queries:])
    output.loss.backward()  # fills cached.grad only: no parameter takes part
    grads = cached.grad.split([len(c["attention_mask"]) for c in chunks])
    for index, (chunk, rng_state, grad) in enumerate(zip(chunks, rng_states, grads, strict=True)):
        last = index == len(chunks) - 1
        with rng_state.replay(), (contextlib.nullcontext() if last else no_sync()):
            chunk_embeddings = embed(model, chunk)  # (chunk, dim), with autograd
            backward(torch.sum(chunk_embeddings.float() * grad))
    return LossOutput(output.loss.detach(), output.metrics)
