"""Documents and the Q&A pairs that point into them, from the inputs ``qaembed data chunk`` reads.

* **Projects JSON** (the original project's format)::

      {"projects": [{"project_id": "p1", "readme_content": "# Title ...",
                     "qa_pairs": [{"question": "...", "answer": "...", "context": "..."}]}]}

* **A prepared Q&A dataset** (``qaembed data prepare``; e.g. Stack Exchange): every answer of at
  least ``min_chars`` characters is a document (id = the answer id) and each question whose top
  answer is one of them is a pair pointing into it: the target is the passage of its top answer
  that best matches the question (a passage-retrieval task on real text). The pair's answer is
  empty (the document *is* the answer), so the positive is chosen by the question alone.
* **A folder of documents** (``*.md``, ``*.markdown``, ``*.txt``, read recursively, id = the path
  relative to the folder) **plus a Q&A file** (CSV with a header, or JSONL) whose rows have
  ``question``, ``answer`` and ``document`` (that id); ``--qa-columns`` maps other names.

Every problem is a :class:`~qaembed.errors.DataError` naming the file (and line, and field), or,
with a skipping :class:`~qaembed.data.bad_records.BadRecordPolicy`, a counted skip: an empty
document (``empty_document``), a binary or non-UTF-8 file (``binary_file``, ``invalid_encoding``), a
Q&A row without a question or answer (``missing_field``), a Q&A naming a document that does not
exist or was skipped (``missing_document``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from qaembed.data.bad_records import BadRecordPolicy
from qaembed.errors import DataError
from qaembed.jsonfiles import JsonProblem, parse_input_json

DOCUMENT_SUFFIXES = (".md", ".markdown", ".txt")
QA_FIELDS = ("question", "answer", "document")


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    path: str  # the file it came from (for error messages: file and line)
    line_offset: int = 0  # line of ``path`` where ``text`` starts (0: the first line)
    group_key: str | None = None  # documents with one key are chunked in one group (the answers of a question)


@dataclass(frozen=True)
class QAPair:
    id: str
    question: str
    answer: str
    document_id: str
    context: str | None = None
    where: str = field(default="", compare=False)  # "file:line" of the row
    split: str | None = None  # the prepared dataset's split, where the pair comes from one
    score: float = 1.0  # the document's relevance for the question (a prepared dataset: the top answer's votes)
    # other documents relevant to the question, with their scores (a prepared dataset: its other answers and votes)
    related: tuple[tuple[str, float], ...] = ()


def line_of(text: str, offset: int) -> int:
    """1-based line number of character ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def read_text_file(path: Path, policy: BadRecordPolicy) -> str | None:
    """The UTF-8 text of ``path``; a binary or non-UTF-8 file is rejected naming the line (None when skipped)."""
    try:
        data = path.read_bytes()
    except OSError as exc:  # permissions, a vanished file
        raise DataError(f"cannot be read ({exc.strerror})", path=str(path)) from exc
    if b"\x00" in data[:8192]:
        policy.reject(DataError("is a binary file (NUL bytes), not text", path=str(path)), "binary_file")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        policy.reject(DataError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(path), line=line),
                      "invalid_encoding")
        return None


