"""Hugging Face datasets adapter: ``hf:NAME[:SPLIT]`` with a column mapping.

``NAME`` is anything ``datasets.load_dataset`` accepts (a Hub id, a local folder of
data files), or a folder written by ``Dataset.save_to_disk`` (loaded with
``datasets.load_from_disk``). ``SPLIT`` defaults to ``train``. One row is one question
whose answers are a list of objects in one column.

The mapping says which column holds each record field (default: the field's own name):
``id``, ``title``, ``body``, ``tags``, ``score``, ``answers`` (the list column), and for
the objects inside the answers list ``answer_id``, ``answer_text``, ``answer_score``,
``answer_accepted``. On the command line: ``--hf-columns id=question_id,answer_text=body``.
Required: ``id``, ``title``, ``answers``, ``answer_id``, ``answer_text``, ``answer_score``;
a missing or empty one is a :class:`~qaembed.errors.DataError` naming the row and field.
Values follow the same rules as ``ranked_qa.json`` (:mod:`qaembed.data.ranked_json`):
ids are text or positive integers below 2^63, scores finite numbers within +-2^63 or
decimal text (``NaN``/``inf`` rejected); an answer whose text is empty after HTML
cleaning is dropped and counted in ``notes`` (``answer_empty_after_cleaning``).
Ids are namespaced with the dataset name (``hf:NAME``'s last path part).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from qaembed.data.adapter import BadRow, SourceAdapter, parse_flag, parse_native_id, parse_score
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.clean import HtmlLimitError, clean_html, normalize_whitespace, parse_tags
from qaembed.errors import ConfigError, DataError, first_problem
from qaembed.records import Answer, Provenance, QARecord

COLUMN_FIELDS = ("id", "title", "body", "tags", "score", "answers",
                 "answer_id", "answer_text", "answer_score", "answer_accepted")
_DEFAULT_COLUMNS = {"answer_id": "id", "answer_text": "text", "answer_score": "score", "answer_accepted": "accepted"}


def parse_column_mapping(text: str | None, fields: tuple[str, ...] = COLUMN_FIELDS,
                         option: str = "hf column mapping") -> dict[str, str]:
    """``"id=qid,answer_text=body"`` -> ``{"id": "qid", "answer_text": "body"}``; a field not in ``fields``
    is a ConfigError naming ``option`` (pair data and chunking use it with their own fields)."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not column:
            raise ConfigError(f"{option}: expected FIELD=COLUMN, got {part!r}")
        if field not in fields:
            raise ConfigError(f"{option}: unknown field {field!r}; allowed: {', '.join(fields)}")
        mapping[field] = column
    return mapping


def _load(name: str, split: str):
    import datasets

    local = Path(name)
    if local.is_dir() and ((local / "state.json").is_file() or (local / "dataset_dict.json").is_file()):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"no split {split!r}; has {', '.join(loaded)}", path=name)
            return loaded[split]
        return loaded
    try:
        return datasets.load_dataset(name, split=split, trust_remote_code=False)  # never run a dataset's script
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        raise DataError(f"cannot load Hugging Face dataset: {exc}", path=name) from exc


