"""Canonical JSONL adapter: one ``QARecord`` JSON per line (what ``qaembed data prepare`` writes).

The source is either one ``*.jsonl`` file, one gzipped ``*.jsonl.gz`` file (streamed; the
embedded default data is one), or a prepared dataset folder (its ``train``/``dev``/``test``
splits are read in that order, as JSONL or as Parquet shards, :mod:`qaembed.data.parquet`). Records are taken as they are (ids are already
namespaced); a line that is not a valid record, or a record with an empty answer text, is
a :class:`~qaembed.errors.DataError` naming the file, line and field. A corrupt or
truncated ``.gz`` file is an error naming the last line read (``malformed_gzip``: with
``--skip-bad`` the lines read before the damage are kept and one error is counted).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from qaembed.data.adapter import BadRow, SourceAdapter
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.dataset import SPLITS, not_utf8_error, record_from_json_line, split_files
from qaembed.data.parquet import iter_parquet_records
from qaembed.errors import DataError
from qaembed.records import QARecord


def _check_texts(record: QARecord, path: Path, line_no: int) -> None:
    if not record.title.strip():
        raise BadRow(DataError("empty title", path=str(path), line=line_no, field="title"), "empty_title")
    for position, answer in enumerate(record.answers):
        if not answer.text.strip():
            raise BadRow(DataError("empty answer text", path=str(path), line=line_no,
                                   field=f"answers.{position}.text"), "empty_body")


class CanonicalJsonl(SourceAdapter):
    """A canonical ``*.jsonl`` file or a prepared dataset folder."""

    kind = "jsonl"

    def __init__(self, path: str | Path, *, policy: BadRecordPolicy | None = None):
        super().__init__(path, policy=policy)
        if self.path.is_dir():
            self.files = [path for split in SPLITS for path in split_files(self.path, split)]
            if not self.files:
                raise DataError("not a prepared dataset folder (no train/dev/test.jsonl, no parquet/ shards)",
                                path=str(self.path))
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise DataError("no such file or folder", path=str(self.path))

    def records(self) -> Iterator[QARecord]:
        for path in self.files:
            if path.suffix == ".parquet":
                yield from self._shard_records(path)
                continue
            with _open_lines(path) as fh:
                try:
                    yield from self._file_records(_numbered_lines(fh, path), path)
                except BadRow as bad:  # damaged gzip stream: nothing after it can be read
                    self.policy.reject(bad.error, bad.reason)

    def _shard_records(self, path: Path) -> Iterator[QARecord]:
        """A shard's records, checked as JSONL lines are; a damaged shard is one error (counted with --skip-bad)."""
        try:
            for row, record in enumerate(iter_parquet_records(path), start=1):
                try:
                    _check_texts(record, path, row)
                except BadRow as bad:
                    self.policy.reject(bad.error, bad.reason)
                    continue
                yield record
        except DataError as error:
            self.policy.reject(error, "invalid_record")

    def _file_records(self, lines: Iterator[tuple[int, bytes]], path: Path) -> Iterator[QARecord]:
        for line_no, raw in lines:
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                record = record_from_json_line(line, path, line_no)
                _check_texts(record, path, line_no)
            except UnicodeDecodeError as exc:
                self.policy.reject(not_utf8_error(exc, path, line_no), "invalid_encoding")
                continue
            except DataError as error:
                self.policy.reject(error, "invalid_record")
                continue
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
                continue
            yield record


def is_gzipped_jsonl(path: Path) -> bool:
    return path.name.endswith(".jsonl.gz")


def _open_lines(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if is_gzipped_jsonl(path) else path.open("rb")  # type: ignore[return-value]


def _numbered_lines(fh: BinaryIO, path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw line)``; damaged gzip data raises a DataError after the last good line."""
    line_no = 0
    try:
        for raw in fh:
            line_no += 1
            yield line_no, raw
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        reason = "truncated" if isinstance(exc, EOFError) else f"corrupt ({exc})"
        raise BadRow(DataError(f"gzip data {reason} after line {line_no}", path=str(path), line=line_no + 1),
                     "malformed_gzip") from exc