def read_projects_json(path: Path, policy: BadRecordPolicy) -> tuple[list[Document], list[QAPair]]:
    """Documents (each project's README) and Q&A pairs of the original project's JSON file."""
    from qaembed.jsonfiles import read_json

    payload = read_json(path)
    projects = payload.get("projects") if isinstance(payload, dict) else None
    if not isinstance(projects, list):
        raise DataError('expected {"projects": [...]} at the top level', path=str(path), field="projects")
    documents, pairs, seen = [], [], set()
    for number, project in enumerate(projects):
        where = f"projects[{number}]"
        if not isinstance(project, dict):
            policy.reject(DataError("is not an object", path=str(path), field=where), "invalid_record")
            continue
        project_id = project.get("project_id")
        if not isinstance(project_id, str | int) or isinstance(project_id, bool) or str(project_id).strip() == "":
            policy.reject(DataError("is missing or empty", path=str(path), field=f"{where}.project_id"), "missing_field")
            continue
        project_id = str(project_id)
        if project_id in seen:
            policy.reject(DataError(f"project_id {project_id!r} appears twice", path=str(path), field=f"{where}.project_id"),
                          "duplicate_id")
            continue
        seen.add(project_id)
        readme = project.get("readme_content")
        if not isinstance(readme, str) or not readme.strip():
            policy.reject(DataError("is missing or empty", path=str(path), field=f"{where}.readme_content"), "empty_document")
            readme = None
        else:
            documents.append(Document(id=project_id, text=readme, path=f"{path} ({where}.readme_content)"))
        for qa_number, qa in enumerate(project.get("qa_pairs") or []):
            qa_where = f"{where}.qa_pairs[{qa_number}]"
            pair = _pair(qa, f"{project_id}:{qa_number}", project_id, str(path), qa_where, policy, field_prefix=qa_where)
            if pair is None:
                continue
            if readme is None:
                policy.reject(DataError(f"its project {project_id!r} has no readme_content to retrieve from",
                                        path=str(path), field=qa_where), "missing_document")
                continue
            pairs.append(pair)
    return documents, pairs


def _pair(item, pair_id: str, document_id: str, path: str, where: str, policy: BadRecordPolicy, *,
          field_prefix: str = "", line: int | None = None, columns: dict[str, str] | None = None) -> QAPair | None:
    columns = columns or {name: name for name in QA_FIELDS}
    if not isinstance(item, dict):
        policy.reject(DataError("is not an object", path=path, line=line, field=field_prefix or None), "invalid_record")
        return None
    values = {}
    for name in ("question", "answer"):
        value = item.get(columns[name])
        if not isinstance(value, str) or not value.strip():
            label = f"{field_prefix}.{columns[name]}" if field_prefix else columns[name]
            policy.reject(DataError("is missing or empty", path=path, line=line, field=label), "missing_field")
            return None
        values[name] = value.strip()
    context = item.get("context")
    return QAPair(id=pair_id, question=values["question"], answer=values["answer"], document_id=document_id,
                  context=context if isinstance(context, str) and context.strip() else None, where=where)


def _document_paths(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError("no such folder of documents", path=str(folder))
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES)


def document_folder_ids(folder: Path) -> list[str]:
    """The ids of the documents under ``folder`` (relative paths), without reading them."""
    paths = _document_paths(folder)
    if not paths:
        raise DataError(f"holds no documents ({', '.join(DOCUMENT_SUFFIXES)} files)", path=str(folder))
    return [path.relative_to(folder).as_posix() for path in paths]


def iter_document_folder(folder: Path, policy: BadRecordPolicy) -> Iterator[Document]:
    """Every ``*.md`` / ``*.markdown`` / ``*.txt`` under ``folder`` (sorted), id = relative path, read one at a time."""
    for path in _document_paths(folder):
        text = read_text_file(path, policy)
        if text is None:
            continue
        if not text.strip():
            policy.reject(DataError("is empty", path=str(path)), "empty_document")
            continue
        yield Document(id=path.relative_to(folder).as_posix(), text=text, path=str(path))


def read_document_folder(folder: Path, policy: BadRecordPolicy) -> list[Document]:
    """:func:`iter_document_folder` as a list; a folder without documents raises :class:`DataError`."""
    documents = list(iter_document_folder(folder, policy))
    if not documents and not policy.counts:
        raise DataError(f"holds no documents ({', '.join(DOCUMENT_SUFFIXES)} files)", path=str(folder))
    return documents