class HuggingFaceDataset(SourceAdapter):
    """A Hugging Face dataset, one question per row (see the module docstring)."""

    kind = "hf"

    def __init__(self, name: str, *, split: str = "train", columns: dict[str, str] | None = None,
                 policy: BadRecordPolicy | None = None):
        super().__init__(name, name=f"hf:{name}" + (f":{split}" if split != "train" else ""), policy=policy)
        self.dataset_name, self.split = name, split
        self.namespace = Path(name.rstrip("/")).name or name
        self.columns = {field: field for field in COLUMN_FIELDS} | _DEFAULT_COLUMNS | (columns or {})

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "split": self.split, "columns": self.columns}

    def records(self) -> Iterator[QARecord]:
        dataset = _load(self.dataset_name, self.split)
        required = [self.columns[f] for f in ("id", "title", "answers")]
        missing = [c for c in required if c not in dataset.column_names]
        if missing:
            raise DataError(f"no column(s) {', '.join(missing)}; columns are {dataset.column_names} "
                            "(map them with --hf-columns FIELD=COLUMN)", path=self.dataset_name)
        for row_index, row in enumerate(dataset):
            try:
                try:
                    record, empty_answers = self._record(row_index, row)
                except ValidationError as exc:  # a rule of the record model (see qaembed.records)
                    problem = first_problem(exc)
                    raise BadRow(DataError(f"row {row_index}: {problem.message}", path=self.dataset_name,
                                           field=problem.field or None), "invalid_record") from None
                self.notes["answer_empty_after_cleaning"] += empty_answers
                yield record
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
                answers = row.get(self.columns["answers"])
                if isinstance(answers, dict):  # a `Sequence` of structs: a dict of equally long lists
                    answers = next(iter(answers.values()), [])
                self.notes["answers_of_skipped_questions"] += len(answers) if isinstance(answers, list) else 0

    def _value(self, row: dict, field: str, row_index: int, *, required: bool = True):
        column = self.columns[field]
        value = row.get(column)
        if required and (value is None or value == ""):
            raise BadRow(DataError(f"row {row_index}: missing", path=self.dataset_name, field=column), "missing_field")
        return value

    def _number(self, row: dict, field: str, row_index: int, *, required: bool) -> float:
        value = self._value(row, field, row_index, required=required)
        if value is None:
            return 0.0
        try:
            return parse_score(value)
        except ValueError as exc:
            raise BadRow(DataError(f"row {row_index}: {exc}", path=self.dataset_name, field=self.columns[field]),
                         "non_finite" if "finite" in str(exc) else "non_numeric") from None

    def _flag(self, answer: dict, row_index: int) -> bool:
        try:
            return parse_flag(self._value(answer, "answer_accepted", row_index, required=False))
        except ValueError as exc:
            raise BadRow(DataError(f"row {row_index}: {exc}", path=self.dataset_name,
                                   field=self.columns["answer_accepted"]), "invalid_record") from None

    def _id(self, row: dict, field: str, row_index: int) -> str:
        value = self._value(row, field, row_index)
        try:
            return parse_native_id(value)
        except ValueError as exc:
            raise BadRow(DataError(f"row {row_index}: {exc}", path=self.dataset_name, field=self.columns[field]),
                         "invalid_id") from None

    def _clean(self, value: object, field: str, row_index: int) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise BadRow(DataError(f"row {row_index}: expected text, got {type(value).__name__}",
                                   path=self.dataset_name, field=self.columns[field]), "invalid_record")
        try:
            return clean_html(value)
        except HtmlLimitError as exc:
            raise BadRow(DataError(f"row {row_index}: {exc}", path=self.dataset_name, field=self.columns[field]),
                         "html_limit") from None

    def _record(self, row_index: int, row: dict) -> tuple[QARecord, int]:
        """The record of one row and the number of its answers left out as empty after cleaning."""
        native_id = self._id(row, "id", row_index)
        source = f"hf:{self.dataset_name}"
        answers, empty_answers = [], 0
        raw_answers = self._value(row, "answers", row_index, required=False) or []
        if isinstance(raw_answers, dict):  # a `Sequence` of structs reads as a dict of lists
            raw_answers = [dict(zip(raw_answers, values)) for values in zip(*raw_answers.values())]
        for answer in raw_answers:
            if not isinstance(answer, dict):
                raise BadRow(DataError(f"row {row_index}: an answer is not an object", path=self.dataset_name,
                                       field=self.columns["answers"]), "invalid_record")
            answer_id = self._id(answer, "answer_id", row_index)
            text = self._clean(self._value(answer, "answer_text", row_index), "answer_text", row_index)
            score = self._number(answer, "answer_score", row_index, required=True)
            if not text:  # an image-only answer: real data, counted, not an error
                empty_answers += 1
                continue
            answers.append(Answer(
                id=f"{self.namespace}:{answer_id}", text=text,
                score=score,
                accepted=self._flag(answer, row_index),
                provenance=Provenance(source=source, native_id=answer_id),
            ))
        title = self._value(row, "title", row_index)
        if not isinstance(title, str):
            raise BadRow(DataError(f"row {row_index}: expected text, got {type(title).__name__}",
                                   path=self.dataset_name, field=self.columns["title"]), "invalid_record")
        title = normalize_whitespace(title)
        if not title:
            raise BadRow(DataError(f"row {row_index}: empty title", path=self.dataset_name,
                                   field=self.columns["title"]), "empty_title")
        tags = self._value(row, "tags", row_index, required=False) or []
        if not isinstance(tags, str | list):
            raise BadRow(DataError(f"row {row_index}: expected a list of tags or a '<a><b>' string",
                                   path=self.dataset_name, field=self.columns["tags"]), "invalid_record")
        return QARecord(
            id=f"{self.namespace}:{native_id}", title=title,
            body=self._clean(self._value(row, "body", row_index, required=False), "body", row_index),
            tags=parse_tags(tags) if isinstance(tags, str) else [str(t) for t in tags],
            score=self._number(row, "score", row_index, required=False),
            answers=answers, provenance=Provenance(source=source, native_id=native_id),
        ), empty_answers
