"""``qaembed data prepare``: sources -> records -> train/dev/test split -> canonical dataset.

Random split (default, ``split_mode="random"``): each record goes to a split by a hash
of ``(seed, record id)``: a question's split depends on nothing else, so the result is
deterministic for a seed, identical whatever order the sources are given in, and a
question never moves between splits when other data is added. Split sizes therefore
follow the fractions approximately (exactly in expectation).

Date split (``split_mode="by-date"``): questions created on or after ``test_after``
(``provenance.created``, a UTC day) are the test split; of the others, those created on
or after ``dev_after`` are dev when it is given, otherwise the same seeded hash sends a
share ``dev / (train + dev)`` of the split fractions to dev (1/9 with the default
0.8,0.1,0.1). A kept question without a creation date is bad input (``missing_created``).

Records are spilled to an on-disk SQLite store (which also rejects duplicate question
ids across sources) and written ordered by their hash key (a seeded shuffle,
independent of source order), so the split files are byte-identical for the same inputs
and seed.

Writes ``DIR/{train,dev,test}.jsonl``, ``DIR/stats.json`` (see :mod:`qaembed.data.stats`)
and ``DIR/manifest.json`` (seed, split mode, fractions and dates, sources, per-split
record counts and hashes, skipped counts, environment). Everything is written into a
temporary ``DIR/.prepare-<pid>-<random>/`` folder first and moved into place at the end
(``manifest.json`` last), so an interrupted run never leaves half-written files under
their final names; a later run removes such temporary folders once their process is gone.
``DIR`` must be empty or new unless ``overwrite`` is set (then only those five files are
replaced; nothing else in ``DIR`` is touched).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qaembed import paths
from qaembed.data.adapter import SourceAdapter
from qaembed.data.dataset import SPLITS, split_files, split_path, write_jsonl_lines
from qaembed.data.parquet import PARQUET_DIR, SHARD_RECORDS, is_shard_name, write_parquet_shards
from qaembed.data.sources import open_source
from qaembed.data.stats import STATS_FILE, StatsAccumulator
from qaembed.data.workers import default_workers
from qaembed.errors import ConfigError, DataError
from qaembed.jsonfiles import write_json
from qaembed.outputs import check_output_dir as check_writable_dir
from qaembed.outputs import folder_content, writing_alone
from qaembed.records import QARecord
from qaembed.subprocesses import process_alive

MANIFEST_FILE = "manifest.json"
MINED_NEGATIVES_NOTE = "records_with_mined_negatives"
DROPPED_NEGATIVES_NOTE = "mined_negatives_dropped"  # owned by a question that is not in train after this split
OUTPUT_FILES = tuple(f"{split}.jsonl" for split in SPLITS) + (STATS_FILE, MANIFEST_FILE)  # manifest last
PARQUET_OUTPUT_FILES = (PARQUET_DIR, STATS_FILE, MANIFEST_FILE)  # --output parquet: the shards' folder
TEMP_PREFIX = ".prepare-"
# ".prepare-<pid>-<8 chars>" (this version) or ".prepare-<8 chars>" (earlier versions, no pid)
_TEMP_NAME = re.compile(r"^\.prepare-(?:(\d+)-)?[a-z0-9_]{8}$")
_TEMP_CONTENT = re.compile(
    r"^(records\.sqlite.*|qaembed-spill-.*|(train|dev|test)\.jsonl(\.tmp)?|(stats|manifest)\.json(\.tmp)?|parquet)$")
OutputFormat = Literal["jsonl", "parquet"]
SplitMode = Literal["random", "by-date"]
STALE_REMOVED = "removed {} (temporary folder of an interrupted prepare)"


class PrepareConfig(BaseModel):
    """Options of :func:`prepare_dataset` (validated; messages name the field)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 13
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_mode: SplitMode = "random"
    test_after: date | None = None  # by-date: questions created on/after this UTC day are test
    dev_after: date | None = None  # by-date: of the rest, created on/after this day are dev (else seeded hash)
    min_answers: int = Field(1, ge=0)
    skip_bad: bool = False
    encoding: str | None = None  # CSV sources (Kaggle); default UTF-8
    hf_columns: dict[str, str] = Field(default_factory=dict)
    output: OutputFormat = "jsonl"  # parquet: DIR/parquet/SPLIT-00000.parquet, ... (qaembed.data.parquet)
    shard_records: int = Field(SHARD_RECORDS, ge=1)  # --output parquet: records per shard

    @field_validator("split")
    @classmethod
    def _fractions(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"train,dev,test fractions must be >= 0 and sum to 1, got {value}")
        return value

    @model_validator(mode="after")
    def _dates(self) -> PrepareConfig:
        if self.split_mode == "random":
            if self.test_after is not None or self.dev_after is not None:
                raise ValueError("test_after / dev_after need split_mode 'by-date' (--split by-date)")
            return self
        if self.test_after is None:
            raise ValueError("split_mode 'by-date' needs test_after (--test-after YYYY-MM-DD)")
        if self.dev_after is not None and self.dev_after >= self.test_after:
            raise ValueError(f"dev_after ({self.dev_after}) must be before test_after ({self.test_after})")
        if self.dev_after is None and self.split[0] + self.split[1] <= 0:
            raise ValueError("by-date without dev_after splits the rest by the train,dev fractions; both are 0")
        return self

    def split_description(self) -> dict[str, object]:
        """How records were assigned to splits (for the manifest)."""
        if self.split_mode == "random":
            return {"mode": "random", "seed": self.seed, "fractions": list(self.split)}
        described: dict[str, object] = {"mode": "by-date", "test_after": self.test_after.isoformat()}
        if self.dev_after is not None:
            described["dev_after"] = self.dev_after.isoformat()
        else:
            described.update(seed=self.seed, dev_share_of_rest=self.split[1] / (self.split[0] + self.split[1]))
        return described


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> ``(0.8, 0.1, 0.1)`` (validated by :class:`PrepareConfig`)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ConfigError(f"--split: expected three fractions TRAIN,DEV,TEST such as 0.8,0.1,0.1, "
                          f"or by-date, got {text!r}")
    return values  # type: ignore[return-value]


