"""Duplicate-question pair data: sources -> :class:`PairRecord` -> split by cluster -> pair dataset.

A pair is two questions and a label (1 = duplicates, 0 = labelled non-duplicates).
Sources (``qaembed data prepare --format FORMAT``; see ``docs/pairs.md``):

=================  ==========================================================================
format             source
=================  ==========================================================================
``pairs-qqp``      Quora Question Pairs TSV/CSV (``id qid1 qid2 question1 question2 is_duplicate``)
``pairs-csv``      any CSV/TSV with a label, columns named by ``--pair-columns FIELD=COLUMN``
``pairs-jsonl``    one JSON object per line, same column mapping
``pairs-hf``       ``hf:NAME[:SPLIT]`` (Hugging Face datasets), same column mapping
``se-duplicates``  a Stack Exchange site folder: ``PostLinks.xml`` rows with ``LinkTypeId`` 3
                   joined with the questions of ``Posts.xml`` (both streamed)
=================  ==========================================================================

Column mapping fields (:data:`PAIR_FIELDS`): ``id`` (optional: the row number), ``qid1``,
``qid2`` (optional: a question without an id is identified by its text), ``text1``,
``text2`` (the question, e.g. a title), ``body1``, ``body2`` (optional: joined after the
text with a blank line), ``label``. Labels are ``0``/``1`` (also ``"0"``/``"1"``,
``true``/``false``); anything else is ``invalid_label``.

Every text is cleaned once here: HTML (Stack Exchange bodies) by
:func:`~qaembed.data.clean.clean_html`, whitespace normalized, and a leading
"Possible Duplicate: ..." / "This question already has an answer here: ..." block
removed (it names the other question and so leaks the label).

Split rule (default ``split_by="all-pairs"``): questions are grouped into connected components
of all labelled pairs (union-find); a component's split comes from the seeded hash of its
smallest question id (:func:`qaembed.data.prepare.split_key`), so no question is in two splits,
every duplicate cluster (components of the label-1 pairs) stays in one split, and no pair is
dropped (on the QQP 10k file the largest component has 28 questions). With
``split_by="duplicates"`` (``--pair-split-by duplicates``) the unit is the duplicate cluster; a
label-0 pair whose two questions then fall into different splits is dropped and counted
(``dropped_cross_split``): on QQP that drops 2,224 of 6,314 negatives and leaves dev and test
with under 60 negatives each, too few for pair classification, which is why it is not the default. Pairs are held in memory (a QQP-sized file, 400k pairs, takes
a few hundred MB); Stack Exchange ``Posts.xml`` is streamed and only the linked
questions are kept.

Output folder: ``DIR/{train,dev,test}.pairs.jsonl`` (one :class:`PairRecord` per line),
``DIR/stats.json`` and ``DIR/manifest.json`` with ``"kind": "pairs"`` (how later stages
tell pair data from Q&A data: :func:`is_pair_dataset`).

Example
-------
>>> clusters = duplicate_clusters(["a", "b", "c", "d"], [("a", "b"), ("c", "b")])
>>> clusters["a"] == clusters["b"] == clusters["c"] == "a", clusters["d"]
(True, 'd')
>>> strip_duplicate_notice("Possible Duplicate:\\nHow to X?\\n\\nMy real question.")
'My real question.'
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qaembed.data.adapter import BadRow, SourceAdapter, date_field, int_field, parse_native_id
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.clean import HtmlLimitError, clean_html, normalize_whitespace
from qaembed.data.dataset import SPLITS, iter_jsonl_lines, model_from_json_line, not_utf8_error, write_jsonl_lines
from qaembed.data.hf import parse_column_mapping
from qaembed.errors import ConfigError, DataError
from qaembed.jsonfiles import JsonProblem, parse_input_json, read_json, write_json
from qaembed.outputs import writing_alone
from qaembed.records import Author, Provenance, license_for_date

PAIR_FORMATS = ("pairs-qqp", "pairs-csv", "pairs-jsonl", "pairs-hf", "se-duplicates")
SPLIT_BY = ("duplicates", "all-pairs")
SplitBy = Literal["duplicates", "all-pairs"]
PAIR_FIELDS = ("id", "qid1", "qid2", "text1", "text2", "body1", "body2", "label")
QQP_COLUMNS = {"id": "id", "qid1": "qid1", "qid2": "qid2", "text1": "question1", "text2": "question2",
               "label": "is_duplicate"}
DATASET_KIND = "pairs"
STATS_FILE = "stats.json"
MANIFEST_FILE = "manifest.json"
OUTPUT_FILES = tuple(f"{split}.pairs.jsonl" for split in SPLITS) + (STATS_FILE, MANIFEST_FILE)  # manifest last

_NOTICE_HEADER = (r"^\s*(?:possible duplicates?(?: of)?:|this question already has (?:an )?answers? here:|"
                  r"this question already exists:|duplicate of:)")
# the notice up to the first blank line; without a blank line, the header line (and the next line when the
# header line holds nothing else: the linked title is there)
_NOTICE = re.compile(_NOTICE_HEADER + r".*?\n[ \t]*\n", re.IGNORECASE | re.DOTALL)
_NOTICE_SHORT = re.compile(_NOTICE_HEADER + r"(?:[ \t]*\n[^\n]*|[^\n]*)", re.IGNORECASE)


class PairQuestion(BaseModel):
    """One side of a pair: a namespaced question id, its clean text, where it came from."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str = Field(min_length=1)
    provenance: Provenance | None = None


