"""Semantic chunking: consecutive sentences merged while they stay similar, up to a size in tokens.

The rule of the original project, made exact:

* walk the sentences in order; the first opens a chunk;
* sentence ``i`` joins the open chunk when ``cos(e[i-1], e[i]) >= threshold`` (its similarity to
  the sentence before it; default 0.7) **and** the chunk's tokens plus its own stay within
  ``max_tokens`` (counted with the encoder's tokenizer, without special tokens);
* otherwise the chunk closes and sentence ``i`` opens the next one. With ``overlap`` = n, the next
  chunk starts with the last n sentences of the one before (as many as fit with sentence ``i``),
  so neighbouring chunks share context.

A sentence longer than ``max_tokens`` cannot be a chunk: :class:`SentenceTooLong` (the caller turns
it into an error naming the file and line, or a counted skip). Deterministic: the same sentences
and embeddings always give the same chunks.

>>> import numpy as np
>>> e = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
>>> [c.sentences for c in merge_sentences(e, [3, 3, 3, 3], threshold=0.7, max_tokens=10)]
[(0, 1), (2, 3)]
>>> [c.sentences for c in merge_sentences(e, [3, 3, 3, 3], threshold=0.7, max_tokens=5)]
[(0,), (1,), (2,), (3,)]
>>> [c.sentences for c in merge_sentences(e, [3, 3, 3, 3], threshold=0.7, max_tokens=10, overlap=1)]
[(0, 1), (1, 2, 3)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class SentenceTooLong(ValueError):
    def __init__(self, sentence: int, tokens: int, max_tokens: int):
        super().__init__(f"sentence {sentence + 1} has {tokens} tokens, more than the chunk size ({max_tokens})")
        self.sentence, self.tokens, self.max_tokens = sentence, tokens, max_tokens


@dataclass(frozen=True)
class ChunkSpan:
    """The sentence indices of one chunk (consecutive) and its token count."""

    sentences: tuple[int, ...]
    tokens: int


def adjacent_similarities(embeddings: np.ndarray) -> np.ndarray:
    """cos(e[i-1], e[i]) for i = 1..n-1 (embeddings need not be normalized)."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.maximum(norms, 1e-12)
    return np.einsum("ij,ij->i", unit[:-1], unit[1:])  # (n-1,)


def merge_sentences(
    embeddings: np.ndarray, tokens: list[int], *, threshold: float = 0.7, max_tokens: int = 256, overlap: int = 0
) -> list[ChunkSpan]:
    """Chunks of sentences (see the module docstring); ``embeddings`` (n, dim), ``tokens`` n counts."""
    if len(tokens) != len(embeddings):
        raise ValueError(f"{len(tokens)} token counts for {len(embeddings)} sentence embeddings")
    if overlap < 0:
        raise ValueError("overlap must be >= 0")
    for index, count in enumerate(tokens):
        if count > max_tokens:
            raise SentenceTooLong(index, count, max_tokens)
    if not tokens:
        return []
    similar = adjacent_similarities(np.asarray(embeddings, dtype=np.float64)) >= threshold if len(tokens) > 1 else []
    chunks: list[ChunkSpan] = []
    current, size = [0], tokens[0]
    for index in range(1, len(tokens)):
        if similar[index - 1] and size + tokens[index] <= max_tokens:
            current.append(index)
            size += tokens[index]
            continue
        chunks.append(ChunkSpan(tuple(current), size))
        carried = []
        for previous in reversed(current[len(current) - min(overlap, len(current)):]):
            if sum(tokens[i] for i in carried) + tokens[previous] + tokens[index] > max_tokens:
                break
            carried.insert(0, previous)
        current = [*carried, index]
        size = sum(tokens[i] for i in current)
    chunks.append(ChunkSpan(tuple(current), size))
    return chunks