def created_day(text: str | None) -> date | None:
    """The UTC day of a question's creation time (``provenance.created``), or None when unknown.

    A value that is not ISO 8601 raises ValueError.

    >>> created_day("2023-01-31T23:59:59.120")
    datetime.date(2023, 1, 31)
    """
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.date()


def split_key(seed: int, record_id: str) -> int:
    """A 63-bit hash of ``(seed, record id)``; its position in [0, 2^63) picks the split."""
    digest = hashlib.blake2b(f"{seed}\x00{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def assign_split(key: int, fractions: tuple[float, float, float]) -> str:
    """The split of a record from its :func:`split_key` and the train/dev/test fractions."""
    position = key / float(1 << 63)
    if position < fractions[0]:
        return "train"
    if position < fractions[0] + fractions[1]:
        return "dev"
    return "test"


def assign_split_by_date(day: date, key: int, config: PrepareConfig) -> str:
    """The split of a record created on ``day`` under ``split_mode="by-date"`` (see the module docstring)."""
    if day >= config.test_after:
        return "test"
    if config.dev_after is not None:
        return "dev" if day >= config.dev_after else "train"
    train, dev, _ = config.split
    return "train" if key / float(1 << 63) < train / (train + dev) else "dev"


def check_output_dir(out_dir: Path, *, overwrite: bool) -> list[Path]:
    """Refuse an ``--out`` that cannot take a prepared dataset, before any work.

    A file, or a place no folder can be written, is refused as by every command
    (:func:`qaembed.outputs.check_output_dir`). Removes temporary folders of interrupted
    earlier runs (returned). A folder that holds anything else needs ``overwrite``.
    Raises :class:`ConfigError` naming the folder. A folder's lock file (:data:`qaembed.outputs.LOCK_FILE`)
    is not content: a folder that holds only one is empty.
    """
    check_writable_dir(out_dir)
    removed = remove_stale_temp_dirs(out_dir) if out_dir.is_dir() else []
    for name in OUTPUT_FILES:
        if (out_dir / name).exists() and not (out_dir / name).is_file():
            raise ConfigError(f"--out {out_dir}: {name} there is not a file; cannot write the dataset")
    shards = out_dir / PARQUET_DIR
    if shards.is_symlink() or (shards.exists() and (
            not shards.is_dir() or not all(is_shard_name(p.name) for p in shards.iterdir()))):
        raise ConfigError(f"--out {out_dir}: {PARQUET_DIR} there is not a folder of qaembed shards only; "
                          "cannot write the dataset")
    if out_dir.is_dir() and not overwrite:
        content = [p.name for p in folder_content(out_dir) if not _TEMP_NAME.match(p.name)]
        if content:
            what = "a prepared dataset" if (out_dir / MANIFEST_FILE).exists() else f"{len(content)} entries"
            shown = ", ".join(content[:5]) + (", ..." if len(content) > 5 else "")
            raise ConfigError(f"--out {out_dir}: folder is not empty (holds {what}: {shown}); give --overwrite to "
                              f"replace its {', '.join(OUTPUT_FILES)} (nothing else is touched), or a new folder")
    return removed


def remove_stale_temp_dirs(out_dir: Path) -> list[Path]:
    """Delete ``.prepare-*`` folders that an interrupted prepare left in ``out_dir``.

    Only folders named like qaembed's own (``.prepare-<pid>-xxxxxxxx``, or
    ``.prepare-xxxxxxxx`` from earlier versions) whose process is gone and which hold
    only files prepare writes there are removed; anything else is left alone.
    """
    removed = []
    for folder in sorted(out_dir.iterdir()):
        match = _TEMP_NAME.match(folder.name)
        if not match or not folder.is_dir() or folder.is_symlink():
            continue
        if match.group(1) is not None and process_alive(int(match.group(1))):
            continue  # another prepare may be writing there right now
        if all(_TEMP_CONTENT.match(p.name) for p in folder.iterdir()):
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def _unique_name(name: str, taken: dict) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}#{n}", n + 1
    return candidate


