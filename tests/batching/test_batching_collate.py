"""The collator pads every text of a batch to the longest one, never to a fixed length."""

from __future__ import annotations

import pytest

from qaembed.batching import Collator, build_strategy, tokenize
from qaembed.model import resolve_model


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("minilm"))


def test_pads_to_longest_text_of_the_batch(minilm_tokenizer, qa_records):
    batch = next(build_strategy("hard_negative").batches(qa_records, batch_size=3, seed=0))
    features = Collator(minilm_tokenizer, max_length=256)(batch)
    texts = batch.queries + batch.docs
    lengths = [len(minilm_tokenizer(text)["input_ids"]) for text in texts]
    assert features["input_ids"].shape == (len(texts), max(lengths))
    assert features["attention_mask"].sum(dim=1).tolist() == lengths
    assert max(lengths) < 256


def test_truncates_at_max_length(minilm_tokenizer):
    features = tokenize(minilm_tokenizer, ["short", "word " * 100], max_length=16)
    assert features["input_ids"].shape == (2, 16)
    assert features["attention_mask"].sum(dim=1).tolist() == [3, 16]


@pytest.mark.slow  # loads the encoder (~15 s on 2 shared cores)
def test_features_feed_the_encoder_like_encode(minilm, qa_records):
    import torch

    batch = next(build_strategy("infonce").batches(qa_records, batch_size=2, seed=0))
    features = Collator(minilm)(batch)  # max_length from the model
    with torch.no_grad():
        embeddings = minilm(features)["sentence_embedding"]
    expected = minilm.encode(batch.queries + batch.docs, convert_to_tensor=True)
    assert torch.allclose(embeddings, expected, atol=1e-5)


def test_rejects_what_is_not_a_tokenizer():
    with pytest.raises(TypeError, match="SentenceTransformer or a Hugging Face tokenizer"):
        Collator(object(), max_length=8)
