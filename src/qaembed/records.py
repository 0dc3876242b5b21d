"""The one record type every stage shares: a question with its graded answers.

Every source adapter (Stack Exchange dump, Kaggle CSV pair, ``ranked_qa.json``,
canonical JSONL, Hugging Face datasets) yields :class:`QARecord` objects with clean
text (HTML is removed once, at ingestion). Everything downstream (batching, mining,
evaluation) reads records and never re-parses raw sources.

Validation at the edge: every source's records pass through these models, so the
rules hold whatever the source. Scores are finite numbers within the int64 range
(``|score| <= 2**63``; ``NaN``/``inf``, strings and booleans are rejected, so a score
can never turn into ``null`` or ``Infinity`` downstream); ``provenance.created`` is
an ISO 8601 date or date-time (years 1-9999). See ``docs/input-validation.md``.

Ids are namespaced by their source (``"beer.stackexchange.com:123"``) so records from
several sources can be combined in one dataset without collisions; the source's own id
is kept in ``provenance.native_id``.

Example
-------
>>> r = QARecord(id="s:1", title="Why?", body="Because.", answers=[
...     Answer(id="s:2", text="Yes.", score=3), Answer(id="s:3", text="No.", score=1)])
>>> [a.score for a in r.ranked_answers()]
[3.0, 1.0]
>>> question_text(r, "title")
'Why?'
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# Stack Exchange content licenses by post creation date (https://stackoverflow.com/help/licensing).
_CC_BY_SA_3_FROM = date(2011, 4, 8)
_CC_BY_SA_4_FROM = date(2018, 5, 2)

# A vote score: a real number (JSON number or Python int/float; no strings, no booleans),
# finite and within the int64 range of the dumps' integer scores.
SCORE_LIMIT = 2.0**63


def _number_not_text(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a score must be a number, got {type(value).__name__} {value!r}")
    return value


Score = Annotated[float, Field(allow_inf_nan=False, ge=-SCORE_LIMIT, le=SCORE_LIMIT), BeforeValidator(_number_not_text)]


def parse_iso_time(value: str) -> datetime | date:
    """A date-time or date from ISO 8601 text; anything else raises ``ValueError``.

    >>> parse_iso_time("2010-07-21T15:48:32.403")
    datetime.datetime(2010, 7, 21, 15, 48, 32, 403000)
    >>> parse_iso_time("2010-07-21")
    datetime.date(2010, 7, 21)
    >>> parse_iso_time("2008-08-01T13:57:07Z").tzinfo
    datetime.timezone.utc
    >>> parse_iso_time("1e20")
    Traceback (most recent call last):
    ...
    ValueError: not an ISO 8601 date or date-time: '1e20'
    """
    try:
        if "T" in value or " " in value.strip():
            if value.endswith("Z"):  # UTC designator (Kaggle's dates); Python 3.10 does not read it itself
                value = value[:-1] + "+00:00"
            return datetime.fromisoformat(value)
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO 8601 date or date-time: {value!r}") from None


def utf8_problem(text: str) -> str | None:
    """Why ``text`` cannot be encoded as UTF-8, or ``None`` when it can.

    Python strings may hold lone surrogates (U+D800-U+DFFF) that no encoder, tokenizer or JSON
    writer accepts: a JSON ``"\\ud800"`` escape decodes to one, and so does a byte of a command-line
    argument that is not UTF-8 (Python's ``surrogateescape``). Text from users (queries, texts to
    embed) is checked with this where it enters, so the error names the field instead of failing
    later, deep in a tokenizer.

    >>> utf8_problem("café") is None
    True
    >>> utf8_problem("caf\\udce9 au lait")
    'not valid UTF-8 text: character 4 is a lone surrogate (U+DCE9)'
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not valid UTF-8 text: character {exc.start + 1} is a lone surrogate (U+{ord(text[exc.start]):04X})"
    return None


