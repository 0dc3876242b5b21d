"""The shape every source adapter has, and helpers adapters share.

An adapter is a small class whose :meth:`SourceAdapter.records` yields
:class:`~qaembed.records.QARecord` objects with clean text; ingestion reads them as
:class:`SerializedRecord` (:meth:`SourceAdapter.serialized_records`), which an adapter may
build in worker processes without making the objects in the main process (the Stack
Exchange adapter does, for large dumps). Bad records go through the
adapter's :class:`~qaembed.data.bad_records.BadRecordPolicy`; informational counts that
are not errors (orphan answers, ignored post types) go in ``notes``. Both are reported
by ``qaembed data prepare``.
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, NamedTuple

from qaembed.data.bad_records import BadRecordPolicy
from qaembed.errors import DataError
from qaembed.records import QARecord, parse_iso_time

# Files larger than this get a progress bar over bytes read (when progress is enabled).
PROGRESS_MIN_BYTES = 32 << 20


class BadRow(Exception):
    """Raised inside an adapter for one bad record; the adapter hands it to its policy.

    ``count`` is how many input records the error cost (more than 1 when a break in the
    file made the parser stop, for example).
    """

    def __init__(self, error: DataError, reason: str, count: int = 1):
        super().__init__(str(error))
        self.error, self.reason, self.count = error, reason, count


class SerializedRecord(NamedTuple):
    """A record as ingestion stores it: its JSON and what the split and statistics need of it."""

    id: str
    created: str | None  # provenance.created
    scores: tuple[float, ...]  # the answers' scores, in order
    json: str  # model_dump_json(exclude_defaults=True)
    negatives: int = 0  # mined negatives it carries (a mined dataset prepared again)

    @classmethod
    def of(cls, record: QARecord) -> SerializedRecord:
        return cls(record.id, record.provenance.created if record.provenance else None,
                   tuple(answer.score for answer in record.answers), record.model_dump_json(exclude_defaults=True),
                   len(record.negatives))


class SourceAdapter:
    """Base of the source adapters: a name for reports, a bad-record policy, notes."""

    kind: str = "?"

    def __init__(self, path: str | Path, *, name: str | None = None, policy: BadRecordPolicy | None = None):
        self.path = Path(path)
        self.name = name or self.path.name
        self.policy = policy or BadRecordPolicy()
        self.notes: Counter[str] = Counter()

    def records(self) -> Iterator[QARecord]:
        raise NotImplementedError

    def serialized_records(self) -> Iterator[SerializedRecord]:
        """:meth:`records` as :class:`SerializedRecord` (the same records, in the same order)."""
        with closing(self.records()) as records:
            for record in records:
                yield SerializedRecord.of(record)

    def describe(self) -> dict[str, object]:
        """What goes in the manifest and stats for this source."""
        return {"name": self.name, "kind": self.kind, "path": str(self.path)}


# Integers in the dumps: ASCII decimal digits with an optional leading "-" (no "+", no spaces,
# no exponent, no "_" separators, no other scripts' digits), within int64 (SQLite's INTEGER).
_DECIMAL_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def int_field(
    values: Mapping, name: str, path: Path, line: int | None, *, required: bool = True, positive: bool = False,
) -> int | None:
    """An integer field of a raw row (see ``docs/input-validation.md`` for the grammar).

    ``positive=True`` for post ids (``Id``, ``ParentId``, ``AcceptedAnswerId``, ``PostTypeId``):
    1 to 2^63-1; otherwise (scores, user ids, where the dumps' Community user is -1) any int64.
    A missing value raises :class:`BadRow` ``missing_field``; text outside the grammar
    ``non_numeric``; a value outside the range ``out_of_range``.

    >>> int_field({"Score": "-3"}, "Score", Path("Posts.xml"), 2)
    -3
    >>> int_field({"Score": "1e3"}, "Score", Path("Posts.xml"), 2)
    Traceback (most recent call last):
    ...
    qaembed.data.adapter.BadRow: Posts.xml:2, field 'Score': not an integer: '1e3' (expected ASCII digits 0-9 with an optional leading '-')
    """
    raw = values.get(name)
    # The common case first, fast: up to 18 ASCII digits is always within int64 (zero ids go the long way).
    if raw.__class__ is str and raw.isdigit() and raw.isascii() and len(raw) < 19 and (raw.strip("0") or not positive):
        return int(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if not required:
            return None
        raise BadRow(DataError("missing required field", path=str(path), line=line, field=name), "missing_field")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise BadRow(DataError(f"not an integer: {raw!r}", path=str(path), line=line, field=name), "non_numeric")
    if isinstance(raw, str):
        if not _DECIMAL_INTEGER.fullmatch(raw):
            message = f"not an integer: {_shorten(raw)!r} (expected ASCII digits 0-9 with an optional leading '-')"
            raise BadRow(DataError(message, path=str(path), line=line, field=name), "non_numeric")
        if len(raw) > 40:  # far beyond int64: do not convert huge digit strings
            raise BadRow(DataError(f"integer out of range: {_shorten(raw)!r} ({len(raw)} digits; the limit is "
                                   "2^63-1)", path=str(path), line=line, field=name), "out_of_range")
        value = int(raw)
    else:
        value = raw
    low = 1 if positive else INT64_MIN
    if not low <= value <= INT64_MAX:
        what = "an id must be a positive integer below 2^63" if positive else "outside the 64-bit integer range"
        raise BadRow(DataError(f"{what}: {_shorten(str(raw))!r}", path=str(path), line=line, field=name),
                     "out_of_range")
    return value


def date_field(values: Mapping, name: str, path: Path, line: int | None) -> str | None:
    """An optional ISO 8601 date/date-time field; anything else raises :class:`BadRow` ``invalid_date``."""
    raw = values.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        parse_iso_time(raw)
    except ValueError:
        raise BadRow(DataError(f"not an ISO 8601 date or date-time: {_shorten(str(raw))!r}", path=str(path),
                               line=line, field=name), "invalid_date") from None
    return raw


# Scores given as text in JSON/HF sources: ASCII decimal, optional "-" and fraction (no exponent).
_DECIMAL_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
SCORE_LIMIT = float(1 << 63)


def parse_score(raw: object) -> float | int:
    """A vote score from a JSON-like value: a finite number within +-2^63, or decimal text.

    Raises ``ValueError`` (with the reason) for anything else: booleans, ``NaN``/``inf``,
    text such as ``"1e3"``, ``"1_000"`` or other scripts' digits, out-of-range values.

    >>> parse_score(3), parse_score(-1.5), parse_score("42")
    (3, -1.5, 42)
    >>> parse_score(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: not a finite number: nan
    """
    if isinstance(raw, str):
        if not _DECIMAL_NUMBER.fullmatch(raw) or len(raw) > 40:
            raise ValueError(f"not a number: {_shorten(raw)!r} (expected ASCII decimal digits, optional '-' and "
                             "fraction, no exponent)")
        value: float | int = int(raw) if "." not in raw else float(raw)
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"not a number: {_shorten(repr(raw))}")
    else:
        value = raw
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if not -SCORE_LIMIT <= value <= SCORE_LIMIT:
        raise ValueError(f"out of range (|score| <= 2^63): {_shorten(repr(raw))}")
    return value


def parse_native_id(raw: object) -> str:
    """A source's own id from a JSON-like value: non-empty text, or a positive integer below 2^63.

    Raises ``ValueError`` for floats, booleans, lists/objects, blank text, other integers.
    """
    if isinstance(raw, str):
        if not raw.strip():
            raise ValueError("empty id")
        if len(raw) > 1000:
            raise ValueError(f"id longer than 1000 characters: {_shorten(raw)!r}")
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= INT64_MAX:
            raise ValueError(f"an integer id must be positive and below 2^63: {_shorten(str(raw))}")
        return str(raw)
    raise ValueError(f"an id must be text or an integer, got {type(raw).__name__} {_shorten(repr(raw))}")


def parse_flag(raw: object) -> bool:
    """An accepted flag from a JSON-like value: ``true``/``false``, ``1``/``0`` or missing (False).

    Text such as ``"false"`` is refused (``bool("false")`` would be True): ``ValueError``.
    """
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    raise ValueError(f"expected true or false, got {_shorten(repr(raw))}")


def parse_time(raw: object) -> str | None:
    """ISO 8601 text from ISO text or a Unix timestamp (seconds, years 1970-9999); ``ValueError`` otherwise."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            parse_iso_time(raw)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or date-time: {_shorten(raw)!r}") from None
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw) and 0 <= raw < 253402300000:
        return datetime.fromtimestamp(raw, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    raise ValueError(f"not an ISO 8601 date-time or a Unix timestamp in years 1970-9999: {_shorten(repr(raw))}")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class _ProgressReader(io.RawIOBase):
    """A binary file wrapper that advances a tqdm bar by the bytes read."""

    def __init__(self, fh: BinaryIO, bar):
        self._fh, self._bar = fh, bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._fh.readinto(buffer)
        self._bar.update(n or 0)
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._bar.update(len(data))
        return data

    def close(self) -> None:
        self._bar.close()
        self._fh.close()
        super().close()


def open_binary(path: Path, *, progress: bool) -> BinaryIO:
    """Open ``path`` for binary reading, with a progress bar over bytes for large files.

    A file that cannot be opened (permissions, a folder in its place) is a :class:`DataError`.
    """
    try:
        fh = path.open("rb")
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from exc
    if not progress or size < PROGRESS_MIN_BYTES:
        return fh
    from tqdm.auto import tqdm

    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name, leave=False)
    return _ProgressReader(fh, bar)  # type: ignore[return-value]