class PairRecord(BaseModel):
    """Two questions and whether they are duplicates (1) or labelled non-duplicates (0)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    question1: PairQuestion
    question2: PairQuestion
    label: Literal[0, 1]
    source: str  # adapter and origin, e.g. "pairs-qqp:dev_10k"


def strip_duplicate_notice(text: str) -> str:
    """``text`` without a leading duplicate notice (up to the first blank line), stripped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    while True:
        stripped = _NOTICE.sub("", text, count=1)
        if stripped == text:
            stripped = _NOTICE_SHORT.sub("", text, count=1)
        if stripped == text:
            return text.strip()
        text = stripped


def pair_dataset_path(dataset_dir: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return Path(dataset_dir) / f"{split}.pairs.jsonl"


def is_pair_dataset(dataset_dir: str | Path) -> bool:
    """True when ``dataset_dir`` holds a manifest that marks it as pair data."""
    manifest = Path(dataset_dir) / MANIFEST_FILE
    if not manifest.is_file():
        return False
    payload = read_json(manifest)
    return isinstance(payload, dict) and payload.get("kind") == DATASET_KIND


def iter_pair_split(dataset_dir: str | Path, split: str) -> Iterator[PairRecord]:
    """Stream the pairs of one split; a bad line is a DataError naming file, line and field."""
    path = pair_dataset_path(dataset_dir, split)
    if not path.is_file():
        raise DataError("no such file (not a prepared pair dataset?)", path=str(path))
    for line_no, line in iter_jsonl_lines(path):
        yield model_from_json_line(PairRecord, line, path, line_no)


def read_pair_split(dataset_dir: str | Path, split: str) -> list[PairRecord]:
    return list(iter_pair_split(dataset_dir, split))


def parse_pair_columns(text: str | None) -> dict[str, str]:
    """``"text1=q1_title,label=duplicate_label"`` -> mapping; an unknown field is a ConfigError."""
    return parse_column_mapping(text, PAIR_FIELDS, "--pair-columns")


def parse_label(raw: object) -> int:
    """0 or 1 from ``0``/``1``, ``"0"``/``"1"``, ``true``/``false``; ``ValueError`` otherwise."""
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int) and raw in (0, 1):
        return raw
    if isinstance(raw, float) and raw in (0.0, 1.0):
        return int(raw)
    if isinstance(raw, str) and raw.strip() in ("0", "1"):
        return int(raw.strip())
    raise ValueError(f"a label must be 0 or 1, got {str(raw)[:60]!r}")


# --------------------------------------------------------------------------- adapters


class PairSource(SourceAdapter):
    """Base of the pair adapters: :meth:`pairs` yields :class:`PairRecord` objects."""

    def pairs(self) -> Iterator[PairRecord]:
        raise NotImplementedError


