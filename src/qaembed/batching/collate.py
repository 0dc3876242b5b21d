"""The one place texts are tokenized: all texts of a batch, padded to the longest.

:func:`tokenize` turns texts into the features dict a ``SentenceTransformer`` forward
takes (``input_ids``, ``attention_mask``, and ``token_type_ids`` where the tokenizer has
them), padded to the longest text *of this call* (never to a fixed length) and truncated
at ``max_length`` tokens. :class:`Collator` tokenizes a :class:`RankingBatch` as one
sequence ``queries + docs`` so the encoder runs one forward pass per batch; split the
embeddings with ``embeddings[:batch.num_queries]`` / ``embeddings[batch.num_queries:]``.
"""

from __future__ import annotations

from typing import Any

import torch

from qaembed.batching.batch import RankingBatch


def tokenizer_of(model_or_tokenizer: Any) -> Any:
    """The Hugging Face tokenizer of a SentenceTransformer, or the argument if it is one."""
    tokenizer = getattr(model_or_tokenizer, "tokenizer", None)
    if tokenizer is not None:
        return tokenizer
    if callable(model_or_tokenizer) and hasattr(model_or_tokenizer, "pad_token_id"):
        return model_or_tokenizer
    raise TypeError(
        f"expected a SentenceTransformer or a Hugging Face tokenizer, got {type(model_or_tokenizer).__name__}"
    )


def tokenize(model_or_tokenizer: Any, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Features for ``texts``: padded to the longest text here, truncated at ``max_length`` tokens."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    tokenizer = tokenizer_of(model_or_tokenizer)
    encoded = tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return dict(encoded)


class Collator:
    """Tokenizes batches for one model: ``Collator(model, max_length)(batch) -> features``.

    ``max_length`` defaults to the model's ``max_seq_length`` when it has one.
    """

    def __init__(self, model_or_tokenizer: Any, max_length: int | None = None) -> None:
        self.tokenizer = tokenizer_of(model_or_tokenizer)
        if max_length is None:
            max_length = getattr(model_or_tokenizer, "max_seq_length", None)
        if max_length is None:
            raise ValueError("Collator needs max_length when the model has no max_seq_length")
        self.max_length = int(max_length)

    def __call__(self, batch: RankingBatch) -> dict[str, torch.Tensor]:
        """Features of ``batch.queries + batch.docs`` (queries first)."""
        return tokenize(self.tokenizer, batch.queries + batch.docs, self.max_length)