def license_for_date(created: str | datetime | date | None) -> str | None:
    """The CC BY-SA version that covers Stack Exchange content created on ``created``.

    >>> license_for_date("2010-01-01T00:00:00.000")
    'CC BY-SA 2.5'
    >>> license_for_date("2011-04-08")
    'CC BY-SA 3.0'
    >>> license_for_date("2020-05-01T10:00:00")
    'CC BY-SA 4.0'
    """
    if created is None:
        return None
    if isinstance(created, str):
        created = parse_iso_time(created)
    day = created.date() if isinstance(created, datetime) else created
    if day < _CC_BY_SA_3_FROM:
        return "CC BY-SA 2.5"
    if day < _CC_BY_SA_4_FROM:
        return "CC BY-SA 3.0"
    return "CC BY-SA 4.0"


class Author(BaseModel):
    """Who wrote a post, for attribution (any field may be unknown)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str | None = None
    url: str | None = None


class Provenance(BaseModel):
    """Where a post came from and under which license (for attribution)."""

    model_config = ConfigDict(extra="forbid")

    source: str  # adapter and origin, e.g. "stackexchange:beer.stackexchange.com"
    native_id: str | None = None  # the id inside the source
    site: str | None = None  # e.g. "beer.stackexchange.com"
    url: str | None = None  # e.g. "https://beer.stackexchange.com/questions/1"
    author: Author | None = None
    created: str | None = None  # ISO 8601 creation time
    license: str | None = None  # e.g. "CC BY-SA 4.0"

    @field_validator("created")
    @classmethod
    def _iso_created(cls, value: str | None) -> str | None:
        if value is not None:
            parse_iso_time(value)
        return value


class Answer(BaseModel):
    """One answer: clean text and its vote score."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str
    score: Score
    accepted: bool = False
    provenance: Provenance | None = None


class MinedNegative(BaseModel):
    """A negative found by a mining model: another question's answer (see ``qaembed mine``)."""

    model_config = ConfigDict(extra="forbid")

    id: str  # answer id
    text: str
    question_id: str  # the question that answer belongs to
    similarity: Annotated[float, Field(allow_inf_nan=False)]  # mining model's similarity to this question
    rank: int  # rank among the mining model's candidates (0 = most similar)


class CorpusDocument(BaseModel):
    """A retrieval document no question owns (a prepared dataset's ``corpus.jsonl``): a distractor with gain 0.

    Chunked documents (``qaembed data chunk``) put the passages of documents that no question
    refers to here, so passage retrieval ranks against every chunk of every document.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str
    document_id: str | None = None  # the document a passage was cut from
    start: int | None = None  # its character span there
    end: int | None = None


class QARecord(BaseModel):
    """One question with its answers; the unit of splitting, batching and evaluation."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    body: str = ""
    tags: list[str] = Field(default_factory=list)
    score: Score = 0
    answers: list[Answer] = Field(default_factory=list)
    provenance: Provenance | None = None
    negatives: list[MinedNegative] = Field(default_factory=list)

    def ranked_answers(self) -> list[Answer]:
        """Answers by vote score, highest first; ties broken by accepted flag, then id (stable)."""
        return sorted(self.answers, key=lambda a: (-a.score, not a.accepted, a.id))

    def top_answer(self) -> Answer:
        if not self.answers:
            raise ValueError(f"question {self.id!r} has no answers")
        return self.ranked_answers()[0]

    def all_scores_tied(self) -> bool:
        return len({a.score for a in self.answers}) <= 1


QuestionTextMode = Literal["title", "body", "title_body"]


def question_text(record: QARecord, mode: QuestionTextMode = "title_body") -> str:
    """The text that represents a question as a query.

    ``title_body`` (default) joins title and body with a blank line; ``title`` and
    ``body`` use one part (falling back to nothing else: an empty part gives an error).
    """
    if mode == "title":
        text = record.title
    elif mode == "body":
        text = record.body
    elif mode == "title_body":
        text = f"{record.title}\n\n{record.body}" if record.body else record.title
    else:
        raise ValueError(f"unknown question text mode {mode!r}; allowed: title, body, title_body")
    if not text.strip():
        raise ValueError(f"question {record.id!r} has an empty {mode}")
    return text
