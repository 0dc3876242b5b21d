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

What is embedded is chosen by ``embed_fn(model, features)`` (default :func:`embed`, the pooled
sentence embedding): a tensor or a tuple of tensors with one row per text, e.g. MaxSim's
``(token_embeddings, mask)`` (``qaembed.train.scoring``). Cached chunks of token embeddings
differ in length (each chunk is trimmed), so they are zero-padded to the longest chunk before
concatenation, with mask 0 there; every floating tensor gets its cached gradient, and each
chunk's gradient is cut back to the chunk's own shape for the second pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import ContextManager

import torch
from torch import nn

from qaembed.losses.base import LossOutput

Embedded = torch.Tensor | tuple[torch.Tensor, ...]
LossFn = Callable[[Embedded, Embedded], LossOutput]
EmbedFn = Callable[[nn.Module, dict[str, torch.Tensor]], Embedded]


def embed(model: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
    """(n, dim) sentence embeddings of tokenized texts (a SentenceTransformer forward)."""
    return model(dict(features))["sentence_embedding"]


def _as_tuple(embedded: Embedded) -> tuple[torch.Tensor, ...]:
    return (embedded,) if isinstance(embedded, torch.Tensor) else tuple(embedded)


def _like(template: Embedded, parts: tuple[torch.Tensor, ...]) -> Embedded:
    return parts[0] if isinstance(template, torch.Tensor) else parts


def rows(embedded: Embedded, index: slice | torch.Tensor) -> Embedded:
    """The rows ``index`` of every tensor of ``embedded``."""
    return _like(embedded, tuple(t[index] for t in _as_tuple(embedded)))


def pad_to(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``tensor`` zero-padded at the end of every dimension after the first up to ``shape[1:]``."""
    if tuple(tensor.shape[1:]) == tuple(shape[1:]):
        return tensor
    padded = tensor.new_zeros((tensor.shape[0], *shape[1:]))
    padded[tuple(slice(0, size) for size in tensor.shape)] = tensor
    return padded


def cat_padded(parts: list[torch.Tensor]) -> torch.Tensor:
    """Row-concatenation of tensors whose later dimensions may differ (zero-padded to the largest)."""
    shape = tuple(max(sizes) for sizes in zip(*(p.shape for p in parts), strict=True))
    return torch.cat([pad_to(p, shape) for p in parts])


def split_features(features: dict[str, torch.Tensor], chunk_size: int) -> list[dict[str, torch.Tensor]]:
    """Row chunks of ``chunk_size`` texts, each cut to the longest text it holds.

    Padding is on the right (BERT-style tokenizers), so dropping trailing columns where
    every row's attention mask is 0 changes no embedding. Each cut reads a length on the host: free
    for CPU features (the training loop cuts before moving chunks to the device).
    """
    mask = features["attention_mask"]
    if "maxsim_mask" in features:  # query expansion: [MASK] tokens take part in MaxSim without being attended to
        mask = mask.bool() | features["maxsim_mask"].bool()
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
    embed_fn: EmbedFn = embed,
    device: torch.device | str | None = None,
) -> LossOutput:
    """Forward all texts, compute the loss, backward; returns the loss output (graph freed).

    ``features`` hold ``num_queries`` query rows followed by the document rows. With ``device``,
    ``features`` are on the CPU and each chunk is moved there after it is cut to its longest text, so
    the cut needs no device-to-host copy (the training loop passes it; the tensors may also already
    be on the model's device, ``device=None``).
    ``backward(scalar)`` runs a backward pass (``accelerator.backward`` applies fp16 loss
    scaling); ``no_sync()`` suppresses DDP's gradient all-reduce for all but the last chunk.
    ``embed_fn`` says what to embed (see the module docstring).
    """
    num_texts = features["attention_mask"].shape[0]
    queries, docs = slice(0, num_queries), slice(num_queries, None)
    if mini_batch_size is None or mini_batch_size >= num_texts:
        if device is not None:
            features = {key: value.to(device) for key, value in features.items()}
        embeddings = embed_fn(model, features)  # (n_q + n_d, dim), or a tuple of such row-aligned tensors
        output = compute_loss(rows(embeddings, queries), rows(embeddings, docs))
        backward(output.loss)
        return LossOutput(output.loss.detach(), output.metrics)

    chunks = split_features(features, mini_batch_size)
    if device is not None:
        chunks = [{key: value.to(device) for key, value in chunk.items()} for chunk in chunks]
    rng_states = []
    with torch.no_grad():
        parts, plain = [], True
        for chunk in chunks:
            rng_states.append(_RngState())
            embedded = embed_fn(model, chunk)
            plain = isinstance(embedded, torch.Tensor)
            parts.append(_as_tuple(embedded))
    cached = []  # one leaf per embedded tensor, (n_q + n_d, ...) over all chunks
    for position in range(len(parts[0])):
        joined = cat_padded([part[position] for part in parts])
        cached.append(joined.float().requires_grad_() if joined.is_floating_point() else joined)
    cached_embedded = cached[0] if plain else tuple(cached)
    output = compute_loss(rows(cached_embedded, queries), rows(cached_embedded, docs))
    output.loss.backward()  # fills the leaves' .grad only: no parameter takes part
    sizes = [len(c["attention_mask"]) for c in chunks]
    grads = [leaf.grad.split(sizes) if leaf.requires_grad and leaf.grad is not None else None for leaf in cached]
    for index, (chunk, rng_state) in enumerate(zip(chunks, rng_states, strict=True)):
        last = index == len(chunks) - 1
        with rng_state.replay(), (contextlib.nullcontext() if last else no_sync()):
            chunk_embedded = _as_tuple(embed_fn(model, chunk))  # with autograd
            surrogate = None
            for tensor, grad in zip(chunk_embedded, grads, strict=True):
                if grad is None:
                    continue
                own = grad[index][tuple(slice(0, size) for size in tensor.shape)]  # cut back to this chunk
                term = torch.sum(tensor.float() * own)
                surrogate = term if surrogate is None else surrogate + term
            backward(surrogate)
    return LossOutput(output.loss.detach(), output.metrics)
