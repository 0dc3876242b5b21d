"""Encoding for mining: chunked, normalized, optionally cached on disk.

Texts are encoded ``chunk_size`` at a time (``encode_query`` for questions,
``encode_document`` for answers, so models with query/document prompts work) and written
into a float32 ``.npy`` memory map, so peak memory is one chunk of activations plus
whatever pages of the map the OS keeps, whatever the corpus size.

With a cache folder, the map lives at ``<cache>/embeddings/<key>.npy`` where ``key`` hashes
the model fingerprint, the role (query or document), the prompt, the maximum sequence
length and the exact texts; a later run with the same inputs memory-maps it instead of
encoding again. Files are written under a temporary name and renamed when complete, so an
interrupted run never leaves a cache entry that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from qaembed.model import resolve_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Role = Literal["query", "document"]


def texts_hash(texts: Sequence[str]) -> str:
    """SHA-256 over the texts, length-prefixed so that boundaries count (first 16 hex digits)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:16]


def model_fingerprint(name: str) -> str:
    """Identify a model's weights for cache keys: the resolved id, plus size and mtime of local files.

    A hub id is identified by its name only (its files live in the Hugging Face cache,
    which pins revisions itself); a local folder by the names, sizes and modification
    times of its files, so retraining into the same folder invalidates the cache.
    """
    resolved = resolve_model(name)
    parts = [resolved]
    folder = Path(resolved)
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                parts.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def embedding_cache_key(model_id: str, role: Role, texts: Sequence[str], encoder: SentenceTransformer) -> str:
    """The cache key of one embedding matrix (see the module docstring)."""
    default_prompt = encoder.default_prompt_name
    payload = {
        "model": model_id,
        "role": role,
        "prompts": encoder.prompts,
        "default_prompt": default_prompt,
        "max_seq_length": encoder.max_seq_length,
        "texts": texts_hash(texts),
        "count": len(texts),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def encode_to_memmap(
    encoder: SentenceTransformer,
    texts: Sequence[str],
    role: Role,
    path: Path,
    *,
    batch_size: int,
    chunk_size: int,
    progress: bool = False,
) -> np.ndarray:
    """Encode ``texts`` chunk by chunk into a new float32 ``.npy`` map at ``path``; returns it read-only.

    Embeddings are L2-normalized (cosine similarity = dot product).
    """
    encode = encoder.encode_query if role == "query" else encoder.encode_document
    dim = encoder.get_embedding_dimension()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), dim))
    for start in range(0, len(texts), chunk_size):
        chunk = list(texts[start : start + chunk_size])
        out[start : start + len(chunk)] = encode(
            chunk,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
    out.flush()
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def encode_cached(
    encoder: SentenceTransformer,
    texts: Sequence[str],
    role: Role,
    *,
    batch_size: int,
    chunk_size: int,
    cache_folder: Path | None,
    model_id: str | None,
    scratch: Path,
    progress: bool = False,
) -> tuple[np.ndarray, bool]:
    """Embeddings of ``texts`` as a (len(texts), dim) float32 array and whether they came from the cache.

    ``cache_folder`` and ``model_id`` (a :func:`model_fingerprint`) together enable the
    cache; without them the map is written to the folder ``scratch`` (the caller removes it).
    """
    if cache_folder is not None and model_id is not None:
        path = cache_folder / "embeddings" / f"{embedding_cache_key(model_id, role, texts, encoder)}.npy"
        if path.is_file():
            cached = np.load(path, mmap_mode="r")
            if cached.shape == (len(texts), encoder.get_embedding_dimension()):
                return cached, True
    else:
        path = scratch / f"{role}.npy"
    return encode_to_memmap(
        encoder, texts, role, path, batch_size=batch_size, chunk_size=chunk_size, progress=progress
    ), False