def prepare_dataset(
    sources: Sequence[str | Path] | None, out_dir: str | Path, config: PrepareConfig | None = None,
    *, progress: bool = True, overwrite: bool = False, workers: int | None = None,
) -> dict[str, object]:
    """Build a prepared dataset in ``out_dir`` from ``sources``; returns the stats (also in stats.json).

    With no sources, the default data is used (:func:`qaembed.paths.default_data_sources`:
    the Stack Exchange sites on the data search path, else the embedded sample).
    ``out_dir`` must be new or empty unless ``overwrite`` (see :func:`check_output_dir`).
    Bad input raises :class:`~qaembed.errors.DataError` unless ``config.skip_bad``. ``workers``:
    processes that clean large ``Posts.xml`` files (default :func:`~qaembed.data.workers.default_workers`;
    the output does not depend on it).
    """
    config = config or PrepareConfig()
    out_dir = Path(out_dir)
    for stale in check_output_dir(out_dir, overwrite=overwrite):
        if progress:
            print(STALE_REMOVED.format(stale), file=sys.stderr)
    if not sources:
        try:
            sources = paths.default_data_sources().sources
        except FileNotFoundError as exc:
            raise DataError(str(exc)) from exc
    # the check again under the lock: a prepare that finished since is a dataset there now, one still running is refused
    with writing_alone(out_dir, "qaembed data prepare", create=True):  # a failed run into a new folder leaves none
        check_output_dir(out_dir, overwrite=overwrite)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=out_dir))
        except OSError as exc:
            raise ConfigError(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from exc
        try:
            stats = _prepare_into(sources, staging, config, progress=progress,
                                  workers=default_workers() if workers is None else workers)
            _move_into(staging, out_dir, config.output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return stats


def _move_into(staging: Path, out_dir: Path, output: OutputFormat) -> None:
    """Replace the dataset in ``out_dir`` by the one written in ``staging``."""
    _remove_other_layout(out_dir, output)
    names = PARQUET_OUTPUT_FILES if output == "parquet" else OUTPUT_FILES
    # the earlier dataset goes first, its manifest before its splits: a process killed while the new one moves
    # in leaves an incomplete folder (which readers refuse), never new splits beside old ones
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    for name in names:
        if name == PARQUET_DIR and (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)  # only shards (checked in check_output_dir)
        else:
            (out_dir / name).unlink(missing_ok=True)
    for name in names:
        os.replace(staging / name, out_dir / name)  # manifest.json last: a reader trusts files it lists


def _remove_other_layout(out_dir: Path, output: OutputFormat) -> None:
    """``--overwrite`` from one layout to the other: the earlier layout's split files go (readers
    take ``SPLIT.jsonl`` before shards, so a stale one would be read instead of the new shards)."""
    if output == "parquet":
        for split in SPLITS:
            split_path(out_dir, split).unlink(missing_ok=True)
    elif (out_dir / PARQUET_DIR).is_dir():
        shutil.rmtree(out_dir / PARQUET_DIR)


def _prepare_into(
    sources: Sequence[str | Path], staging: Path, config: PrepareConfig, *, progress: bool, workers: int,
) -> dict:
    """Read the sources, split, and write the five output files into ``staging``."""
    source_stats: dict[str, dict] = {}
    source_descriptions = []
    total = StatsAccumulator()
    split_accumulators = {split: StatsAccumulator() for split in SPLITS}
    skipped_total: Counter[str] = Counter()
    skipped_sources: list[str] = []
    filtered_total = 0

    store = sqlite3.connect(staging / "records.sqlite", isolation_level=None)
    store.execute("PRAGMA page_size=16384")  # records are kilobytes each: larger pages insert and read faster
    store.execute("PRAGMA journal_mode=OFF")
    store.execute("PRAGMA synchronous=OFF")
    store.execute("CREATE TABLE records (id TEXT PRIMARY KEY, split TEXT, key INTEGER, source TEXT, data TEXT, "
                  "negatives INTEGER)")
    store.execute("BEGIN")
    try:
        for spec in sources:
            adapter = open_source(spec, skip_bad=config.skip_bad, encoding=config.encoding,
                                  hf_columns=config.hf_columns, spill_dir=staging, progress=progress, workers=workers)
            name = _unique_name(adapter.name, source_stats)
            accumulator, filtered, yielded = _ingest(adapter, name, store, config, split_accumulators)
            if yielded == 0:
                adapter.policy.reject(DataError("source has no records", path=str(adapter.path)), "empty_source")
                skipped_sources.append(name)
            total.merge(accumulator)
            skipped = adapter.policy.summary()
            skipped_total.update(skipped["counts"])
            filtered_total += filtered
            source_stats[name] = {
                "kind": adapter.kind, "path": str(adapter.path), "stats": accumulator.summary(),
                "skipped_bad": skipped["counts"], "skipped_examples": skipped["examples"],
                "notes": dict(sorted(adapter.notes.items())), "filtered_min_answers": filtered,
            }
            source_descriptions.append({**adapter.describe(), "name": name})
        store.execute("COMMIT")
        store.execute("CREATE INDEX records_by_split ON records (split, key, id)")
        written = {split: split_accumulators[split].questions for split in SPLITS}
        if not sum(written.values()):
            skipped = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped_total.items()))
            raise DataError(f"no records left to write (after --min-answers {config.min_answers}"
                            f"{f'; skipped as bad: {skipped}' if skipped else ''})",
                            path=", ".join(str(s) for s in sources))
        store.execute("BEGIN")
        _drop_leaking_negatives(store, source_stats)
        store.execute("COMMIT")
        files = {}
        for split in SPLITS:
            rows = store.execute("SELECT data FROM records WHERE split = ? ORDER BY key, id", (split,))
            lines = (row[0] for row in rows)
            if config.output == "parquet":
                count, shards = write_parquet_shards(staging, split, lines, shard_records=config.shard_records)
                files[split] = {"records": count, "files": [f"{PARQUET_DIR}/{path.name}" for path in shards]}
            else:
                files[split] = {"records": write_jsonl_lines(split_path(staging, split), lines)}
    finally:
        store.close()
    (staging / "records.sqlite").unlink()

    from qaembed.provenance import git_state, hash_files, library_versions

    for split in SPLITS:
        files[split]["sha256_16"] = hash_files(split_files(staging, split))
    stats = {
        "sources": source_stats,
        "total": total.summary(),
        "splits": {split: split_accumulators[split].summary() for split in SPLITS},
        "skipped_bad": dict(sorted(skipped_total.items())),
        "skipped_sources": skipped_sources,
        "min_answers": config.min_answers,
        "filtered_min_answers": filtered_total,
    }
    write_json(staging / STATS_FILE, stats)
    write_json(staging / MANIFEST_FILE, {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config.model_dump(mode="json"),
        "split": config.split_description(),
        "sources": source_descriptions,
        "files": files,
        "skipped_bad": stats["skipped_bad"],
        "filtered_min_answers": filtered_total,
        "environment": {"git": git_state(), "versions": library_versions()},  # hardware does not affect data
    })
    return stats


