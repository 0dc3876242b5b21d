"""Kaggle StackSample adapter: a folder with ``Questions.csv`` and ``Answers.csv`` (+ ``Tags.csv``).

The format of the "StackSample: 10% of Stack Overflow Q&A" Kaggle dataset (and of the
first seed project). Columns, by header name: ``Questions.csv``: ``Id, OwnerUserId,
CreationDate, Score, Title, Body`` (others such as ``ClosedDate`` are ignored);
``Answers.csv``: ``Id, OwnerUserId, CreationDate, ParentId, Score, Body``; optional
``Tags.csv``: ``Id, Tag`` (one row per question tag). ``NA`` or an empty cell means
missing (allowed for ``OwnerUserId`` and ``CreationDate`` only).

Files are read as UTF-8 unless an encoding is given (StackSample itself is latin-1:
pass ``encoding="latin-1"``, CLI ``--encoding latin-1``). Bytes that do not decode are a
:class:`~qaembed.errors.DataError` naming the file and line, never silently replaced.
Rows are streamed with the ``csv`` module and spilled to a
:class:`~qaembed.data.post_store.PostStore`, like the XML dump; the CSVs carry no
accepted-answer flag, so every ``accepted`` is False. Ids are namespaced with ``site``
(default ``stackoverflow.com``, which is what StackSample holds).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from qaembed.data.adapter import BadRow, SourceAdapter, int_field, open_binary
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.post_store import ANSWER, QUESTION, PostStore
from qaembed.data.stackexchange import records_from_store, spill_post
from qaembed.errors import DataError
from qaembed.records import QARecord

_MISSING = ("", "NA")
_REQUIRED_COLUMNS = {
    "Questions.csv": ("Id", "Score", "Title", "Body"),
    "Answers.csv": ("Id", "ParentId", "Score", "Body"),
    "Tags.csv": ("Id", "Tag"),
}


class _DecodedLines:
    """Decodes a binary file line by line, remembering the physical line number and bad lines."""

    def __init__(self, fh, path: Path, encoding: str, skip_bad: bool):
        self._fh, self._path, self._encoding, self._skip_bad = fh, path, encoding, skip_bad
        self.line_no = 0
        self.bad_line_error: DataError | None = None  # first undecodable line since the reader took it

    def __iter__(self) -> Iterator[str]:
        for raw in self._fh:
            self.line_no += 1
            try:
                yield raw.decode(self._encoding)
            except UnicodeDecodeError as exc:
                error = DataError(
                    f"bytes that are not valid {self._encoding} ({exc.reason} at byte {exc.start} of the line); "
                    "pass the file's encoding (e.g. --encoding latin-1)",
                    path=str(self._path), line=self.line_no,
                )
                if not self._skip_bad:
                    raise BadRow(error, "invalid_encoding") from exc
                self.bad_line_error = self.bad_line_error or error
                yield raw.decode(self._encoding, errors="replace")


def _csv_rows(path: Path, encoding: str, policy: BadRecordPolicy, progress: bool) -> Iterator[tuple[int, dict]]:
    """``(first line of the row, {column: value})`` for each data row; undecodable rows go to ``policy``."""
    csv.field_size_limit(sys.maxsize)
    with open_binary(path, progress=progress) as fh:
        lines = _DecodedLines(fh, path, encoding, policy.skip)
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError("empty CSV file (no header)", path=str(path)) from None
        missing = [c for c in _REQUIRED_COLUMNS[path.name] if c not in header]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)}; header is {header}", path=str(path), line=1)
        row_start = lines.line_no + 1
        for values in reader:
            line = row_start
            row_start = lines.line_no + 1
            if lines.bad_line_error is not None:  # the row holds an undecodable line: skip it (skip mode only)
                policy.reject(lines.bad_line_error, "invalid_encoding")
                lines.bad_line_error = None
                continue
            if len(values) != len(header):
                policy.reject(DataError(f"{len(values)} cells, header has {len(header)}", path=str(path), line=line),
                              "malformed_csv")
                continue
            yield line, {k: (None if v in _MISSING else v) for k, v in zip(header, values)}


class KaggleCsvPair(SourceAdapter):
    """A StackSample-style folder (``Questions.csv``, ``Answers.csv``, optional ``Tags.csv``)."""

    kind = "kaggle"

    def __init__(
        self, folder: str | Path, *, site: str = "stackoverflow.com", encoding: str | None = None,
        policy: BadRecordPolicy | None = None, spill_dir: str | Path | None = None, progress: bool = True,
    ):
        folder = Path(folder)
        super().__init__(folder, policy=policy)
        self.site, self.encoding = site, encoding or "utf-8"
        self.spill_dir, self.progress = spill_dir, progress
        for name in ("Questions.csv", "Answers.csv"):
            if not (folder / name).is_file():
                raise DataError(f"no {name} in this Kaggle (StackSample) folder", path=str(folder))

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "site": self.site, "encoding": self.encoding}

    def records(self) -> Iterator[QARecord]:
        with PostStore(self.spill_dir) as store:
            self._load_tags(store)
            self._load(store, self.path / "Questions.csv", QUESTION)
            self._load(store, self.path / "Answers.csv", ANSWER)
            yield from records_from_store(store, self, site=self.site, source=f"kaggle:{self.name}")

    def _rows(self, path: Path) -> Iterator[tuple[int, dict]]:
        try:
            yield from _csv_rows(path, self.encoding, self.policy, self.progress)
        except BadRow as bad:
            self.policy.reject(bad.error, bad.reason)  # only reached when not skipping

    def _load_tags(self, store: PostStore) -> None:
        path = self.path / "Tags.csv"
        if not path.is_file():
            return
        for line, row in self._rows(path):
            try:
                question_id = int_field(row, "Id", path, line)
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
                continue
            if row.get("Tag"):
                store.add_tag(question_id, row["Tag"])

    def _load(self, store: PostStore, path: Path, kind: int) -> None:
        for line, row in self._rows(path):
            try:
                spill_post(store, row, kind, path, line, tags_of=store.tags, notes=self.notes)
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
