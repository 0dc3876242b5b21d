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

from qaembed.mining.config import MiningConfig
from qaembed.mining.dataset import mine_dataset
from qaembed.mining.mine import MiningResult, mine_negatives

__all__ = ["MiningConfig", "MiningResult", "mine_dataset", "mine_negatives"]