def _drop_leaking_negatives(store: sqlite3.Connection, source_stats: dict[str, dict]) -> None:
    """Remove from train records the mined negatives whose question is not a train question.

    A mined dataset prepared again (another seed, another split) keeps its records' mined negatives,
    which ``qaembed mine`` drew from the answers of train questions only. After the new split some of
    those questions are dev or test questions (or were filtered out): training on their answers as
    negatives would show the model test answers. Such negatives go, counted per source
    (``notes.mined_negatives_dropped``); the same split keeps every negative, so a re-prepare with the
    same seed (say, to change ``--output``) writes the same records. Negatives of dev and test records
    are never trained on and are kept as they are.
    """
    dropped: Counter[str] = Counter()
    for rowid, source, data in _rows_in_batches(
            store, "SELECT rowid, source, data FROM records WHERE rowid > ? AND split = 'train' AND negatives > 0"):
        record = QARecord.model_validate_json(data)
        owners = sorted({negative.question_id for negative in record.negatives})
        in_train = {row[0] for row in store.execute(
            f"SELECT id FROM records WHERE split = 'train' AND id IN ({', '.join('?' * len(owners))})", owners)}
        kept = [negative for negative in record.negatives if negative.question_id in in_train]
        if len(kept) < len(record.negatives):
            dropped[source] += len(record.negatives) - len(kept)
            record.negatives = kept
            store.execute("UPDATE records SET data = ?, negatives = ? WHERE rowid = ?",
                          (record.model_dump_json(exclude_defaults=True), len(kept), rowid))
    for source, count in dropped.items():
        source_stats[source]["notes"] = dict(sorted({**source_stats[source]["notes"],
                                                     DROPPED_NEGATIVES_NOTE: count}.items()))


