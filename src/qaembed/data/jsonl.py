"""Canonical JSONL adapter: one ``QARecord`` JSON per line (what ``qaembed data prepare`` writes).

The source is either one ``*.jsonl`` file or a prepared dataset folder (its
``train``/``dev``/``test`` splits are read in that order). Records are taken as they are
(ids are already namespaced); a line that is not a valid record, or a record with an
empty answer text, is a :class:`~qaembed.errors.DataError` naming the file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from qaembed.data.adapter import BadRow, SourceAdapter
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.dataset import SPLITS, record_from_json_line, split_path
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
            self.files = [split_path(self.path, split) for split in SPLITS if split_path(self.path, split).is_file()]
            if not self.files:
                raise DataError("not a prepared dataset folder (no train/dev/test.jsonl)", path=str(self.path))
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise DataError("no such file or folder", path=str(self.path))

    def records(self) -> Iterator[QARecord]:
        for path in self.files:
            with path.open("rb") as fh:
                for line_no, raw in enumerate(fh, start=1):
                    try:
                        line = raw.decode("utf-8")
                        if not line.strip():
                            continue
                        record = record_from_json_line(line, path, line_no)
                        _check_texts(record, path, line_no)
                    except UnicodeDecodeError as exc:
                        self.policy.reject(DataError(f"not UTF-8 ({exc.reason} at byte {exc.start})", path=str(path),
                                                     line=line_no), "invalid_encoding")
                        continue
                    except DataError as error:
                        self.policy.reject(error, "invalid_record")
                        continue
                    except BadRow as bad:
                        self.policy.reject(bad.error, bad.reason)
                        continue
                    yield record
