"""Sources -> records -> split -> stats (see docs/data.md).

- :mod:`~qaembed.data.sources`: a SOURCE argument -> its adapter;
  adapters: :mod:`~qaembed.data.stackexchange`, :mod:`~qaembed.data.kaggle`,
  :mod:`~qaembed.data.ranked_json`, :mod:`~qaembed.data.jsonl`, :mod:`~qaembed.data.hf`;
- :mod:`~qaembed.data.clean`: HTML -> clean text, once, at ingestion;
- :mod:`~qaembed.data.bad_records`: fail on bad input, or skip and count (``--skip-bad``);
- :mod:`~qaembed.data.prepare`: the seeded split by question and the dataset writer;
- :mod:`~qaembed.data.stats`: statistics and the stats table;
- :mod:`~qaembed.data.dataset`: the prepared dataset layout, read by every later stage;
- :mod:`~qaembed.data.download`: fetch a Stack Exchange site dump into the cache;
- :mod:`~qaembed.data.pairs`: duplicate-question pairs (QQP, CSV/JSONL/HF pairs, Stack Exchange
  ``PostLinks.xml``), split by duplicate cluster, written as a pair dataset (docs/pairs.md).
"""