def read_qa_file(path: Path, policy: BadRecordPolicy, columns: dict[str, str] | None = None) -> list[QAPair]:
    """Q&A rows of a CSV (header row) or JSONL file, each naming its document by id."""
    columns = {**{name: name for name in QA_FIELDS}, **(columns or {})}
    if not path.is_file():
        raise DataError("no such Q&A file", path=str(path))
    text = read_text_file(path, BadRecordPolicy(skip=False))
    rows: list[tuple[int, object]] = []
    if path.suffix.lower() == ".jsonl":
        for line_no, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 in a string is text
            if not line.strip():
                continue
            try:
                rows.append((line_no, parse_input_json(line)))
            except JsonProblem as exc:
                policy.reject(DataError(f"invalid JSON: {exc.message}", path=str(path), line=line_no), "invalid_record")
    else:
        reader = csv.DictReader(io.StringIO(text, newline="\n"), strict=True)  # rows end at line feeds only
        missing = [columns[name] for name in QA_FIELDS if columns[name] not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"the header lacks column(s) {', '.join(missing)} (map others with --qa-columns)",
                            path=str(path), line=1)
        try:
            for row in reader:
                rows.append((reader.line_num, row))
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", path=str(path), line=reader.line_num) from exc
    pairs = []
    for line_no, item in rows:
        document = item.get(columns["document"]) if isinstance(item, dict) else None
        if isinstance(item, dict) and (not isinstance(document, str) or not document.strip()):
            policy.reject(DataError("is missing or empty", path=str(path), line=line_no, field=columns["document"]), "missing_field")
            continue
        pair = _pair(item, f"qa:{line_no}", (document or "").strip(), str(path), f"{path}:{line_no}", policy,
                     line=line_no, columns=columns)
        if pair is not None:
            pairs.append(pair)
    if not pairs and not policy.counts:
        raise DataError("holds no Q&A rows", path=str(path))
    return pairs


def check_documents_named(pairs: list[QAPair], known: set[str], policy: BadRecordPolicy,
                          skipped: set[str] = frozenset()) -> list[QAPair]:
    """The pairs whose document id is ``known``; the others rejected (``missing_document``) naming file and line."""
    kept = []
    for pair in pairs:
        if pair.document_id in known:
            kept.append(pair)
            continue
        path, _, line = pair.where.rpartition(":")
        if not line.isdigit():  # not "file:line" (e.g. "train.jsonl (question q1)")
            path, line = pair.where, ""
        reason = "was skipped" if pair.document_id in skipped else "does not exist"
        close = ", ".join(sorted(known)[:5])
        policy.reject(DataError(f"names document {pair.document_id!r}, which {reason} (documents: {close}...)",
                                path=path, line=int(line) if line else None), "missing_document")
    return kept


def read_prepared_answers(dataset: Path, min_chars: int = 0) -> tuple[list[Document], list[QAPair]]:
    """Answers of a prepared dataset as documents, and each question → its top answer's passages."""
    from qaembed.data.dataset import SPLITS, iter_split, split_files
    from qaembed.records import question_text

    documents, pairs = [], []
    for split in SPLITS:
        files = split_files(dataset, split)
        if not files:
            continue
        where_split = files[0] if len(files) == 1 else f"{dataset}/parquet/{split}-*.parquet"
        for record in iter_split(dataset, split):
            long_answers = [a for a in record.answers if len(a.text) >= min_chars and a.text.strip()]
            for answer in long_answers:
                documents.append(Document(id=answer.id, text=answer.text, path=f"{where_split} (answer {answer.id})",
                                          group_key=record.id))
            if not record.answers:
                continue
            top = record.top_answer()
            if len(top.text) >= min_chars and top.text.strip():
                # graded by votes: the top answer's passages at its score, the other long answers' at theirs
                related = tuple((a.id, a.score) for a in long_answers if a.id != top.id)
                pairs.append(QAPair(id=record.id, question=question_text(record), answer="", document_id=top.id,
                                    where=f"{where_split} (question {record.id})", split=split, score=top.score,
                                    related=related))
    if not documents:
        raise DataError(f"holds no answers of at least {min_chars} characters", path=str(dataset))
    return documents, pairs
