"""Encoding for mining: chunked, normalized, optionally cached on disk.

Texts are encoded ``chunk_size`` at a time (``encode_query`` for questions,
``encode_document`` for answers, so models with query/document prompts work) and written
into a float32 ``.npy`` memory map, so peak memory is one chunk of activations plus
whatever pages of the map the OS keeps, whatever the corpus size.

With a cache folder, the map lives at ``<cache>/embeddings/<key>.npy`` where ``key`` hashes
the model fingerprint, the role (query or document), the prompt, the maximum sequence
length and the exact texts; a later run with the same inputs memory-maps it instead of
encoding again. Files are written under a temporary name and renamed when complete, so an
interrupted run never leaves a cache entry that looks valid. An entry that is there but
cannot be used (unreadable, truncated, not float32 of the expected shape, or holding NaN or
infinity) is a miss: a warning names the file, the texts are encoded again and the entry is
rewritten, and the result says why the cache was not used (:class:`Encoded`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from qaembed.model import resolve_model
from qaembed.outputs import is_lock_file, new_file

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Role = Literal["query", "document"]
logger = logging.getLogger(__name__)


class Encoded(NamedTuple):
    """What :func:`encode_cached` returns."""

    embeddings: np.ndarray  # (len(texts), dim) float32, L2-normalized
    from_cache: bool
    cache_rejected: str | None  # why a cache entry that was there was not used (None: none was there, or it was used)


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
            if path.is_file() and not is_lock_file(path):  # a command writing there: not the model's
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
    tmp = new_file(path.with_name(path.name + f".{os.getpid()}.tmp"))  # a link at that name is removed, not followed
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


def read_cache_entry(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """The cached map at ``path`` (read-only) or None with the reason it cannot be used.

    Unusable: unreadable (truncated, not a ``.npy``, pickled objects: ``allow_pickle=False``), not
    float32 of ``shape``, or holding NaN or infinity. The finiteness check is one vectorised pass:
    the float64 sum of finite float32 values cannot overflow, so it is finite exactly when every value is.
    """
    try:
        cached = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        return None, f"unreadable (corrupt or truncated: {' '.join(str(exc).split())[:200]})"
    if not isinstance(cached, np.ndarray) or cached.dtype != np.float32 or cached.shape != shape:
        found = f"{cached.dtype} {cached.shape}" if isinstance(cached, np.ndarray) else type(cached).__name__
        return None, f"holds {found}, expected float32 {shape}"
    if not np.isfinite(np.sum(cached, dtype=np.float64)):
        return None, "holds NaN or infinite values"
    return cached, None


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
) -> Encoded:
    """Embeddings of ``texts`` as a (len(texts), dim) float32 array, whether they came from the cache, and
    why a cache entry that was there was not used.

    ``cache_folder`` and ``model_id`` (a :func:`model_fingerprint`) together enable the
    cache; without them the map is written to the folder ``scratch`` (the caller removes it).
    An unusable entry (see :func:`read_cache_entry`) is logged as a warning naming the file,
    encoded again and rewritten.
    """
    rejected = None
    if cache_folder is not None and model_id is not None:
        path = cache_folder / "embeddings" / f"{embedding_cache_key(model_id, role, texts, encoder)}.npy"
        if path.is_file():
            cached, rejected = read_cache_entry(path, (len(texts), encoder.get_embedding_dimension()))
            if cached is not None:
                return Encoded(cached, True, None)
            logger.warning("%s: unusable cache entry (%s embeddings): %s; encoding them again and rewriting it",
                           path, role, rejected)
            rejected = f"{path}: {rejected}"
    else:
        path = scratch / f"{role}.npy"
    embeddings = encode_to_memmap(
        encoder, texts, role, path, batch_size=batch_size, chunk_size=chunk_size, progress=progress
    )
    return Encoded(embeddings, False, rejected)
