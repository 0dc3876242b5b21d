"""Kaggle StackSample adapter: a folder with ``Questions.csv`` and ``Answers.csv`` (+ ``Tags.csv``).

The format of the "StackSample: 10% of Stack Overflow Q&A" Kaggle dataset (and of the
first seed project). Columns, by header name: ``Questions.csv``: ``Id, OwnerUserId,
CreationDate, Score, Title, Body`` (others such as ``ClosedDate`` are ignored);
``Answers.csv``: ``Id, OwnerUserId, CreationDate, ParentId, Score, Body``; optional
``Tags.csv``: ``Id, Tag`` (one row per question tag). ``NA`` or an empty cell means
missing (allowed for ``OwnerUserId`` and ``CreationDate`` only).

Files are read as UTF-8 unless an encoding is given (StackSample itself is latin-1:
pass ``encoding="latin-1"``, CLI ``--encoding latin-1``; an unknown encoding name is a
:class:`~qaembed.errors.ConfigError` naming the option). Bytes that do not decode are a
:class:`~qaembed.errors.DataError` naming the file and line, never silently replaced.

Broken quoting (an unclosed quote would otherwise swallow the following rows into one
cell) is detected by two rules, and reported at the row's first line as
``malformed_csv``: (1) the ``csv`` module's strict mode (text after a closing quote, end
of file inside a quoted cell); (2) a cell that spans several lines where a
continuation line *looks like the start of a row of this file*: it starts with a digit
or ``-``, has more cells than the columns before the first text column
(``Title``/``Body``), and those cells parse as that file's ids, scores and dates, all
but at most one (at least two), e.g. ``12,NA,2008-08-01T13:57:07Z,5,`` in ``Answers.csv``. With ``--skip-bad`` only
the broken row's first line is dropped; reading resumes on the next line, so the rows
that the open quote had swallowed are read as rows again. A body line that really
starts like a row (code showing this very CSV format) would be reported too: that is
the price of never merging rows silently.
Rows are streamed with the ``csv`` module and spilled to a
:class:`~qaembed.data.post_store.PostStore`, like the XML dump; the CSVs carry no
accepted-answer flag, so every ``accepted`` is False. Ids are namespaced with ``site``
(default ``stackoverflow.com``, which is what StackSample holds).
"""

from __future__ import annotations

import codecs
import csv
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from qaembed.data.adapter import BadRow, SourceAdapter, date_field, int_field, open_binary
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.post_store import ANSWER, QUESTION, PostStore
from qaembed.data.stackexchange import records_from_store, spill_post
from qaembed.errors import ConfigError, DataError
from qaembed.records import QARecord

_MISSING = ("", "NA")
_REQUIRED_COLUMNS = {
    "Questions.csv": ("Id", "Score", "Title", "Body"),
    "Answers.csv": ("Id", "ParentId", "Score", "Body"),
    "Tags.csv": ("Id", "Tag"),
}


# How a cell of each known column looks in a well-formed row (used to spot row-shaped lines).
_POSITIVE_ID_COLUMNS = ("Id", "ParentId")
_INTEGER_COLUMNS = ("Score",)
_OPTIONAL_INTEGER_COLUMNS = ("OwnerUserId",)
_DATE_COLUMNS = ("CreationDate", "ClosedDate")
_TEXT_COLUMNS = ("Title", "Body", "Tag")


class _DecodedLines:
    """Decodes a binary file line by line, remembering physical line numbers, with push-back.

    The ``csv`` reader pulls lines from this iterator; :attr:`record_lines` holds the lines
    of the row being read (cleared by :meth:`begin_record`), and :meth:`push_back` makes
    lines be read again (after a broken row, reading resumes on the line after its start).
    """

    def __init__(self, fh, path: Path, encoding: str, skip_bad: bool):
        self._fh, self._path, self._encoding, self._skip_bad = fh, path, encoding, skip_bad
        self.line_no = 0  # physical lines read from the file
        self.record_lines: list[tuple[int, str, DataError | None]] = []
        self._pushed: deque[tuple[int, str, DataError | None]] = deque()

    def __iter__(self) -> _DecodedLines:
        return self

    def __next__(self) -> str:
        if self._pushed:
            item = self._pushed.popleft()
        else:
            raw = self._fh.readline()
            if not raw:
                raise StopIteration
            self.line_no += 1
            item = (self.line_no, *self._decode(raw))
        self.record_lines.append(item)
        return item[1]

    def _decode(self, raw: bytes) -> tuple[str, DataError | None]:
        try:
            return raw.decode(self._encoding), None
        except UnicodeDecodeError as exc:
            error = DataError(
                f"bytes that are not valid {self._encoding} ({exc.reason} at byte {exc.start} of the line); "
                "pass the file's encoding (e.g. --encoding latin-1)",
                path=str(self._path), line=self.line_no,
            )
            if not self._skip_bad:
                raise BadRow(error, "invalid_encoding") from exc
            return raw.decode(self._encoding, errors="replace"), error

    def begin_record(self) -> None:
        self.record_lines = []

    def push_back(self, items: list[tuple[int, str, DataError | None]]) -> None:
        self._pushed.extendleft(reversed(items))

    @property
    def next_line(self) -> int:
        return self._pushed[0][0] if self._pushed else self.line_no + 1


