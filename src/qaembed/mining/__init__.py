"""Hard-negative mining with a separate embedding model (``qaembed mine``).

* :mod:`qaembed.mining.config`: :class:`MiningConfig`, the validated options;
* :mod:`qaembed.mining.embed`: chunked encoding into memory maps, on-disk embedding cache;
* :mod:`qaembed.search` (shared with evaluation): exact (torch) and FAISS (IVF, HNSW) top-k search;
* :mod:`qaembed.mining.mine`: candidate filters and selection (:func:`mine_negatives`);
* :mod:`qaembed.mining.dataset`: a prepared dataset folder in, a mined copy out
  (:func:`mine_dataset`).

Mined negatives land in each train record's ``negatives`` field; the ``mined`` batching
strategy (:mod:`qaembed.batching.mined`) puts them into batches as known non-relevant
documents. docs/mining.md explains the method and every option.
"""

from typing import Any

from qaembed.mining.config import MiningConfig

# the heavy parts (torch, FAISS, the encoder) load on first use, so `qaembed.mining.config` stays light
_LAZY = {"mine_dataset": "qaembed.mining.dataset", "MiningResult": "qaembed.mining.mine",
         "mine_negatives": "qaembed.mining.mine"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qaembed.mining' has no attribute {name!r}")


__all__ = ["MiningConfig", "MiningResult", "mine_dataset", "mine_negatives"]
