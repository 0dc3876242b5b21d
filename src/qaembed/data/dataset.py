"""The canonical prepared dataset on disk (what ``qaembed data prepare`` writes).

Layout of a dataset folder::

    DIR/train.jsonl   one QARecord per line (QARecord.model_dump_json())
    DIR/dev.jsonl
    DIR/test.jsonl
      (or, with ``data prepare --output parquet``: DIR/parquet/SPLIT-00000.parquet, ... instead;
      see qaembed.data.parquet)
    DIR/corpus.jsonl  optional: retrieval documents no question owns (CorpusDocument per line), distractors
                      with gain 0 in evaluation (``qaembed data chunk`` puts unreferenced passages here)
    DIR/stats.json    statistics (see qaembed.data.stats) and skipped-record counts
    DIR/manifest.json seed, split fractions, sources, per-split data hashes

Every downstream stage (batching, mining, training, evaluation) reads splits through
:func:`read_split` / :func:`iter_split` (either layout) and never re-parses raw sources;
:func:`split_files` lists the files that hold a split (for existence checks and hashes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from qaembed.data.parquet import iter_parquet_records, shard_files
from qaembed.errors import DataError, first_problem
from qaembed.outputs import replacing
from qaembed.records import CorpusDocument, QARecord

SPLITS = ("train", "dev", "test")
CORPUS_FILE = "corpus.jsonl"


def split_path(dataset_dir: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return Path(dataset_dir) / f"{split}.jsonl"


def not_utf8_error(exc: UnicodeDecodeError, path: str | Path, line_no: int) -> DataError:
    """The error for a line of ``path`` whose bytes are not UTF-8: ``PATH:LINE: not UTF-8 (REASON at byte N)``."""
    return DataError(f"not UTF-8 ({exc.reason} at byte {exc.start})", path=str(path), line=line_no)


def iter_jsonl_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each non-blank line of a UTF-8 file; a line that is not UTF-8 raises
    :func:`not_utf8_error` naming the file and line (each line is decoded on its own, so the number is exact)."""
    path = Path(path)
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8_error(exc, path, line_no) from None
            if line.strip():
                yield line_no, line


def iter_jsonl_records(path: str | Path) -> Iterator[QARecord]:
    """Stream QARecords from a canonical JSONL file; a bad line raises DataError with its number."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=str(path))
    for line_no, line in iter_jsonl_lines(path):
        yield record_from_json_line(line, path, line_no)


def record_from_json_line(line: str, path: str | Path, line_no: int) -> QARecord:
    """One QARecord from one canonical JSONL line; invalid content raises DataError (file, line, field)."""
    return model_from_json_line(QARecord, line, path, line_no)


def model_from_json_line(model_class, line: str, path: str | Path, line_no: int):
    """One ``model_class`` (pydantic) from one JSONL line; invalid content raises DataError (file, line, field)."""
    try:
        return model_class.model_validate_json(line)
    except ValidationError as exc:
        problem = first_problem(exc)
        raise DataError(problem.message, path=str(path), line=line_no, field=problem.field or None) from exc


def split_files(dataset_dir: str | Path, split: str) -> list[Path]:
    """The files that hold one split: ``[DIR/SPLIT.jsonl]``, else its Parquet shards, else ``[]``."""
    jsonl = split_path(dataset_dir, split)
    return [jsonl] if jsonl.is_file() else shard_files(dataset_dir, split)


def content_files(dataset_dir: str | Path) -> list[Path]:
    """Every file whose content a result depends on: the three splits' files and ``corpus.jsonl`` when present."""
    corpus = Path(dataset_dir) / CORPUS_FILE
    return [path for split in SPLITS for path in split_files(dataset_dir, split)] + ([corpus] if corpus.is_file() else [])


def iter_split(dataset_dir: str | Path, split: str) -> Iterator[QARecord]:
    """Stream the records of one split of a prepared dataset (JSONL or Parquet shards)."""
    files = split_files(dataset_dir, split)
    if not files:
        raise DataError(f"no {split} split here (neither {split}.jsonl nor parquet/{split}-*.parquet)",
                        path=str(dataset_dir))
    if files[0].suffix == ".jsonl":
        yield from iter_jsonl_records(files[0])
        return
    for path in files:
        yield from iter_parquet_records(path)


def read_corpus(dataset_dir: str | Path) -> list[CorpusDocument]:
    """The dataset's extra retrieval documents (``DIR/corpus.jsonl``; none when the file is absent)."""
    path = Path(dataset_dir) / CORPUS_FILE
    if not path.is_file():
        return []
    return [model_from_json_line(CorpusDocument, line, path, number) for number, line in iter_jsonl_lines(path)]


def read_split(dataset_dir: str | Path, split: str) -> list[QARecord]:
    """All records of one split of a prepared dataset, in file order."""
    return list(iter_split(dataset_dir, split))


def write_jsonl_records(path: str | Path, records: Iterable[QARecord]) -> int:
    """Write records as canonical JSONL atomically (temp file + rename); returns the count."""
    return write_jsonl_lines(path, (record.model_dump_json(exclude_defaults=True) for record in records))


def write_jsonl_lines(path: str | Path, lines: Iterable[str]) -> int:
    """Write already-serialized canonical JSONL lines (no newline) atomically; returns the count."""
    count = 0
    with replacing(path) as tmp, tmp.open("w", encoding="utf-8") as fh:  # a link at the name is replaced
        for line in lines:
            fh.write(line)
            fh.write("\n")
            count += 1
    return count