def _rows_in_batches(store: sqlite3.Connection, query: str, size: int = 512) -> Iterator[tuple]:
    """The rows of ``query`` (first column the rowid, ``rowid > ?`` its condition) fetched ``size`` at a time
    by rowid, so that the caller may update the table between rows and memory stays bounded."""
    last = 0
    while rows := store.execute(f"{query} ORDER BY rowid LIMIT {size}", (last,)).fetchall():
        yield from rows
        last = rows[-1][0]


def _ingest(
    adapter: SourceAdapter, name: str, store: sqlite3.Connection, config: PrepareConfig, split_accumulators: dict[str, StatsAccumulator],
) -> tuple[StatsAccumulator, int, int]:
    """Store one source's records with their split; returns (its stats, filtered count, records yielded)."""
    accumulator, filtered, yielded = StatsAccumulator(), 0, 0
    with closing(adapter.serialized_records()) as records:  # an error below closes the adapter's spill store at once
        for record in records:
            yielded += 1
            key = split_key(config.seed, record.id)
            kept = len(record.scores) >= config.min_answers
            if config.split_mode == "random":
                split = assign_split(key, config.split)
            elif kept:
                try:
                    day = created_day(record.created)
                except ValueError:
                    adapter.policy.reject(DataError(
                        f"question {record.id!r}: creation date is not ISO 8601: {record.created!r}",
                        path=str(adapter.path), field="provenance.created"), "invalid_created")
                    continue
                if day is None:
                    adapter.policy.reject(DataError(
                        f"question {record.id!r} has no creation date (needed by --split by-date)",
                        path=str(adapter.path), field="provenance.created"), "missing_created")
                    continue
                split = assign_split_by_date(day, key, config)
            else:
                split = None
            try:  # a filtered record keeps only its id (for duplicate checks)
                store.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", (
                    record.id, split if kept else None, key, name, record.json if kept else None, record.negatives))
            except sqlite3.IntegrityError:
                other = store.execute("SELECT source FROM records WHERE id = ?", (record.id,)).fetchone()[0]
                adapter.policy.reject(DataError(
                    f"duplicate question id {record.id!r} (already read from source {other})",
                    path=str(adapter.path), field="id"), "duplicate_id")
                continue
            accumulator.add_scores(record.scores)
            if record.negatives:  # split again: see _drop_leaking_negatives
                adapter.notes[MINED_NEGATIVES_NOTE] += 1
            if kept:
                split_accumulators[split].add_scores(record.scores)
            else:
                filtered += 1
    return accumulator, filtered, yielded
