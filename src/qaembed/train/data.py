"""What a training run reads: Q&A records or duplicate-question pairs, told apart by the manifest.

A prepared Q&A dataset (``qaembed data prepare``) holds ``{train,dev,test}.jsonl`` of
:class:`~qaembed.records.QARecord`; a pair dataset (``qaembed data prepare --format pairs-*``,
``docs/pairs.md``) holds ``{train,dev,test}.pairs.jsonl`` of
:class:`~qaembed.data.pairs.PairRecord` and a manifest with ``"kind": "pairs"``. Every batching
strategy declares the records it batches (``data_kind``: ``"qa"`` or ``"pairs"``), so a
mismatch is a :class:`ConfigError` before the model is loaded:

* pair data trains with the ``pairs`` strategy and the losses that accept it
  (:func:`pair_losses`: ``infonce``, ``cosine_pair``, ``pair_bce``, ``multitask`` of those);
* dev evaluation on pair data is the pair evaluation (:func:`qaembed.evaluate.pairs.evaluate_pairs`:
  duplicate retrieval ``retrieval/*`` and, with thresholds chosen on the dev pairs themselves,
  ``classification/*``), so ``training.eval_metric`` (default ``retrieval/ndcg@10``) means the
  same ranking metric on either kind of data;
* ``data.max_train_questions`` / ``data.max_dev_questions`` cap *pairs* on pair data (the first N
  pairs of the split file), and ``data.train_questions_file`` lists pair ids.

Example
-------
>>> from qaembed.train.data import pair_losses
>>> pair_losses()
['infonce', 'cosine_pair', 'pair_bce', 'multitask']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qaembed.errors import ConfigError

if TYPE_CHECKING:
    from qaembed.train.config import TrainConfig

DataKind = Literal["qa", "pairs"]


def dataset_kind(dataset: str | Path) -> DataKind:
    """``"pairs"`` for a pair dataset (its manifest says so), else ``"qa"``."""
    from qaembed.data.pairs import is_pair_dataset

    return "pairs" if is_pair_dataset(dataset) else "qa"


def split_files(dataset: str | Path, split: str, kind: DataKind | None = None) -> list[Path]:
    """The files of ``split`` (empty when it is missing): ``train.jsonl`` or its Parquet shards (Q&A,
    :func:`qaembed.data.dataset.split_files`), or ``train.pairs.jsonl`` (pairs)."""
    from qaembed.data.dataset import split_files as qa_split_files
    from qaembed.data.pairs import pair_dataset_path

    kind = kind or dataset_kind(dataset)
    if kind == "pairs":
        path = pair_dataset_path(dataset, split)
        return [path] if path.is_file() else []
    return qa_split_files(dataset, split)


def pair_strategies() -> list[str]:
    """The batching strategies that batch pair records."""
    from qaembed.batching import STRATEGIES

    return [name for name, cls in STRATEGIES.items() if cls.data_kind == "pairs"]


def pair_losses() -> list[str]:
    """The losses that accept a pair strategy (``multitask`` when all its parts do)."""
    from qaembed.losses import LOSSES

    strategies = set(pair_strategies())
    return [name for name, cls in LOSSES.items() if strategies & set(cls.strategies)]


def check_data_kind(config: TrainConfig) -> DataKind:
    """ConfigError unless the strategy batches the kind of records ``data.dataset`` holds; returns the kind."""
    from qaembed.batching import STRATEGIES

    dataset = config.data.dataset
    if not Path(dataset).is_dir():
        raise ConfigError(f"data.dataset: {dataset} is not a folder (prepare one with `qaembed data prepare`)")
    kind = dataset_kind(dataset)
    strategy = STRATEGIES.get(config.strategy.name)
    if strategy is None:
        return kind  # build_strategy names the allowed strategies
    if kind == "pairs" and strategy.data_kind != "pairs":
        raise ConfigError(
            f"strategy.name: {config.strategy.name!r} batches Q&A records, but data.dataset {dataset} is a pair "
            f"dataset (manifest kind 'pairs'); use strategy {' or '.join(repr(s) for s in pair_strategies())} with "
            f"one of the losses that accept it: {', '.join(pair_losses())}")
    if kind == "qa" and strategy.data_kind == "pairs":
        raise ConfigError(
            f"strategy.name: {config.strategy.name!r} batches duplicate-question pairs, but data.dataset {dataset} "
            "is a Q&A dataset (no pair manifest); prepare pair data with `qaembed data prepare --format "
            "pairs-qqp|pairs-csv|pairs-jsonl|pairs-hf|se-duplicates`, or use a Q&A strategy")
    return kind


def read_training_split(config: TrainConfig, split: str, limit: int | None) -> list[Any]:
    """The records (Q&A) or pairs of ``split``, filtered by ``data.train_questions_file`` (train) and capped."""
    from qaembed.data.dataset import read_split
    from qaembed.data.pairs import read_pair_split

    kind = dataset_kind(config.data.dataset)
    if not split_files(config.data.dataset, split, kind):
        what = f"{split}.pairs.jsonl" if kind == "pairs" else f"{split}.jsonl or parquet/{split}-*.parquet"
        raise ConfigError(f"data.dataset: {config.data.dataset} has no {split} split ({what}: is it a prepared "
                          "dataset folder?)")
    records = read_pair_split(config.data.dataset, split) if kind == "pairs" else read_split(config.data.dataset, split)
    if split == "train" and config.data.train_questions_file is not None:
        records = only_listed(records, config.data.train_questions_file, "pair" if kind == "pairs" else "question")
    return records[:limit] if limit is not None else records


def only_listed(records: list[Any], ids_file: Path, unit: str = "question") -> list[Any]:
    """The records whose id is listed in ``ids_file`` (one per line), in their split order."""
    if not ids_file.is_file():
        raise ConfigError(f"data.train_questions_file: {ids_file} does not exist")
    wanted = [line.strip() for line in ids_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    known = {record.id for record in records}
    missing = [record_id for record_id in wanted if record_id not in known]
    if missing:
        raise ConfigError(f"data.train_questions_file: {ids_file} lists {len(missing)} {unit}(s) that are not in "
                          f"the train split, e.g. {missing[0]!r}")
    listed = set(wanted)
    return [record for record in records if record.id in listed]


def evaluate_dev_pairs(model: Any, pairs: list[Any], config: TrainConfig) -> dict[str, float]:
    """Dev metrics on pair data: duplicate retrieval and classification at thresholds chosen on the same pairs."""
    from qaembed.evaluate import EvalConfig
    from qaembed.evaluate.pairs import evaluate_pairs

    result, _ = evaluate_pairs(model, pairs, config=EvalConfig())  # fixed seed, as every evaluation
    return {key: float(value) for key, value in result.summary.items()}