class MappedPairs(PairSource):
    """Rows with named columns (CSV/TSV, JSONL, Hugging Face) mapped onto the pair fields."""

    def __init__(self, path: str | Path, *, kind: str, columns: dict[str, str] | None, name: str | None = None,
                 policy: BadRecordPolicy | None = None):
        super().__init__(path, name=name, policy=policy)
        self.kind = kind
        base = dict(QQP_COLUMNS) if kind == "pairs-qqp" else {f: f for f in PAIR_FIELDS}
        self.columns = base | (columns or {})
        self.namespace = Path(str(path).rstrip("/")).stem or str(path)
        self.notes: Counter[str] = Counter()

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": self.kind, "columns": self.columns}

    def check_header(self, header: Sequence[str], where: str, line: int | None) -> None:
        required = [self.columns[f] for f in ("text1", "text2", "label")]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)}; columns are {list(header)} "
                            "(map them with --pair-columns FIELD=COLUMN)", path=where, line=line)

    def rows(self) -> Iterator[tuple[int, dict]]:
        """``(line or row number, {column: value})``; header checks raise DataError."""
        raise NotImplementedError

    def pairs(self) -> Iterator[PairRecord]:
        for line, row in self.rows():
            try:
                yield self.pair_from_row(row, line)
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)

    def _bad(self, message: str, line: int, field: str, reason: str) -> BadRow:
        return BadRow(DataError(message, path=str(self.path), line=line, field=self.columns.get(field, field)), reason)

    def _text(self, row: dict, side: str, line: int) -> str:
        column = self.columns[f"text{side}"]
        raw = row.get(column)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise self._bad("missing question text", line, f"text{side}", "missing_field")
        if not isinstance(raw, str):
            raise self._bad(f"expected text, got {type(raw).__name__}", line, f"text{side}", "invalid_record")
        parts = [raw]
        body_column = self.columns.get(f"body{side}")
        if body_column is not None and body_column in row:
            body = row.get(body_column)
            if body is not None and not isinstance(body, str):
                raise self._bad(f"expected text, got {type(body).__name__}", line, f"body{side}", "invalid_record")
            if body:
                parts.append(body)
        try:
            # the notice is stripped from the raw text (plain-text bodies keep their blank lines there) and
            # again after cleaning (in HTML it is a <blockquote> that becomes a paragraph)
            cleaned = [strip_duplicate_notice(clean_html(strip_duplicate_notice(part))) for part in parts]
        except HtmlLimitError as exc:
            raise self._bad(str(exc), line, f"text{side}", "html_limit") from None
        cleaned[0] = normalize_whitespace(cleaned[0])
        text = "\n\n".join(part for part in cleaned if part)
        if not text:
            raise self._bad("question text is empty after cleaning", line, f"text{side}", "empty_text")
        return text

    def _qid(self, row: dict, side: str, line: int, text: str) -> str:
        column = self.columns.get(f"qid{side}")
        raw = row.get(column) if column else None
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if column in row:  # the source has ids: an empty one is an error, not a text identity
                raise self._bad("missing question id", line, f"qid{side}", "missing_field")
            return f"{self.namespace}:text:{text}"  # no ids in this source: a question is its text
        try:
            return f"{self.namespace}:{parse_native_id(raw)}"
        except ValueError as exc:
            raise self._bad(str(exc), line, f"qid{side}", "invalid_id") from None

    def pair_from_row(self, row: dict, line: int) -> PairRecord:
        label_column = self.columns["label"]
        if row.get(label_column) is None or row.get(label_column) == "":
            raise self._bad("missing label", line, "label", "missing_field")
        try:
            label = parse_label(row[label_column])
        except ValueError as exc:
            raise self._bad(str(exc), line, "label", "invalid_label") from None
        text1, text2 = self._text(row, "1", line), self._text(row, "2", line)
        qid1, qid2 = self._qid(row, "1", line, text1), self._qid(row, "2", line, text2)
        if qid1 == qid2:
            raise self._bad(f"both questions are {qid1!r} (a question paired with itself)", line, "qid2", "self_pair")
        id_column = self.columns.get("id")
        raw_id = row.get(id_column) if id_column else None
        try:
            pair_id = parse_native_id(raw_id) if raw_id not in (None, "") else str(line)
        except ValueError as exc:
            raise self._bad(str(exc), line, "id", "invalid_id") from None
        source = f"{self.kind}:{self.namespace}"
        return PairRecord(
            id=f"{self.namespace}:{pair_id}", label=label, source=source,
            question1=PairQuestion(id=qid1, text=text1, provenance=Provenance(source=source,
                                   native_id=qid1.partition(":")[2])),
            question2=PairQuestion(id=qid2, text=text2, provenance=Provenance(source=source,
                                   native_id=qid2.partition(":")[2])),
        )


