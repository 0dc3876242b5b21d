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
Ids are namespaced with the dataset name (``hf:NAME``'s last path part).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from qaembed.data.adapter import BadRow, SourceAdapter
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.clean import clean_html, normalize_whitespace, parse_tags
from qaembed.errors import ConfigError, DataError
from qaembed.records import Answer, Provenance, QARecord

COLUMN_FIELDS = ("id", "title", "body", "tags", "score", "answers",
                 "answer_id", "answer_text", "answer_score", "answer_accepted")
_DEFAULT_COLUMNS = {"answer_id": "id", "answer_text": "text", "answer_score": "score", "answer_accepted": "accepted"}


def parse_column_mapping(text: str | None) -> dict[str, str]:
    """``"id=qid,answer_text=body"`` -> ``{"id": "qid", "answer_text": "body"}``; unknown fields are a ConfigError."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not column:
            raise ConfigError(f"hf column mapping: expected FIELD=COLUMN, got {part!r}")
        if field not in COLUMN_FIELDS:
            raise ConfigError(f"hf column mapping: unknown field {field!r}; allowed: {', '.join(COLUMN_FIELDS)}")
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
                yield self._record(row_index, row)
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)

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
            return float(value)
        except (TypeError, ValueError):
            raise BadRow(DataError(f"row {row_index}: not a number: {value!r}", path=self.dataset_name,
                                   field=self.columns[field]), "non_numeric") from None

    def _record(self, row_index: int, row: dict) -> QARecord:
        native_id = str(self._value(row, "id", row_index))
        source = f"hf:{self.dataset_name}"
        answers = []
        raw_answers = self._value(row, "answers", row_index, required=False) or []
        if isinstance(raw_answers, dict):  # a `Sequence` of structs reads as a dict of lists
            raw_answers = [dict(zip(raw_answers, values)) for values in zip(*raw_answers.values())]
        for answer in raw_answers:
            answer_id = str(self._value(answer, "answer_id", row_index))
            text = clean_html(str(self._value(answer, "answer_text", row_index)))
            if not text:
                raise BadRow(DataError(f"row {row_index}: empty answer text", path=self.dataset_name,
                                       field=self.columns["answer_text"]), "empty_body")
            answers.append(Answer(
                id=f"{self.namespace}:{answer_id}", text=text,
                score=self._number(answer, "answer_score", row_index, required=True),
                accepted=bool(self._value(answer, "answer_accepted", row_index, required=False)),
                provenance=Provenance(source=source, native_id=answer_id),
            ))
        title = normalize_whitespace(str(self._value(row, "title", row_index)))
        if not title:
            raise BadRow(DataError(f"row {row_index}: empty title", path=self.dataset_name,
                                   field=self.columns["title"]), "empty_title")
        tags = self._value(row, "tags", row_index, required=False) or []
        return QARecord(
            id=f"{self.namespace}:{native_id}", title=title,
            body=clean_html(self._value(row, "body", row_index, required=False) or ""),
            tags=parse_tags(tags) if isinstance(tags, str) else [str(t) for t in tags],
            score=self._number(row, "score", row_index, required=False),
            answers=answers, provenance=Provenance(source=source, native_id=native_id),
        )
