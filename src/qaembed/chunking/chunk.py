"""Documents → semantic chunks (with spans), and each Q&A pair's positive chunk.

:func:`chunk_documents` splits every document into sentences (:mod:`.sentences`), counts each
sentence's tokens with the encoder's tokenizer, embeds each **distinct** sentence text once (a
sentence repeated across documents, e.g. a licence line, is encoded once), and merges sentences
with the rule of :mod:`.semantic`. Each chunk keeps its document id and the character span of its
text in the document.

:func:`select_positives` embeds "question answer" of every pair and compares it with the chunks of
the pair's own document: the most similar chunk is the positive when its cosine similarity reaches
``positive_threshold`` (default 0.6); otherwise the pair falls back to its answer text as the
target (the original project's rule). Both outcomes are counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from qaembed.chunking.semantic import SentenceTooLong, merge_sentences
from qaembed.chunking.sentences import split_sentences
from qaembed.chunking.sources import Document, QAPair, line_of
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.errors import ConfigError, DataError


class ChunkingConfig(BaseModel):
    """The chunking rule's settings (recorded in ``chunking.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float = Field(0.7, ge=-1, le=1, description="Merge a sentence while cos(previous, it) >= this.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens in a chunk (the encoder's tokenizer, no special "
                                   "tokens); default: what the encoder reads whole (see encoder_token_limit).")
    overlap: int = Field(0, ge=0, description="Sentences a chunk repeats from the one before.")
    positive_threshold: float = Field(0.6, ge=-1, le=1, description="Least similarity of the positive chunk; else the answer.")
    batch_size: int = Field(64, ge=1, description="Sentences per encoding batch.")


DEFAULT_MAX_TOKENS = 256  # for an encoder that states no length limit


def encoder_token_limit(model) -> int | None:
    """The most text tokens ``model`` encodes without cutting: its ``max_seq_length`` less the special
    tokens its tokenizer adds ([CLS] and [SEP]: 254 for all-MiniLM-L6-v2), or None if it states no limit."""
    length = getattr(model, "max_seq_length", None)
    if not isinstance(length, int) or length <= 0:
        return None
    special = getattr(getattr(model, "tokenizer", None), "num_special_tokens_to_add", None)
    return length - (special(pair=False) if callable(special) else 0)


def resolve_config(config: ChunkingConfig, model) -> ChunkingConfig:
    """``config`` with ``max_tokens`` set: by default the encoder's limit; a chunk size above it is refused
    (its chunks would lose their last tokens when encoded, here and in training)."""
    limit = encoder_token_limit(model)
    if config.max_tokens is None:
        return config.model_copy(update={"max_tokens": limit or DEFAULT_MAX_TOKENS})
    if limit is not None and config.max_tokens > limit:
        raise ConfigError(f"--max-tokens {config.max_tokens} is more than the encoder reads whole: max_seq_length "
                          f"{model.max_seq_length} less {model.max_seq_length - limit} special token(s) = {limit}; "
                          f"chunks that long would be cut when encoded. Use --max-tokens {limit} or less (or leave it "
                          "out: the default is that limit)")
    return config


@dataclass(frozen=True)
class Chunk:
    id: str  # "<document id>#<index>"
    document_id: str
    index: int
    start: int  # character span in the document's text
    end: int
    text: str
    tokens: int
    sentences: int

    def to_dict(self) -> dict:
        return asdict(self)


def _encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    return np.asarray(model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                                   show_progress_bar=False), dtype=np.float32)


def token_counts(model, texts: list[str]) -> list[int]:
    """Tokens of each text with the model's tokenizer, without special tokens and without truncation."""
    encoded = model.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]  # counted, not encoded: no length warning
    return [len(ids) for ids in encoded]


def sentence_table(texts: list[str], model, config: ChunkingConfig, cache=None, *,
                   sentences: bool = True) -> tuple[np.ndarray, list[int], int]:
    """(embeddings, token counts) of distinct ``texts`` in order, and how many had to be encoded.

    With a :class:`~qaembed.chunking.cache.SentenceCache`, texts it holds are not encoded again; new
    sentences are added to it. ``sentences=False`` (chunk texts): the cache is only read, uncounted.
    """
    known = cache.get(texts, count=sentences) if cache is not None else {}
    missing = [text for text in texts if text not in known]
    if missing:
        new_counts = token_counts(model, missing)
        new_vectors = _encode(model, missing, config.batch_size)
        fresh = {text: (count, vector) for text, count, vector in zip(missing, new_counts, new_vectors)}
        if cache is not None and sentences:
            cache.put(fresh)
        known = {**known, **fresh}
    if not texts:
        return np.zeros((0, 1), dtype=np.float32), [], 0
    embeddings = np.stack([known[text][1] for text in texts])  # (n_distinct, dim)
    return embeddings, [known[text][0] for text in texts], len(missing)


