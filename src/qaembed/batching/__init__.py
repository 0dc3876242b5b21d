"""Batching: training batches as ranking problems, and the one collator.

API for the training loop
-------------------------
A sketch (not run: it needs a model and records)::

    from qaembed.batching import build_strategy, Collator
    strategy = build_strategy("hard_negative", {"max_answers": 4})  # ConfigError on bad options
    for batch in strategy.batches(records, batch_size=32, seed=0, epoch=epoch):  # Iterator[RankingBatch]
        features = collator(batch)            # Collator(model, max_length=...): queries + docs, padded to longest
        emb = model(features)["sentence_embedding"]
        q_emb, d_emb = emb[: batch.num_queries], emb[batch.num_queries :]

* ``STRATEGIES``: closed dict name -> strategy class (``infonce``, ``multiple_positives``,
  ``hard_negative``, ``triplet``, ``listwise``, ``mined`` from ``mined.py``, and ``pairs`` from ``pairs.py`` for duplicate-pair data);
  each class has ``config_class`` (pydantic, extra keys forbidden), ``name`` and ``data_kind``
  (``"qa"`` or ``"pairs"``: which records it batches).
* ``build_strategy(name, options) -> BatchStrategy``; ``strategy.batches(records,
  batch_size, seed, epoch=0, drop_last=False)`` yields :class:`RankingBatch`;
  ``batch_size`` counts questions; the same arguments give the same batches;
  ``strategy.num_batches(records, batch_size, drop_last)`` counts them.
* ``Collator(model_or_tokenizer, max_length=None)(batch)`` / ``tokenize(model, texts,
  max_length)``: features dict for a
  SentenceTransformer forward, padded to the longest text of the call.
* ``RankingBatch`` (``batch.py``): queries, unique docs, (n_q, n_d) relevance / positive /
  known / rank, query_ids, doc_ids; ``batch.to(device)``.
* ``normalize_votes`` (``relevance.py``), ``length_aware_batches`` (``sampler.py``),
  ``assemble_batch`` / ``DocChoice`` (``assemble.py``) for new strategies.
"""

from qaembed.batching.assemble import DocChoice, assemble_batch
from qaembed.batching.batch import RankingBatch
from qaembed.batching.collate import Collator, tokenize
from qaembed.batching.mined import MinedStrategy  # noqa: E402  (imports strategies; registered below)
from qaembed.batching.pairs import PairsStrategy  # noqa: E402
from qaembed.batching.relevance import RELEVANCE_METHODS, normalize_votes
from qaembed.batching.sampler import length_aware_batches
from qaembed.batching.strategies import STRATEGIES, BatchStrategy, StrategyConfig, build_strategy

STRATEGIES[MinedStrategy.name] = MinedStrategy
STRATEGIES[PairsStrategy.name] = PairsStrategy  # pair data (PairRecords): data_kind "pairs"

__all__ = [
    "RELEVANCE_METHODS",
    "STRATEGIES",
    "BatchStrategy",
    "Collator",
    "DocChoice",
    "RankingBatch",
    "StrategyConfig",
    "assemble_batch",
    "build_strategy",
    "length_aware_batches",
    "normalize_votes",
    "tokenize",
]
