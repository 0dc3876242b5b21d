"""The shape every source adapter has, and helpers adapters share.

An adapter is a small class whose :meth:`SourceAdapter.records` yields
:class:`~qaembed.records.QARecord` objects with clean text. Bad records go through the
adapter's :class:`~qaembed.data.bad_records.BadRecordPolicy`; informational counts that
are not errors (orphan answers, ignored post types) go in ``notes``. Both are reported
by ``qaembed data prepare``.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from qaembed.data.bad_records import BadRecordPolicy
from qaembed.errors import DataError
from qaembed.records import QARecord

# Files larger than this get a progress bar over bytes read (when progress is enabled).
PROGRESS_MIN_BYTES = 32 << 20


class BadRow(Exception):
    """Raised inside an adapter for one bad record; the adapter hands it to its policy."""

    def __init__(self, error: DataError, reason: str):
        super().__init__(str(error))
        self.error, self.reason = error, reason


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

    def describe(self) -> dict[str, object]:
        """What goes in the manifest and stats for this source."""
        return {"name": self.name, "kind": self.kind, "path": str(self.path)}


def int_field(values: dict, name: str, path: Path, line: int | None, *, required: bool = True) -> int | None:
    """An integer field of a raw row; missing or non-numeric raises :class:`BadRow`."""
    raw = values.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if not required:
            return None
        raise BadRow(DataError("missing required field", path=str(path), line=line, field=name), "missing_field")
    try:
        return int(raw)
    except (TypeError, ValueError):
        try:
            as_float = float(raw)
        except (TypeError, ValueError):
            as_float = None
        if as_float is not None and as_float.is_integer():
            return int(as_float)
        raise BadRow(
            DataError(f"not an integer: {raw!r}", path=str(path), line=line, field=name), "non_numeric"
        ) from None


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
    """Open ``path`` for binary reading, with a progress bar over bytes for large files."""
    fh = path.open("rb")
    size = path.stat().st_size
    if not progress or size < PROGRESS_MIN_BYTES:
        return fh
    from tqdm.auto import tqdm

    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name, leave=False)
    return _ProgressReader(fh, bar)  # type: ignore[return-value]
