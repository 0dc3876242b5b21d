"""Prepared splits as Parquet shards: ``DIR/parquet/SPLIT-00000.parquet``, ``SPLIT-00001.parquet``, ...

``qaembed data prepare --output parquet`` writes these instead of ``SPLIT.jsonl`` (for dumps
of Stack Overflow's size: columnar, compressed, and readable in parallel by Hugging Face
``datasets`` and Ray Data). The columns are the fields of :class:`~qaembed.records.QARecord`,
nested as they are there (``answers`` is a list of structs), under one fixed schema
(:data:`RECORD_SCHEMA`), so every shard has the same schema whatever its records hold.
A record read back equals the record written (test).

Every stage reads a split through :func:`qaembed.data.dataset.iter_split`, which takes the
JSONL file or these shards, so training, the suite, mining, evaluation and indexing accept
either. Other readers::

    datasets.load_dataset("parquet", data_files={"train": "DIR/parquet/train-*.parquet"})
    ray.data.read_parquet("DIR/parquet/")  # one block per row group; filter on a column

Writing is bounded in memory: a row group (:data:`ROW_GROUP_RECORDS`) is built at a time and
a new shard starts every ``shard_records`` records.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from qaembed.errors import DataError, first_problem
from qaembed.outputs import new_file
from qaembed.records import QARecord

PARQUET_DIR = "parquet"
ROW_GROUP_RECORDS = 1000
SHARD_RECORDS = 100_000  # ~100-200 MB of Stack Exchange text per shard


def _schema():
    import pyarrow as pa

    text = pa.string()
    author = pa.struct([("id", text), ("name", text), ("url", text)])
    provenance = pa.struct([("source", text), ("native_id", text), ("site", text), ("url", text),
                            ("author", author), ("created", text), ("license", text)])
    answer = pa.struct([("id", text), ("text", text), ("score", pa.float64()), ("accepted", pa.bool_()),
                        ("provenance", provenance)])
    negative = pa.struct([("id", text), ("text", text), ("question_id", text), ("similarity", pa.float64()),
                          ("rank", pa.int64())])
    return pa.schema([("id", text), ("title", text), ("body", text), ("tags", pa.list_(text)),
                      ("score", pa.float64()), ("answers", pa.list_(answer)), ("provenance", provenance),
                      ("negatives", pa.list_(negative))])


_SHARD_NAME = re.compile(r"^(train|dev|test)-[0-9]{5}\.parquet$")


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.parquet"


def is_shard_name(name: str) -> bool:
    """True for a shard's file name (``train-00000.parquet``)."""
    return _SHARD_NAME.match(name) is not None


def shard_files(dataset_dir: str | Path, split: str) -> list[Path]:
    """The Parquet shards of one split, in order (empty when there are none)."""
    return sorted((Path(dataset_dir) / PARQUET_DIR).glob(f"{split}-[0-9][0-9][0-9][0-9][0-9].parquet"))


def write_parquet_shards(
    dataset_dir: str | Path, split: str, records: Iterable[QARecord | str], *, shard_records: int = SHARD_RECORDS,
) -> tuple[int, list[Path]]:
    """Write one split's records (models, or their canonical JSON) as shards; returns (count, files).

    A split with no records still gets one (empty) shard, so that the split exists. Each shard
    is written to a temporary name and renamed when complete.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if shard_records < 1:
        raise ValueError("shard_records must be at least 1")
    schema = _schema()
    folder = Path(dataset_dir) / PARQUET_DIR
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    count, writer, tmp, in_shard = 0, None, None, 0
    group: list[dict] = []

    def flush_group() -> None:
        if group:
            writer.write_table(pa.Table.from_pylist(group, schema=schema))
            group.clear()

    def close_shard() -> None:
        nonlocal writer
        flush_group()
        writer.close()
        writer = None
        os.replace(tmp, files[-1])

    def open_shard() -> None:
        nonlocal writer, tmp, in_shard
        files.append(folder / shard_name(split, len(files)))
        tmp = new_file(files[-1].with_name(files[-1].name + ".tmp"))  # never a link's target
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        in_shard = 0

    open_shard()
    for record in records:
        if in_shard == shard_records:
            close_shard()
            open_shard()
        if isinstance(record, str):
            record = QARecord.model_validate_json(record)
        group.append(record.model_dump())
        count += 1
        in_shard += 1
        if len(group) >= ROW_GROUP_RECORDS:
            flush_group()
    close_shard()
    return count, files


def iter_parquet_records(path: str | Path) -> Iterator[QARecord]:
    """Stream the records of one shard; a damaged file or an invalid row is a :class:`DataError`
    naming the file (and the row, counted from 1)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        handle = pq.ParquetFile(path)
        if not handle.schema_arrow.equals(_schema()):
            raise DataError("not a qaembed record shard: its columns differ from the record schema "
                            "(see qaembed.data.parquet)", path=str(path))
        row = 0
        for batch in handle.iter_batches(batch_size=ROW_GROUP_RECORDS):
            for values in batch.to_pylist():
                row += 1
                try:
                    yield QARecord.model_validate(values)
                except ValidationError as exc:
                    problem = first_problem(exc)
                    raise DataError(f"row {row}: {problem.message}", path=str(path), field=problem.field or None) from exc
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read Parquet: {exc}", path=str(path)) from exc


def count_parquet_records(files: Iterable[Path]) -> int:
    """Records in the shards, from their footers (nothing else is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = 0
    for path in files:
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read Parquet: {exc}", path=str(path)) from exc
    return total
