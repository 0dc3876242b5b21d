"""``qaembed data prepare``: sources -> records -> train/dev/test split -> canonical dataset.

Each record goes to a split by a hash of ``(seed, record id)``: a question's split
depends on nothing else, so the result is deterministic for a seed, identical whatever
order the sources are given in, and a question never moves between splits when other
data is added. Split sizes therefore follow the fractions approximately (exactly in
expectation). Records are spilled to an on-disk SQLite store (which also rejects
duplicate question ids across sources) and written ordered by their hash key (a seeded
shuffle, independent of source order), so the split files are byte-identical for the
same inputs and seed.

Writes ``DIR/{train,dev,test}.jsonl``, ``DIR/stats.json`` (see :mod:`qaembed.data.stats`)
and ``DIR/manifest.json`` (seed, split fractions, sources, per-split record counts and
hashes, skipped counts, environment).
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections import Counter
from contextlib import closing
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qaembed import paths
from qaembed.data.adapter import SourceAdapter
from qaembed.data.dataset import SPLITS, split_path, write_json, write_jsonl_lines
from qaembed.data.sources import open_source
from qaembed.data.stats import STATS_FILE, StatsAccumulator
from qaembed.errors import DataError

MANIFEST_FILE = "manifest.json"


class PrepareConfig(BaseModel):
    """Options of :func:`prepare_dataset` (validated; messages name the field)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 13
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    min_answers: int = Field(1, ge=0)
    skip_bad: bool = False
    encoding: str | None = None  # CSV sources (Kaggle); default UTF-8
    hf_columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("split")
    @classmethod
    def _fractions(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"train,dev,test fractions must be >= 0 and sum to 1, got {value}")
        return value


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> ``(0.8, 0.1, 0.1)`` (validated by :class:`PrepareConfig`)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        from qaembed.errors import ConfigError

        raise ConfigError(f"--split: expected three fractions TRAIN,DEV,TEST such as 0.8,0.1,0.1, got {text!r}")
    return values  # type: ignore[return-value]


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


def _unique_name(name: str, taken: dict) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}#{n}", n + 1
    return candidate


def prepare_dataset(
    sources: Sequence[str | Path] | None, out_dir: str | Path, config: PrepareConfig | None = None,
    *, progress: bool = True,
) -> dict[str, object]:
    """Build a prepared dataset in ``out_dir`` from ``sources``; returns the stats (also in stats.json).

    With no sources, the Stack Exchange sites on the data search path are used
    (:func:`qaembed.paths.default_stackexchange_sites`). Bad input raises
    :class:`~qaembed.errors.DataError` unless ``config.skip_bad``.
    """
    config = config or PrepareConfig()
    out_dir = Path(out_dir)
    if not sources:
        try:
            sources = [str(p) for p in paths.default_stackexchange_sites()]
        except FileNotFoundError as exc:
            raise DataError(str(exc)) from exc
    out_dir.mkdir(parents=True, exist_ok=True)

    source_stats: dict[str, dict] = {}
    source_descriptions = []
    total = StatsAccumulator()
    split_accumulators = {split: StatsAccumulator() for split in SPLITS}
    skipped_total: Counter[str] = Counter()
    skipped_sources: list[str] = []
    filtered_total = 0

    with tempfile.TemporaryDirectory(prefix=".prepare-", dir=out_dir) as spill:
        store = sqlite3.connect(Path(spill) / "records.sqlite", isolation_level=None)
        store.execute("PRAGMA journal_mode=OFF")
        store.execute("PRAGMA synchronous=OFF")
        store.execute("CREATE TABLE records (id TEXT PRIMARY KEY, split TEXT, key INTEGER, source TEXT, data TEXT)")
        store.execute("BEGIN")
        try:
            for spec in sources:
                adapter = open_source(spec, skip_bad=config.skip_bad, encoding=config.encoding,
                                      hf_columns=config.hf_columns, spill_dir=spill, progress=progress)
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
                raise DataError(f"no records left to write (after --min-answers {config.min_answers})",
                                path=", ".join(str(s) for s in sources))
            files = {}
            for split in SPLITS:
                rows = store.execute("SELECT data FROM records WHERE split = ? ORDER BY key, id", (split,))
                count = write_jsonl_lines(split_path(out_dir, split), (row[0] for row in rows))
                files[split] = {"records": count}
        finally:
            store.close()

    from qaembed.provenance import git_state, hash_files, library_versions

    for split in SPLITS:
        files[split]["sha256_16"] = hash_files([split_path(out_dir, split)])
    stats = {
        "sources": source_stats,
        "total": total.summary(),
        "splits": {split: split_accumulators[split].summary() for split in SPLITS},
        "skipped_bad": dict(sorted(skipped_total.items())),
        "skipped_sources": skipped_sources,
        "min_answers": config.min_answers,
        "filtered_min_answers": filtered_total,
    }
    write_json(out_dir / STATS_FILE, stats)
    write_json(out_dir / MANIFEST_FILE, {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config.model_dump(),
        "sources": source_descriptions,
        "files": files,
        "skipped_bad": stats["skipped_bad"],
        "filtered_min_answers": filtered_total,
        "environment": {"git": git_state(), "versions": library_versions()},  # hardware does not affect data
    })
    return stats


def _ingest(
    adapter: SourceAdapter, name: str, store: sqlite3.Connection, config: PrepareConfig, split_accumulators: dict[str, StatsAccumulator],
) -> tuple[StatsAccumulator, int, int]:
    """Store one source's records with their split; returns (its stats, filtered count, records yielded)."""
    accumulator, filtered, yielded = StatsAccumulator(), 0, 0
    with closing(adapter.records()) as records:  # an error below closes the adapter's spill store at once
        for record in records:
            yielded += 1
            key = split_key(config.seed, record.id)
            split = assign_split(key, config.split)
            kept = len(record.answers) >= config.min_answers
            try:  # a filtered record keeps only its id (for duplicate checks)
                store.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?)", (
                    record.id, split if kept else None, key, name,
                    record.model_dump_json(exclude_defaults=True) if kept else None))
            except sqlite3.IntegrityError:
                other = store.execute("SELECT source FROM records WHERE id = ?", (record.id,)).fetchone()[0]
                adapter.policy.reject(DataError(
                    f"duplicate question id {record.id!r} (already read from source {other})",
                    path=str(adapter.path), field="id"), "duplicate_id")
                continue
            accumulator.add(record)
            if kept:
                split_accumulators[split].add(record)
            else:
                filtered += 1
    return accumulator, filtered, yielded