class DelimitedPairs(MappedPairs):
    """A CSV (``,``) or TSV (``.tsv``: tab) file with a header row, read with strict quoting."""

    def __init__(self, path: str | Path, *, kind: str = "pairs-csv", columns: dict[str, str] | None = None,
                 encoding: str | None = None, policy: BadRecordPolicy | None = None):
        super().__init__(path, kind=kind, columns=columns, policy=policy)
        self.encoding = encoding or "utf-8"
        self.delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        if not self.path.is_file():
            raise DataError("no such file", path=str(self.path))

    def rows(self) -> Iterator[tuple[int, dict]]:
        csv.field_size_limit(sys.maxsize)
        try:
            fh = self.path.open("r", encoding=self.encoding, newline="")
        except OSError as exc:
            raise DataError(f"cannot read the file: {exc.strerror or exc}", path=str(self.path)) from exc
        with fh:
            reader = csv.reader(fh, delimiter=self.delimiter, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError("empty file (no header)", path=str(self.path)) from None
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DataError(f"unreadable header: {exc}", path=str(self.path), line=1) from None
            if header:
                header[0] = header[0].removeprefix("\ufeff")
            self.check_header(header, str(self.path), 1)
            while True:
                line = reader.line_num + 1
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    raise DataError(f"bytes that are not valid {self.encoding} ({exc.reason}); nothing after "
                                    "them can be read (pass the file's encoding with --encoding)",
                                    path=str(self.path), line=line) from None
                except csv.Error as exc:
                    self.policy.reject(DataError(f"broken CSV quoting: {exc}", path=str(self.path), line=line),
                                       "malformed_csv")
                    continue
                if not values:
                    continue
                if len(values) != len(header):
                    self.policy.reject(DataError(f"{len(values)} cells, header has {len(header)}",
                                                 path=str(self.path), line=line), "malformed_csv")
                    continue
                yield line, dict(zip(header, values))


class JsonlPairs(MappedPairs):
    """One JSON object per line (``*.jsonl``), fields named by the column mapping."""

    def __init__(self, path: str | Path, *, columns: dict[str, str] | None = None,
                 policy: BadRecordPolicy | None = None):
        super().__init__(path, kind="pairs-jsonl", columns=columns, policy=policy)
        if not self.path.is_file():
            raise DataError("no such file", path=str(self.path))

    def rows(self) -> Iterator[tuple[int, dict]]:
        header_checked = False
        with self.path.open("rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode("utf-8")
                    if not text.strip():
                        continue
                    row = parse_input_json(text)
                except UnicodeDecodeError as exc:
                    self.policy.reject(not_utf8_error(exc, self.path, line_no), "invalid_encoding")
                    continue
                except JsonProblem as exc:
                    self.policy.reject(DataError(f"invalid JSON: {exc.message}", path=str(self.path), line=line_no),
                                       "invalid_record")
                    continue
                if not isinstance(row, dict):
                    self.policy.reject(DataError(f"expected a JSON object, got {type(row).__name__}",
                                                 path=str(self.path), line=line_no), "invalid_record")
                    continue
                if not header_checked:
                    self.check_header(list(row), str(self.path), line_no)
                    header_checked = True
                yield line_no, row


class HuggingFacePairs(MappedPairs):
    """``hf:NAME[:SPLIT]`` loaded as :mod:`qaembed.data.hf` loads it; rows numbered from 0."""

    def __init__(self, name: str, *, split: str = "train", columns: dict[str, str] | None = None,
                 policy: BadRecordPolicy | None = None):
        super().__init__(name, kind="pairs-hf", columns=columns, name=f"hf:{name}:{split}", policy=policy)
        self.dataset_name, self.split = name, split
        self.namespace = Path(name.rstrip("/")).name or name

    def rows(self) -> Iterator[tuple[int, dict]]:
        from qaembed.data.hf import _load

        dataset = _load(self.dataset_name, self.split)
        self.check_header(dataset.column_names, self.dataset_name, None)
        yield from enumerate(dataset)


class StackExchangeDuplicates(PairSource):
    """Duplicate links (``PostLinks.xml``, ``LinkTypeId`` 3) between questions of ``Posts.xml``.

    Every link is a label-1 pair; the dumps hold no labelled non-duplicates. Links whose
    ends are not both questions of ``Posts.xml`` are counted in ``notes``
    (``links_to_missing_questions``), as are repeated links (``repeated_links``, e.g. the
    same pair linked both ways).
    """

    kind = "se-duplicates"

    def __init__(self, folder: str | Path, *, policy: BadRecordPolicy | None = None, progress: bool = True):
        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        super().__init__(folder, name=folder.name, policy=policy)
        self.site, self.progress = folder.name, progress
        self.links_path, self.posts_path = folder / "PostLinks.xml", folder / "Posts.xml"
        for path in (self.links_path, self.posts_path):
            if not path.is_file():
                raise DataError(f"no {path.name} in this Stack Exchange site folder (se-duplicates needs "
                                "PostLinks.xml and Posts.xml)", path=str(folder))

    def _rows(self, path: Path):
        from qaembed.data.stackexchange import iter_xml_rows

        def bad_line(line: int, message: str, reason: str) -> None:
            self.policy.reject(DataError(message, path=str(path), line=line), reason)

        try:
            yield from iter_xml_rows(path, progress=self.progress, on_bad_line=bad_line)
        except BadRow as bad:
            self.policy.reject(bad.error, bad.reason, count=bad.count)

    def _links(self) -> list[tuple[int, int, int, int]]:
        """``(link id, post id, related post id, line)`` of the duplicate links."""
        links = []
        path = self.links_path
        for row in self._rows(path):
            line = row.sourceline
            try:
                attrib = row.attrib
                if int_field(attrib, "LinkTypeId", path, line, positive=True) != 3:
                    self.notes["other_link_types"] += 1
                    continue
                links.append((int_field(attrib, "Id", path, line, positive=True),
                              int_field(attrib, "PostId", path, line, positive=True),
                              int_field(attrib, "RelatedPostId", path, line, positive=True), line))
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
        return links

    def _questions(self, wanted: set[int]) -> dict[int, PairQuestion]:
        questions: dict[int, PairQuestion] = {}
        path = self.posts_path
        source = f"stackexchange:{self.site}"
        for row in self._rows(path):
            line = row.sourceline
            try:
                attrib = row.attrib
                post_id = int_field(attrib, "Id", path, line, positive=True)
                if post_id not in wanted or int_field(attrib, "PostTypeId", path, line, positive=True) != 1:
                    continue
                title = normalize_whitespace(attrib.get("Title"))
                if not title:
                    raise BadRow(DataError("question title is empty", path=str(path), line=line, field="Title"),
                                 "empty_title")
                try:
                    body = strip_duplicate_notice(clean_html(attrib.get("Body")))
                except HtmlLimitError as exc:
                    raise BadRow(DataError(str(exc), path=str(path), line=line, field="Body"), "html_limit") from None
                created = date_field(attrib, "CreationDate", path, line)
                owner = int_field(attrib, "OwnerUserId", path, line, required=False)
                author = None if owner is None else Author(
                    id=str(owner), name=attrib.get("OwnerDisplayName"), url=f"https://{self.site}/users/{owner}")
                if post_id in questions:
                    raise BadRow(DataError(f"duplicate Id {post_id}", path=str(path), line=line, field="Id"),
                                 "duplicate_id")
                questions[post_id] = PairQuestion(
                    id=f"{self.site}:{post_id}", text=f"{title}\n\n{body}" if body else title,
                    provenance=Provenance(source=source, native_id=str(post_id), site=self.site,
                                          url=f"https://{self.site}/questions/{post_id}", author=author,
                                          created=created, license=license_for_date(created)))
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
        return questions

    def pairs(self) -> Iterator[PairRecord]:
        links = self._links()
        questions = self._questions({post for _, a, b, _ in links for post in (a, b)})
        seen: set[tuple[int, int]] = set()
        for link_id, post_id, related_id, _ in links:
            if post_id not in questions or related_id not in questions:
                self.notes["links_to_missing_questions"] += 1
                continue
            key = (min(post_id, related_id), max(post_id, related_id))
            if key in seen or post_id == related_id:
                self.notes["repeated_links"] += 1
                continue
            seen.add(key)
            yield PairRecord(id=f"{self.site}:link:{link_id}", label=1, source=f"se-duplicates:{self.site}",
                             question1=questions[post_id], question2=questions[related_id])


def open_pair_source(
    spec: str | Path, fmt: str, *, skip_bad: bool = False, columns: dict[str, str] | None = None,
    encoding: str | None = None, progress: bool = True,
) -> PairSource:
    """The pair adapter for one SOURCE under ``--format fmt`` (one of :data:`PAIR_FORMATS`)."""
    policy = BadRecordPolicy(skip=skip_bad)
    if fmt not in PAIR_FORMATS:
        raise ConfigError(f"--format {fmt!r}: not a pair format; allowed: {', '.join(PAIR_FORMATS)}")
    text = str(spec)
    if fmt == "pairs-hf":
        if not text.startswith("hf:") or not text[3:].partition(":")[0]:
            raise DataError("--format pairs-hf expects hf:NAME[:SPLIT]", path=text)
        name, _, split = text[3:].partition(":")
        return HuggingFacePairs(name, split=split or "train", columns=columns, policy=policy)
    path = Path(spec)
    if not path.exists():
        raise DataError("no such file or folder", path=text)
    if fmt == "se-duplicates":
        return StackExchangeDuplicates(path, policy=policy, progress=progress)
    if path.is_dir():
        raise DataError(f"--format {fmt} expects a file, got a folder", path=text)
    if fmt == "pairs-jsonl":
        return JsonlPairs(path, columns=columns, policy=policy)
    return DelimitedPairs(path, kind=fmt, columns=columns, encoding=encoding, policy=policy)


# --------------------------------------------------------------------------- clusters and split


def duplicate_clusters(questions: Iterable[str], duplicates: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Question id -> cluster id (the smallest question id of its connected component of duplicates)."""
    parent: dict[str, str] = {q: q for q in questions}

    def find(q: str) -> str:
        root = q
        while parent[root] != root:
            root = parent[root]
        while parent[q] != root:  # path compression
            parent[q], q = root, parent[q]
        return root

    for a, b in duplicates:
        ra, rb = find(a), find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra  # the smaller id stays the root, so the root is the component's minimum
    return {q: find(q) for q in parent}


class PairStats:
    """Counts of a set of pairs: pairs, positives, negatives, questions, clusters (callers add
    ``duplicate_clusters``, the clusters of 2+ questions, which need the cluster sizes)."""

    def __init__(self) -> None:
        self.pairs = self.positives = 0
        self.questions: set[str] = set()
        self.clusters: set[str] = set()

    def add(self, pair: PairRecord, clusters: dict[str, str]) -> None:
        self.pairs += 1
        self.positives += pair.label
        for q in (pair.question1.id, pair.question2.id):
            self.questions.add(q)
            self.clusters.add(clusters[q])

    def summary(self) -> dict[str, int]:
        return {"pairs": self.pairs, "positives": self.positives, "negatives": self.pairs - self.positives,
                "questions": len(self.questions), "clusters": len(self.clusters)}


def split_pairs(pairs: Sequence[PairRecord], seed: int, fractions: tuple[float, float, float],
                split_by: SplitBy = "all-pairs") -> tuple[dict[str, list[PairRecord]], dict[str, object]]:
    """Pairs by split (cluster-wise, see the module docstring) and the stats of the split.

    ``split_by="duplicates"``: the split unit is a duplicate cluster; ``"all-pairs"``: the unit
    is a connected component of all labelled pairs (duplicates and non-duplicates), so no pair
    crosses splits and none is dropped (a component may hold several duplicate clusters).
    """
    from qaembed.data.prepare import assign_split, split_key

    if split_by not in SPLIT_BY:
        raise ConfigError(f"--pair-split-by {split_by!r}: allowed: {', '.join(SPLIT_BY)}")
    ids = sorted({q.id for p in pairs for q in (p.question1, p.question2)})
    clusters = duplicate_clusters(ids, ((p.question1.id, p.question2.id) for p in pairs if p.label == 1))
    units = clusters if split_by == "duplicates" else duplicate_clusters(
        ids, ((p.question1.id, p.question2.id) for p in pairs))
    unit_split = {u: assign_split(split_key(seed, u), fractions) for u in set(units.values())}
    cluster_split = {c: unit_split[units[c]] for c in set(clusters.values())}  # a cluster lies inside one unit
    by_split: dict[str, list[PairRecord]] = {s: [] for s in SPLITS}
    accumulators = {s: PairStats() for s in SPLITS}
    dropped = 0
    for pair in pairs:
        s1, s2 = cluster_split[clusters[pair.question1.id]], cluster_split[clusters[pair.question2.id]]
        if s1 != s2:  # only a label-0 pair can cross (label-1 pairs share their cluster)
            dropped += 1
            continue
        by_split[s1].append(pair)
        accumulators[s1].add(pair, clusters)
    for s in SPLITS:  # the file order: a seeded shuffle by pair id, independent of input order
        by_split[s].sort(key=lambda p: (split_key(seed, p.id), p.id))
    sizes = Counter(clusters.values())
    stats: dict[str, object] = {"splits": {}, "dropped_cross_split": dropped}
    for s in SPLITS:
        summary = accumulators[s].summary()
        summary["duplicate_clusters"] = sum(1 for c in accumulators[s].clusters if sizes[c] >= 2)
        stats["splits"][s] = summary
    total = PairStats()
    for pair in pairs:
        total.add(pair, clusters)
    stats["total"] = total.summary() | {"duplicate_clusters": sum(1 for n in sizes.values() if n >= 2),
                                        "largest_cluster": max(sizes.values(), default=0)}
    return by_split, stats


# --------------------------------------------------------------------------- prepare


def prepare_pairs(
    sources: Sequence[str | Path], out_dir: str | Path, fmt: str, *, seed: int = 13,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1), split_by: SplitBy = "all-pairs", skip_bad: bool = False,
    columns: dict[str, str] | None = None, encoding: str | None = None, overwrite: bool = False,
    progress: bool = True,
) -> dict[str, object]:
    """Read pair ``sources`` in format ``fmt``, split by cluster, write a pair dataset; returns the stats."""
    from qaembed.data.prepare import check_output_dir
    from qaembed.provenance import git_state, hash_files, library_versions

    if not sources:
        raise ConfigError(f"--format {fmt}: give the SOURCES to read (there is no default pair data)")
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite=overwrite)  # before any folder is made; again under the lock
    with writing_alone(out_dir, "qaembed data prepare", create=True):  # a failed run into a new folder leaves none
        check_output_dir(out_dir, overwrite=overwrite)
        pairs: list[PairRecord] = []
        source_stats: dict[str, dict] = {}
        descriptions = []
        seen_pairs: dict[str, str] = {}
        texts: dict[str, str] = {}
        skipped_total: Counter[str] = Counter()
        for spec in sources:
            adapter = open_pair_source(spec, fmt, skip_bad=skip_bad, columns=columns, encoding=encoding,
                                       progress=progress)
            name = adapter.name
            while name in source_stats:
                name += "#2"
            read = 0
            for pair in adapter.pairs():
                read += 1
                if pair.id in seen_pairs:
                    adapter.policy.reject(DataError(f"duplicate pair id {pair.id!r} (already read from "
                                                    f"{seen_pairs[pair.id]})", path=str(adapter.path), field="id"),
                                          "duplicate_id")
                    continue
                for question in (pair.question1, pair.question2):  # one text per question id (the first seen)
                    known = texts.setdefault(question.id, question.text)
                    if known != question.text:
                        adapter.notes["question_text_differs"] += 1
                        question.text = known
                seen_pairs[pair.id] = name
                pairs.append(pair)
            if read == 0:
                adapter.policy.reject(DataError("source has no pairs", path=str(adapter.path)), "empty_source")
            summary = adapter.policy.summary()
            skipped_total.update(summary["counts"])
            source_stats[name] = {"kind": adapter.kind, "path": str(adapter.path), "pairs": read,
                                  "skipped_bad": summary["counts"], "skipped_examples": summary["examples"],
                                  "notes": dict(sorted(adapter.notes.items()))}
            descriptions.append({**adapter.describe(), "name": name})
        if not pairs:
            raise DataError("no pairs left to write", path=", ".join(map(str, sources)))
        by_split, split_stats = split_pairs(pairs, seed, split, split_by)
        stats = {"kind": DATASET_KIND, "split_by": split_by, "sources": source_stats, **split_stats,
                 "skipped_bad": dict(sorted(skipped_total.items()))}

        staging = Path(tempfile.mkdtemp(prefix=f".prepare-{os.getpid()}-", dir=out_dir))
        try:
            files = {}
            for s in SPLITS:
                path = staging / pair_dataset_path(staging, s).name
                count = write_jsonl_lines(path, (p.model_dump_json(exclude_none=True) for p in by_split[s]))
                files[s] = {"pairs": count, "sha256_16": hash_files([path])}
            write_json(staging / STATS_FILE, stats)
            write_json(staging / MANIFEST_FILE, {
                "kind": DATASET_KIND,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "format": fmt,
                "config": {"seed": seed, "split": list(split), "split_by": split_by, "skip_bad": skip_bad,
                           "columns": columns or {}, "encoding": encoding},
                "split": {"mode": "by-cluster", "split_by": split_by, "seed": seed, "fractions": list(split)},
                "sources": descriptions, "files": files, "skipped_bad": stats["skipped_bad"],
                "dropped_cross_split": stats["dropped_cross_split"],
                "environment": {"git": git_state(), "versions": library_versions()},
            })
            for name in OUTPUT_FILES:
                os.replace(staging / name, out_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return stats


def pair_dataset_stats(dataset_dir: str | Path) -> dict[str, object]:
    """Stats of a prepared pair dataset: split rows recomputed from the files, the rest from ``stats.json``.

    Clusters are recomputed within each split (the split's own duplicate pairs), so
    ``stale`` compares pairs, positives, negatives and questions only.
    """
    dataset_dir = Path(dataset_dir)
    stored = read_json(dataset_dir / STATS_FILE) if (dataset_dir / STATS_FILE).is_file() else {}
    splits = {}
    for s in SPLITS:
        pairs = read_pair_split(dataset_dir, s) if pair_dataset_path(dataset_dir, s).is_file() else []
        ids = sorted({q.id for p in pairs for q in (p.question1, p.question2)})
        clusters = duplicate_clusters(ids, ((p.question1.id, p.question2.id) for p in pairs if p.label == 1))
        accumulator = PairStats()
        for pair in pairs:
            accumulator.add(pair, clusters)
        sizes = Counter(clusters.values())
        splits[s] = accumulator.summary() | {"duplicate_clusters": sum(1 for n in sizes.values() if n >= 2)}
    compared = ("pairs", "positives", "negatives", "questions")
    stale = any(stored.get("splits", {}).get(s, {}).get(k) != splits[s][k] for s in SPLITS for k in compared) \
        if stored.get("splits") else False
    return {"sources": {}, "total": {}, "dropped_cross_split": None, **stored, "splits": splits, "stale": stale}


def pair_stats_table(stats: dict[str, object]):
    """A rich Table: total and one row per split."""
    from rich.table import Table

    keys = ("pairs", "positives", "negatives", "questions", "clusters", "duplicate_clusters")
    table = Table(title="Pair dataset statistics")
    table.add_column("set")
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    if stats.get("total"):
        table.add_row("total (all sources)", *(str(stats["total"].get(k, "-")) for k in keys), end_section=True)
    for s, row in stats["splits"].items():
        table.add_row(s, *(str(row.get(k, "-")) for k in keys))
    return table


def pair_stats_notes(stats: dict[str, object]) -> list[str]:
    lines = []
    if stats.get("dropped_cross_split") is not None:
        lines.append(f"label-0 pairs dropped because their questions fall into different splits: "
                     f"{stats['dropped_cross_split']} (dropped_cross_split)")
    for name, source in (stats.get("sources") or {}).items():
        if source.get("skipped_bad"):
            lines.append(f"{name}: skipped bad records: " + ", ".join(f"{k}={v}" for k, v in source["skipped_bad"].items()))
        if source.get("notes"):
            lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in source["notes"].items()))
    if stats.get("stale"):
        lines.append("warning: stats.json does not match the split files (were they changed after prepare?)")
    return lines
