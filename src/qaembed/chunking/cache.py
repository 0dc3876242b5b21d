"""Each sentence embedded once: a cache of (token count, embedding) by sentence text, for one model.

Backed by SQLite (``OUT/sentences.sqlite`` by default), so memory stays bounded however many
sentences a corpus has, and a rerun over the same documents (``--overwrite`` with other merge
settings, or more documents) encodes only sentences it has not seen. Keys are the SHA-256 of the
text; vectors are float32 bytes. The cache records the weights hash of the model that filled it;
opened with another model it is emptied first (with a note), never mixed.

>>> import numpy as np
>>> cache = SentenceCache(None, model_key="m1")
>>> cache.put({"a b": (2, np.ones(3, dtype=np.float32))})
>>> found = cache.get(["a b", "c"]); sorted(found), found["a b"][0]
(['a b'], 2)
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

CACHE_FILE = "sentences.sqlite"


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class SentenceCache:
    """``get(texts)`` → {text: (tokens, vector)} for the texts it holds; ``put({text: (tokens, vector)})``."""

    def __init__(self, path: Path | None, *, model_key: str, log=None):
        self.path = path
        self.hits = 0
        self.misses = 0
        self._connection = sqlite3.connect(":memory:" if path is None else str(path))
        self._connection.execute("PRAGMA journal_mode=OFF")
        self._connection.execute("PRAGMA synchronous=OFF")
        self._connection.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        self._connection.execute("CREATE TABLE IF NOT EXISTS sentences (key BLOB PRIMARY KEY, tokens INTEGER, vector BLOB)")
        row = self._connection.execute("SELECT value FROM meta WHERE name = 'model'").fetchone()
        if row is not None and row[0] != model_key:
            count = self._connection.execute("SELECT COUNT(*) FROM sentences").fetchone()[0]
            if log is not None:
                log(f"note: {path} held {count:,} sentence embeddings of another model; emptied")
            self._connection.execute("DELETE FROM sentences")
        self._connection.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (model_key,))
        self._connection.commit()

    def get(self, texts: Iterable[str], *, count: bool = True) -> dict[str, tuple[int, np.ndarray]]:
        texts = list(dict.fromkeys(texts))
        keys = {_key(text): text for text in texts}
        found: dict[str, tuple[int, np.ndarray]] = {}
        key_list = list(keys)
        for start in range(0, len(key_list), 500):
            part = key_list[start : start + 500]
            query = f"SELECT key, tokens, vector FROM sentences WHERE key IN ({','.join('?' * len(part))})"
            for key, tokens, vector in self._connection.execute(query, part):
                found[keys[key]] = (int(tokens), np.frombuffer(vector, dtype=np.float32))
        if count:  # hits and misses count sentence lookups (chunk texts are looked up uncounted)
            self.hits += len(found)
            self.misses += len(texts) - len(found)
        return found

    def put(self, items: Mapping[str, tuple[int, np.ndarray]]) -> None:
        rows = [(_key(text), int(tokens), np.ascontiguousarray(vector, dtype=np.float32).tobytes())
                for text, (tokens, vector) in items.items()]
        self._connection.executemany("INSERT OR REPLACE INTO sentences VALUES (?, ?, ?)", rows)
        self._connection.commit()

    def __len__(self) -> int:
        return self._connection.execute("SELECT COUNT(*) FROM sentences").fetchone()[0]

    def close(self) -> None:
        self._connection.close()
