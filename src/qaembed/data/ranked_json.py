"""Adapter for the first seed project's ``ranked_qa.json``: a JSON list of question items.

Each item is ``{"question": {...}, "answers": [{...}, ...]}``. Key names accepted
(the first one present wins):

========================  ==========================================================
record field              keys looked up
========================  ==========================================================
question id (required)    ``id``, ``question_id``, ``qid``
title (required)          ``title``
body                      ``body``, ``text``, ``content`` (HTML is cleaned)
tags                      ``tags`` (a list, or a ``<a><b>`` / ``|a|b|`` string)
score                     ``score``, ``votes``
url / created             ``url``, ``link`` / ``created``, ``creation_date``
answer id (required)      ``id``, ``answer_id``, ``aid``
answer text (required)    ``body``, ``text``, ``content`` (HTML is cleaned)
answer score (required)   ``score``, ``votes``
accepted                  ``is_accepted``, ``accepted``
========================  ==========================================================

A missing required field (or an empty text) is a :class:`~qaembed.errors.DataError`
naming the file, the item index (reported as ``item N``) and the field, e.g.
``ranked_qa.json, field 'answers[2].score': item 7: missing``. Ids are namespaced
with the file's stem (``ranked_qa:123``). The file is read whole (it is a single JSON
document); use JSONL for large data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from qaembed.data.adapter import BadRow, SourceAdapter
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.clean import clean_html, normalize_whitespace, parse_tags
from qaembed.errors import DataError
from qaembed.records import Answer, Provenance, QARecord

QUESTION_ID_KEYS = ("id", "question_id", "qid")
ANSWER_ID_KEYS = ("id", "answer_id", "aid")
TEXT_KEYS = ("body", "text", "content")
SCORE_KEYS = ("score", "votes")
ACCEPTED_KEYS = ("is_accepted", "accepted")


def _iso_time(value: object) -> str | None:
    """ISO 8601 text from an ISO string or a Unix timestamp (the Stack Exchange API's form)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return str(value)


class RankedQaJson(SourceAdapter):
    """A ``ranked_qa.json`` file (see the module docstring for the accepted keys)."""

    kind = "ranked_qa"

    def __init__(self, path: str | Path, *, policy: BadRecordPolicy | None = None):
        super().__init__(path, policy=policy)
        self.namespace = self.path.stem

    def records(self) -> Iterator[QARecord]:
        try:
            items = json.loads(self.path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8: {exc.reason} at byte {exc.start}", path=str(self.path)) from exc
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=str(self.path), line=exc.lineno) from exc
        if not isinstance(items, list):
            raise DataError(f"expected a JSON list of items, got {type(items).__name__}", path=str(self.path))
        seen: set[str] = set()
        for index, item in enumerate(items):
            try:
                record = self._record(index, item)
                if record.id in seen:
                    raise BadRow(self._error(index, "question.id", f"duplicate id {record.id!r}"), "duplicate_id")
                seen.add(record.id)
                yield record
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)

    def _error(self, index: int, field: str, message: str) -> DataError:
        return DataError(f"item {index}: {message}", path=str(self.path), field=field)

    def _get(self, obj: dict, keys: tuple[str, ...], index: int, field: str, *, required: bool = True):
        for key in keys:
            if obj.get(key) is not None:
                return obj[key]
        if required:
            raise BadRow(self._error(index, field, f"missing (looked for {', '.join(keys)})"), "missing_field")
        return None

    def _score(self, obj: dict, index: int, field: str, *, required: bool) -> float:
        raw = self._get(obj, SCORE_KEYS, index, field, required=required)
        if raw is None:
            return 0.0
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise BadRow(self._error(index, field, f"not a number: {raw!r}"), "non_numeric")
        try:
            return float(raw)
        except ValueError:
            raise BadRow(self._error(index, field, f"not a number: {raw!r}"), "non_numeric") from None

    def _text(self, obj: dict, index: int, field: str) -> str:
        text = clean_html(str(self._get(obj, TEXT_KEYS, index, field)))
        if not text:
            raise BadRow(self._error(index, field, "empty text after HTML cleaning"), "empty_body")
        return text

    def _record(self, index: int, item: object) -> QARecord:
        if not isinstance(item, dict) or not isinstance(item.get("question"), dict):
            raise BadRow(self._error(index, "question", "expected an object with a 'question' object"), "missing_field")
        question, answers = item["question"], item.get("answers", [])
        if not isinstance(answers, list):
            raise BadRow(self._error(index, "answers", "expected a list"), "missing_field")
        native_id = str(self._get(question, QUESTION_ID_KEYS, index, "question.id"))
        title = normalize_whitespace(str(self._get(question, ("title",), index, "question.title")))
        if not title:
            raise BadRow(self._error(index, "question.title", "empty title"), "empty_title")
        body_raw = self._get(question, TEXT_KEYS, index, "question.body", required=False)
        tags = question.get("tags") or []
        source = f"ranked_qa:{self.path.name}"
        parsed_answers = []
        for position, answer in enumerate(answers):
            field = f"answers[{position}]"
            if not isinstance(answer, dict):
                raise BadRow(self._error(index, field, "expected an object"), "missing_field")
            answer_id = str(self._get(answer, ANSWER_ID_KEYS, index, f"{field}.id"))
            parsed_answers.append(Answer(
                id=f"{self.namespace}:{answer_id}",
                text=self._text(answer, index, f"{field}.body"),
                score=self._score(answer, index, f"{field}.score", required=True),
                accepted=bool(self._get(answer, ACCEPTED_KEYS, index, f"{field}.accepted", required=False)),
                provenance=Provenance(source=source, native_id=answer_id),
            ))
        return QARecord(
            id=f"{self.namespace}:{native_id}",
            title=title,
            body=clean_html(str(body_raw)) if body_raw is not None else "",
            tags=parse_tags(tags) if isinstance(tags, str) else [str(t) for t in tags],
            score=self._score(question, index, "question.score", required=False),
            answers=parsed_answers,
            provenance=Provenance(
                source=source, native_id=native_id,
                url=question.get("url") or question.get("link"),
                created=_iso_time(question.get("created") or question.get("creation_date")),
            ),
        )
