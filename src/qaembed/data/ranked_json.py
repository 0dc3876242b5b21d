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

Values: ids are non-empty text or positive integers below 2^63; scores are finite
numbers within +-2^63 or decimal text (``"12"``, ``"-1.5"``; not ``"1e3"``, ``"NaN"``,
booleans); ``created`` is ISO 8601 text or a Unix timestamp in years 1970-9999.

A missing or invalid required field (or an empty question title or body-less question)
is a :class:`~qaembed.errors.DataError` naming the file, the item index (reported as
``item N``) and the field, e.g. ``ranked_qa.json, field 'answers[2].score': item 7:
missing``, or with ``--skip-bad`` a counted skip of that item. An answer whose text is
empty after HTML cleaning (an image-only answer) is real data: it is dropped and
counted in ``notes`` (``answer_empty_after_cleaning``), its question kept. The answers
of a skipped item are counted too (``answers_of_skipped_questions``), so every answer of
the input is either written or counted. Ids are
namespaced with the file's stem (``ranked_qa:123``). The file is read whole (it is a
single JSON document); use JSONL for large data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from qaembed.data.adapter import BadRow, SourceAdapter, parse_flag, parse_native_id, parse_score, parse_time
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.clean import HtmlLimitError, clean_html, normalize_whitespace, parse_tags
from qaembed.errors import DataError, first_problem
from qaembed.jsonfiles import JsonProblem, parse_input_json
from qaembed.records import Answer, Provenance, QARecord

QUESTION_ID_KEYS = ("id", "question_id", "qid")
ANSWER_ID_KEYS = ("id", "answer_id", "aid")
TEXT_KEYS = ("body", "text", "content")
SCORE_KEYS = ("score", "votes")
ACCEPTED_KEYS = ("is_accepted", "accepted")


class RankedQaJson(SourceAdapter):
    """A ``ranked_qa.json`` file (see the module docstring for the accepted keys)."""

    kind = "ranked_qa"

    def __init__(self, path: str | Path, *, policy: BadRecordPolicy | None = None):
        super().__init__(path, policy=policy)
        self.namespace = self.path.stem

    def records(self) -> Iterator[QARecord]:
        try:
            items = parse_input_json(self.path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8: {exc.reason} at byte {exc.start}", path=str(self.path)) from exc
        except OSError as exc:
            raise DataError(f"cannot read the file: {exc.strerror or exc}", path=str(self.path)) from exc
        except JsonProblem as exc:
            where = f" (column {exc.column})" if exc.column is not None else ""
            raise DataError(f"invalid JSON: {exc.message}{where}", path=str(self.path), line=exc.line) from exc
        if not isinstance(items, list):
            raise DataError(f"expected a JSON list of items, got {type(items).__name__}", path=str(self.path))
        seen: set[str] = set()
        for index, item in enumerate(items):
            try:
                try:
                    record = self._record(index, item)
                except ValidationError as exc:  # a rule of the record model (see qaembed.records)
                    problem = first_problem(exc)
                    raise BadRow(self._error(index, problem.field or "question", problem.message),
                                 "invalid_record") from None
                if record.id in seen:
                    raise BadRow(self._error(index, "question.id", f"duplicate id {record.id!r}"), "duplicate_id")
                seen.add(record.id)
                yield record
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
                answers = item.get("answers") if isinstance(item, dict) else None
                self.notes["answers_of_skipped_questions"] += len(answers) if isinstance(answers, list) else 0

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
        try:
            return parse_score(raw)
        except ValueError as exc:
            reason = "non_finite" if "finite" in str(exc) else "non_numeric"
            raise BadRow(self._error(index, field, str(exc)), reason) from None

    def _id(self, obj: dict, keys: tuple[str, ...], index: int, field: str) -> str:
        try:
            return parse_native_id(self._get(obj, keys, index, field))
        except ValueError as exc:
            raise BadRow(self._error(index, field, str(exc)), "invalid_id") from None

    def _flag(self, obj: dict, index: int, field: str) -> bool:
        try:
            return parse_flag(self._get(obj, ACCEPTED_KEYS, index, field, required=False))
        except ValueError as exc:
            raise BadRow(self._error(index, field, str(exc)), "invalid_record") from None

    def _clean(self, html: object, index: int, field: str) -> str:
        if not isinstance(html, str):
            raise BadRow(self._error(index, field, f"expected text, got {type(html).__name__}"), "invalid_record")
        try:
            return clean_html(html)
        except HtmlLimitError as exc:
            raise BadRow(self._error(index, field, str(exc)), "html_limit") from None

    def _record(self, index: int, item: object) -> QARecord:
        if not isinstance(item, dict) or not isinstance(item.get("question"), dict):
            raise BadRow(self._error(index, "question", "expected an object with a 'question' object"), "missing_field")
        unknown = sorted(set(item) - {"question", "answers"})
        if unknown:  # e.g. a misspelled "answers": its answers would be lost silently
            raise BadRow(self._error(index, unknown[0], f"unknown key {unknown[0]!r} (an item has 'question' and "
                                     "'answers')"), "invalid_record")
        question, answers = item["question"], item.get("answers", [])
        if not isinstance(answers, list):
            raise BadRow(self._error(index, "answers", "expected a list"), "missing_field")
        native_id = self._id(question, QUESTION_ID_KEYS, index, "question.id")
        title = self._get(question, ("title",), index, "question.title")
        if not isinstance(title, str):
            raise BadRow(self._error(index, "question.title", f"expected text, got {type(title).__name__}"),
                         "invalid_record")
        title = normalize_whitespace(title)
        if not title:
            raise BadRow(self._error(index, "question.title", "empty title"), "empty_title")
        body_raw = self._get(question, TEXT_KEYS, index, "question.body", required=False)
        tags = question.get("tags") or []
        if not isinstance(tags, str) and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise BadRow(self._error(index, "question.tags", "expected a list of text or a '<a><b>' string"),
                         "invalid_record")
        source = f"ranked_qa:{self.path.name}"
        try:
            created = parse_time(question.get("created") or question.get("creation_date"))
        except ValueError as exc:
            raise BadRow(self._error(index, "question.created", str(exc)), "invalid_date") from None
        parsed_answers, empty_answers = [], 0
        for position, answer in enumerate(answers):
            field = f"answers[{position}]"
            if not isinstance(answer, dict):
                raise BadRow(self._error(index, field, "expected an object"), "missing_field")
            answer_id = self._id(answer, ANSWER_ID_KEYS, index, f"{field}.id")
            text = self._clean(self._get(answer, TEXT_KEYS, index, f"{field}.body"), index, f"{field}.body")
            score = self._score(answer, index, f"{field}.score", required=True)
            if not text:  # an image-only answer: real data, counted, not an error
                empty_answers += 1
                continue
            parsed_answers.append(Answer(
                id=f"{self.namespace}:{answer_id}",
                text=text,
                score=score,
                accepted=self._flag(answer, index, f"{field}.accepted"),
                provenance=Provenance(source=source, native_id=answer_id),
            ))
        record = QARecord(
            id=f"{self.namespace}:{native_id}",
            title=title,
            body=self._clean(body_raw, index, "question.body") if body_raw is not None else "",
            tags=parse_tags(tags) if isinstance(tags, str) else [str(t) for t in tags],
            score=self._score(question, index, "question.score", required=False),
            answers=parsed_answers,
            provenance=Provenance(
                source=source, native_id=native_id,
                url=question.get("url") or question.get("link"),
                created=created,
            ),
        )
        self.notes["answer_empty_after_cleaning"] += empty_answers  # only once the whole item is good
        return record