def chunk_documents(
    documents: list[Document], model, config: ChunkingConfig, policy: BadRecordPolicy,
    *, progress: Callable[[int], None] | None = None, cache=None,
) -> tuple[list[Chunk], dict]:
    """Semantic chunks of ``documents`` and stats; a sentence over ``max_tokens`` rejects its document.

    ``cache``: a :class:`~qaembed.chunking.cache.SentenceCache` shared across calls (each sentence
    encoded once over a whole corpus processed in groups); without one, each distinct sentence of
    this call is encoded once.
    """
    config, limit = resolve_config(config, model), encoder_token_limit(model)
    spans = {document.id: split_sentences(document.text) for document in documents}
    texts = {document.id: [document.text[start:end] for start, end in spans[document.id]] for document in documents}
    distinct = list(dict.fromkeys(text for document in documents for text in texts[document.id]))
    row = {text: number for number, text in enumerate(distinct)}
    embeddings, counts, encoded = sentence_table(distinct, model, config, cache)

    chunks: list[Chunk] = []
    skipped: set[str] = set()
    for document in documents:
        rows = [row[text] for text in texts[document.id]]
        sentence_spans = spans[document.id]
        if not rows:
            policy.reject(DataError("holds no sentences", path=document.path), "empty_document")
            skipped.add(document.id)
            continue
        try:
            merged = merge_sentences(embeddings[rows], [counts[r] for r in rows], threshold=config.threshold,
                                     max_tokens=config.max_tokens, overlap=config.overlap)
        except SentenceTooLong as exc:
            start = sentence_spans[exc.sentence][0]
            policy.reject(DataError(
                f"a sentence has {exc.tokens} tokens, more than the chunk size --max-tokens {exc.max_tokens}; "
                + ("raise --max-tokens" if limit is None else f"raise --max-tokens (up to {limit}: what the encoder reads "
                   "whole)" if limit > exc.max_tokens else "that is all the encoder reads whole")
                + " (chunks are never cut inside a sentence)",
                path=document.path, line=document.line_offset + line_of(document.text, start)), "sentence_too_long")
            skipped.add(document.id)
            continue
        for index, span in enumerate(merged):
            start, end = sentence_spans[span.sentences[0]][0], sentence_spans[span.sentences[-1]][1]
            chunks.append(Chunk(id=f"{document.id}#{index}", document_id=document.id, index=index, start=start, end=end,
                                text=document.text[start:end], tokens=span.tokens, sentences=len(span.sentences)))
        if progress is not None:
            progress(1)
    sentences = sum(len(texts[d.id]) for d in documents)
    stats = {
        "documents": len(documents) - len(skipped), "documents_skipped": len(skipped), "chunks": len(chunks),
        "sentences": sentences, "distinct_sentences": len(distinct), "sentences_encoded": encoded,
        "sentences_per_chunk": round(float(np.mean([c.sentences for c in chunks])), 3) if chunks else 0.0,
        "tokens_per_chunk": round(float(np.mean([c.tokens for c in chunks])), 3) if chunks else 0.0,
    }
    return chunks, {"skipped_documents": sorted(skipped), **stats}


def select_positives(pairs: list[QAPair], chunks: list[Chunk], model, config: ChunkingConfig,
                     cache=None, documents: dict[str, str] | None = None) -> tuple[list[dict], dict]:
    """Each pair with its positive chunk (or the answer-text fallback), and the counts of both outcomes.

    A pair without an answer text of its own (a prepared dataset's question, whose document *is* its
    top answer) falls back to its whole document's text (``documents``: id → text).

    Only chunks of documents that some pair points to are embedded, through the sentence cache when
    one is given: a one-sentence chunk (most of them at the default threshold) is its cached sentence.
    """
    wanted = {pair.document_id for pair in pairs}
    chunks = [chunk for chunk in chunks if chunk.document_id in wanted]
    by_document: dict[str, list[int]] = {}
    for number, chunk in enumerate(chunks):
        by_document.setdefault(chunk.document_id, []).append(number)
    pairs = [pair for pair in pairs if pair.document_id in by_document]
    if not pairs:
        return [], {"pairs": 0, "positive_chunk": 0, "answer_fallback": 0}
    distinct = list(dict.fromkeys(chunk.text for chunk in chunks))
    table, _, _ = sentence_table(distinct, model, config, cache, sentences=False)
    row = {text: number for number, text in enumerate(distinct)}
    chunk_embeddings = table[[row[chunk.text] for chunk in chunks]]  # (n_chunks, dim)
    pair_embeddings = _encode(model, [f"{pair.question} {pair.answer}".strip() for pair in pairs], config.batch_size)
    rows, fallback = [], 0
    for pair, embedding in zip(pairs, pair_embeddings):
        candidates = by_document[pair.document_id]
        similarities = chunk_embeddings[candidates] @ embedding  # (n_chunks_of_document,)
        best = int(np.argmax(similarities))
        similarity = float(similarities[best])
        chosen = chunks[candidates[best]]
        use_chunk = similarity >= config.positive_threshold
        fallback += not use_chunk
        fallback_text = pair.answer or (documents or {}).get(pair.document_id, "")
        rows.append({
            "id": pair.id, "question": pair.question, "answer": pair.answer, "document_id": pair.document_id,
            **({"split": pair.split} if pair.split else {}), "score": pair.score,
            **({"related": [list(item) for item in pair.related]} if pair.related else {}),
            "positive": {"kind": "chunk" if use_chunk else "answer", "chunk_id": chosen.id if use_chunk else None,
                         "text": chosen.text if use_chunk else fallback_text, "similarity": round(similarity, 6),
                         "best_chunk_id": chosen.id},
        })
    return rows, {"pairs": len(rows), "positive_chunk": len(rows) - fallback, "answer_fallback": fallback}