def _looks_like_row(text: str, header: list[str]) -> bool:
    """True when ``text`` starts like a row of this file: its cells before the first text column
    parse as the ids, scores and dates those columns hold (see the module docstring)."""
    prefix_len = next((i for i, column in enumerate(header) if column in _TEXT_COLUMNS), len(header))
    if prefix_len == 0 or not text[:1].isascii() or not (text[:1].isdigit() or text[:1] == "-"):
        return False
    try:
        cells = next(csv.reader([text.rstrip("\r\n")]))
    except (csv.Error, StopIteration):
        return False
    if len(cells) <= prefix_len:
        return False
    checks = [(column, cell) for column, cell in zip(header[:prefix_len], cells) if column in _PREFIX_CHECKS]
    valid = [_PREFIX_CHECKS[column](cell) for column, cell in checks]
    # One damaged cell is tolerated (a bad row swallowed by an open quote must still be noticed);
    # a single valid cell is too weak a sign (a line of prose may start "3,").
    return sum(valid) >= max(2, len(valid) - 1)


def _valid(check: Callable[[str], object]) -> Callable[[str], bool]:
    """A predicate: does ``check(cell)`` pass (no BadRow / ValueError)?"""

    def test(cell: str) -> bool:
        try:
            check(cell)
        except (BadRow, ValueError):
            return False
        return True

    return test


def _date_or_missing(cell: str) -> None:
    if cell not in _MISSING and date_field({"d": cell}, "d", Path(), None) is None:
        raise ValueError(cell)


_PREFIX_CHECKS = {
    **{c: _valid(lambda cell, c=c: int_field({c: cell}, c, Path(), None, positive=True)) for c in _POSITIVE_ID_COLUMNS},
    **{c: _valid(lambda cell, c=c: int_field({c: cell}, c, Path(), None)) for c in _INTEGER_COLUMNS},
    **{c: _valid(lambda cell, c=c: cell in _MISSING or int_field({c: cell}, c, Path(), None))
       for c in _OPTIONAL_INTEGER_COLUMNS},
    **{c: _valid(_date_or_missing) for c in _DATE_COLUMNS},
}


def _csv_rows(path: Path, encoding: str, policy: BadRecordPolicy, progress: bool) -> Iterator[tuple[int, dict]]:
    """``(first line of the row, {column: value})`` for each data row; bad rows go to ``policy``."""
    csv.field_size_limit(sys.maxsize)
    with open_binary(path, progress=progress) as fh:
        lines = _DecodedLines(fh, path, encoding, policy.skip)
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError("empty CSV file (no header)", path=str(path)) from None
        except csv.Error as exc:
            raise DataError(f"unreadable CSV header: {exc}", path=str(path), line=1) from None
        if header:
            header[0] = header[0].removeprefix("\ufeff")  # a UTF-8 byte-order mark read as text
        missing = [c for c in _REQUIRED_COLUMNS[path.name] if c not in header]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)}; header is {header}", path=str(path), line=1)
        while True:
            lines.begin_record()
            line = lines.next_line
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                _broken_row(lines, policy, path, line, f"broken CSV quoting: {exc} (line {lines.record_lines[-1][0]})"
                            if lines.record_lines else f"broken CSV quoting: {exc}")
                continue
            continuation = next((item for item in lines.record_lines[1:] if _looks_like_row(item[1], header)), None)
            if continuation is not None:
                _broken_row(lines, policy, path, line,
                            f"a quoted cell opened on this line runs into line {continuation[0]}, which starts "
                            "like a new row (an unclosed quote?)")
                continue
            bad_encoding = next((item[2] for item in lines.record_lines if item[2] is not None), None)
            if bad_encoding is not None:  # the row holds an undecodable line: skip it (skip mode only)
                policy.reject(bad_encoding, "invalid_encoding")
                continue
            if not values:  # a blank line holds no row (a trailing newline, say): nothing to read or lose
                continue
            if len(values) != len(header):
                # more cells than the header: rows joined on one line (a lost line break) count as the rows
                # they hold, so the count of what was skipped is honest
                joined = max(1, (len(values) - 1) // max(1, len(header) - 1))
                message = f"{len(values)} cells, header has {len(header)}"
                if joined > 1:
                    message += f" (about {joined} rows joined on one line; counted as {joined})"
                policy.reject(DataError(message, path=str(path), line=line), "malformed_csv", count=joined)
                continue
            yield line, {k: (None if v in _MISSING else v) for k, v in zip(header, values)}


def _broken_row(lines: _DecodedLines, policy: BadRecordPolicy, path: Path, line: int, message: str) -> None:
    """Report a row with broken quoting; reading resumes on the line after its first line."""
    swallowed = lines.record_lines[1:]
    if swallowed and policy.skip:
        message += f"; only this line is skipped, reading resumes on line {swallowed[0][0]}"
    policy.reject(DataError(message, path=str(path), line=line), "malformed_csv")
    lines.push_back(swallowed)


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
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"--encoding: unknown encoding {self.encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
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
                question_id = int_field(row, "Id", path, line, positive=True)
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
