"""Stack Exchange data-dump adapter: a site folder with ``Posts.xml`` (and ``Users.xml``).

``Posts.xml`` is streamed with ``lxml.etree.iterparse`` (each ``<row>`` is cleared and
dropped once read), bodies are cleaned once (:func:`~qaembed.data.clean.clean_html`),
and questions and answers are spilled to an on-disk :class:`~qaembed.data.post_store.PostStore`
and grouped from there, so memory stays flat whatever the dump size and answers may come
before their question. ``Users.xml``, when present, gives authors' display names.

Rows: ``PostTypeId`` 1 = question, 2 = answer; other post types (tag wikis, ...) are
ignored and counted in ``notes`` (``ignored_post_type_N``); answers whose ``ParentId``
is not a question of the dump are counted (``orphan_answers``) and dropped; answers
whose body is empty after HTML cleaning (image-only answers are real data) are counted
(``answer_empty_after_cleaning``) and dropped, their question kept. None of these is an
error. Bad rows (missing ``Id``/``PostTypeId``/``ParentId``/``Score``, a number outside
the integer grammar or range, a ``CreationDate`` that is not ISO 8601, a duplicate ``Id``,
a question without a title or with a body empty after cleaning, HTML beyond the
parser's limits) and malformed or truncated XML raise :class:`~qaembed.errors.DataError`
naming the file, line and field, or with ``--skip-bad`` are counted by reason.

Encoding: a file declared (or defaulting to) UTF-8 is checked line by line while it
streams; a line with bytes that are not UTF-8 is an ``invalid_encoding`` error, or with
``--skip-bad`` that line alone is left out (counted) and parsing goes on. Malformed
XML stops the parser: with ``--skip-bad`` every row read before the break is kept, and
``malformed_xml`` counts the rows that could not be read (the message says how many,
and how many bytes, were left).

Example
-------
>>> source = StackExchangeDump("/data/stackexchange/beer.stackexchange.com")  # doctest: +SKIP
>>> first = next(source.records())  # doctest: +SKIP
>>> first.id, first.provenance.url  # doctest: +SKIP
('beer.stackexchange.com:1', 'https://beer.stackexchange.com/questions/1')
"""

from __future__ import annotations

import io
import re
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from qaembed.data.adapter import BadRow, SerializedRecord, SourceAdapter, date_field, int_field, open_binary
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.clean import HtmlLimitError, clean_html, normalize_whitespace, parse_tags
from qaembed.data.post_store import ANSWER, QUESTION, Orphans, Post, PostStore, grouped_range
from qaembed.data.workers import ordered_map
from qaembed.data.xml_chunks import RowChunks, parse_row_chunk
from qaembed.errors import DataError
from qaembed.records import QARecord, license_for_date


def _question(values: Mapping[str, str | None], common: dict, tags: list[str], path: Path, line: int | None) -> Post:
    """A question row's spilled form (clean text); raises :class:`BadRow` for an empty title or body."""
    accepted = int_field(values, "AcceptedAnswerId", path, line, required=False, positive=True)
    title = values.get("Title")
    if title is None:
        raise BadRow(DataError("question has no title", path=str(path), line=line, field="Title"), "missing_field")
    title = normalize_whitespace(title)
    if not title:
        raise BadRow(DataError("question title is empty", path=str(path), line=line, field="Title"), "empty_title")
    body = _clean_html_field(values.get("Body"), path, line, "Body")
    if not body:
        raise BadRow(DataError("question body is empty after HTML cleaning", path=str(path), line=line,
                               field="Body"), "empty_body")
    return Post(body=body, title=title, tags=tags, accepted_answer_id=accepted, **common)


def _clean_html_field(html: str | None, path: Path, line: int | None, field: str) -> str:
    try:
        return clean_html(html)
    except HtmlLimitError as exc:
        raise BadRow(DataError(str(exc), path=str(path), line=line, field=field), "html_limit") from None


def _provenance(site: str, source: str, native_id: int, url: str, post: Post) -> dict:
    """A post's provenance (as model input): link, author (``owner_name`` is already the Users.xml name when
    known) and the license of its creation date."""
    owner_id, name = post.owner_id, post.owner_name
    author = None if owner_id is None and not name else {
        "id": None if owner_id is None else str(owner_id), "name": name,
        "url": None if owner_id is None else f"https://{site}/users/{owner_id}"}
    return {"source": source, "native_id": str(native_id), "site": site, "url": url, "author": author,
            "created": post.created, "license": post.license}


def build_record(*, site: str, source: str, question_id: int, question: Post, answers: list[tuple[int, Post]],
                 ) -> QARecord:
    """A :class:`QARecord` from a spilled question and its answers (shared by dump-style adapters).

    Built as one nested dict and validated once (18 vs 25 µs for a record with two answers, measured against
    building the nested models one by one).
    """
    accepted = question.accepted_answer_id
    return QARecord.model_validate({
        "id": f"{site}:{question_id}", "title": question.title, "body": question.body, "tags": question.tags,
        "score": question.score,
        "answers": [
            {"id": f"{site}:{answer_id}", "text": answer.body, "score": answer.score, "accepted": answer_id == accepted,
             "provenance": _provenance(site, source, answer_id, f"https://{site}/a/{answer_id}", answer)}
            for answer_id, answer in answers
        ],
        "provenance": _provenance(site, source, question_id, f"https://{site}/questions/{question_id}", question),
    })


def post_payload(
    values: Mapping[str, str | None], kind: int, path: Path, line: int | None, *, tags_of: Callable[[int], list[str]],
) -> tuple[int, int | None, Post | None]:
    """Validate and clean one question or answer row: ``(post_id, parent_id, post)``.

    Dump column names: ``Id``, ``Score``, ``ParentId``, ``Title``, ``Body``, ``OwnerUserId``,
    ``OwnerDisplayName``, ``CreationDate``, ``AcceptedAnswerId``. Raises :class:`BadRow` for a
    missing or malformed number or date, an empty title or question body, or HTML beyond the
    parser's limits. ``post`` is None for an answer whose body is empty after cleaning.
    """
    # A row with several bad fields reports the first in this order (Id, Score, OwnerUserId, CreationDate, ...)
    post_id = int_field(values, "Id", path, line, positive=True)
    score = int_field(values, "Score", path, line)
    owner_id = int_field(values, "OwnerUserId", path, line, required=False)
    created = date_field(values, "CreationDate", path, line)
    common = {"score": score, "owner_id": owner_id, "owner_name": values.get("OwnerDisplayName"), "created": created,
              "license": license_for_date(created)}
    if kind == QUESTION:
        return post_id, None, _question(values, common, tags_of(post_id), path, line)
    parent_id = int_field(values, "ParentId", path, line, positive=True)
    body = _clean_html_field(values.get("Body"), path, line, "Body")
    return post_id, parent_id, Post(body=body, **common) if body else None


def store_post(store: PostStore, post_id: int, kind: int, parent_id: int | None, line: int | None,
               post: Post, path: Path) -> None:
    """Spill one validated post; a duplicate id raises :class:`BadRow`."""
    earlier = store.add_post(post_id, kind, parent_id, line, post)
    if earlier is not None:
        message = f"duplicate Id {post_id} (first seen on line {earlier})"
        raise BadRow(DataError(message, path=str(path), line=line, field="Id"), "duplicate_id")


def spill_post(
    store: PostStore, values: Mapping[str, str | None], kind: int, path: Path, line: int | None,
    *, tags_of: Callable[[int], list[str]], notes: Counter[str],
) -> None:
    """:func:`post_payload` then :func:`store_post`; an answer whose body is empty after cleaning is
    not stored and is counted in ``notes["answer_empty_after_cleaning"]``."""
    post_id, parent_id, post = post_payload(values, kind, path, line, tags_of=tags_of)
    if post is None:
        notes["answer_empty_after_cleaning"] += 1
        return
    store_post(store, post_id, kind, parent_id, line, post, path)


# The Posts.xml attributes a post needs: only these cross to the workers (a real row has twice as many).
POST_FIELDS = ("Id", "PostTypeId", "ParentId", "Score", "Title", "Body", "Tags", "OwnerUserId", "OwnerDisplayName",
               "CreationDate", "AcceptedAnswerId")
# Rows handed to a worker at once: large enough that pickling and scheduling cost little per row.
_BATCH_ROWS = 512
# Below this size a Posts.xml is read in this process: starting workers would cost more than they save.
PARALLEL_MIN_BYTES = 16 << 20


def clean_post_rows(job: tuple[str, list[tuple[int | None, tuple[str | None, ...]]]]) -> list[tuple]:
    """The per-row work of ``Posts.xml`` for one batch ``(path, [(line, values of POST_FIELDS), ...])``; runs in a
    worker process (see :mod:`qaembed.data.workers`). One result per row, in order:
    ``("post", id, kind, parent_id, Post)``, ``("empty_answer",)``, ``("ignored", post_type)`` or
    ``("bad", reason, message, field)`` (plain tuples: they cross the process boundary)."""
    path_text, rows = job
    path = Path(path_text)
    results: list[tuple] = []
    for line, fields in rows:
        values = dict(zip(POST_FIELDS, fields))  # a missing attribute is None, as dict.get gives it
        try:
            int_field(values, "Id", path, line, positive=True)  # every row needs an Id, even of an ignored type
            post_type = int_field(values, "PostTypeId", path, line, positive=True)
            if post_type not in (QUESTION, ANSWER):
                results.append(("ignored", post_type))
                continue
            post_id, parent_id, post = post_payload(values, post_type, path, line,
                                                    tags_of=lambda _: parse_tags(values.get("Tags")))
            if post is None:
                results.append(("empty_answer",))
            else:
                results.append(("post", post_id, post_type, parent_id, post))
        except BadRow as bad:
            results.append(("bad", bad.reason, bad.error.message, bad.error.field))
    return results


USER_FIELDS = ("Id", "DisplayName")


def user_rows(job: tuple[str, list[tuple[int | None, tuple[str | None, ...]]]]) -> list[tuple]:
    """``Users.xml`` rows ``(path, [(line, (Id, DisplayName)), ...])`` as ``("user", id, name)``, ``("nameless",)`` or
    ``("bad", reason, message, field)``, in order (a worker's part of :meth:`StackExchangeDump._load_users`)."""
    path_text, rows = job
    path = Path(path_text)
    results: list[tuple] = []
    for line, (user_id, name) in rows:
        try:
            number = int_field({"Id": user_id}, "Id", path, line)  # the Community user is -1
        except BadRow as bad:
            results.append(("bad", bad.reason, bad.error.message, bad.error.field))
            continue
        results.append(("user", number, name) if name else ("nameless",))
    return results


# Questions whose records a worker builds at once (serialize_question_range).
_RANGE_QUESTIONS = 256


def serialize_question_range(job: tuple[str, int, int | None, str, str]) -> tuple[list[SerializedRecord], int]:
    """The records of the questions with ids in ``[low, high)`` of a finished spill store, with the orphan answers
    counted there: ``([SerializedRecord, ...], orphans)`` for ``(store path, low, high, site, source)``. Runs in a
    worker process (:meth:`StackExchangeDump.serialized_records`)."""
    path, low, high, site, source = job
    orphans = Orphans()
    records = [SerializedRecord.of(build_record(site=site, source=source, question_id=question_id, question=question,
                                                answers=answers))
               for question_id, question, answers in grouped_range(path, low, high, orphans)]
    return records, orphans.count


def records_from_store(store: PostStore, adapter: SourceAdapter, *, site: str, source: str) -> Iterator[QARecord]:
    """Group the store's posts into records; notes the orphan-answer count on ``adapter``."""
    for question_id, question, answers in store.grouped():
        yield build_record(site=site, source=source, question_id=question_id, question=question, answers=answers)
    adapter.notes["orphan_answers"] += store.orphan_answers


_ROW_TAG = re.compile(rb"<row[\s/>]")
_ENCODING_DECLARATION = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_CHUNK = 1 << 20


class _LineFeeder(io.RawIOBase):
    """Passes an XML file to the parser one line per read; with ``check_utf8``, blanks (to a bare
    newline) each line that is not UTF-8.

    One line per read: lxml (6.2 on) drops the events of a whole read when the XML breaks in it, so
    with the 32 KiB reads it asks for, the rows just before a break would be lost; a line at a time,
    every row before the broken line is read (measured: 0.8 µs per row, on a parse of ~100 µs).
    Line numbers stay as they are, so lxml's ``sourceline`` still names the physical line;
    :attr:`bad_lines` lists ``(line, message)`` of the blanked lines. A dump has one row per
    line, so a blanked line costs exactly that row; a line that was part of a larger
    construct leaves XML the parser rejects (reported as malformed XML, with its count).
    Whole chunks are decoded at once (fast); only a chunk that fails is split into lines.
    """

    def __init__(self, fh: BinaryIO, *, check_utf8: bool):
        self._fh, self._check_utf8 = fh, check_utf8
        self._pending, self._offset, self._carry = b"", 0, b""
        self._lines_before = 0  # physical lines in the chunks already passed on
        self.bad_lines: list[tuple[int, str]] = []
        self.blanked_rows = 0  # <row tags on the blanked lines

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if self._offset >= len(self._pending):
            self._pending, self._offset = self._checked(self._whole_lines()), 0
        end = len(self._pending) if size is None or size < 0 else self._offset + size
        newline = self._pending.find(b"\n", self._offset, end)
        data = self._pending[self._offset: end if newline < 0 else newline + 1]
        self._offset += len(data)
        return data

    def _whole_lines(self) -> bytes:
        """The next ~1 MiB of the file, extended to the end of its last line (so a character is never
        split); the bytes after that line wait for the next call. Empty at the end of the file."""
        parts = [self._carry]
        while True:
            more = self._fh.read(_CHUNK)
            if not more:
                self._carry = b""
                return b"".join(parts)
            end = more.rfind(b"\n")
            if end >= 0:
                parts.append(more[: end + 1])
                self._carry = more[end + 1:]
                return b"".join(parts)
            parts.append(more)  # a line longer than a chunk: keep reading

    def _checked(self, chunk: bytes) -> bytes:
        if not self._check_utf8:
            return chunk
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            lines = chunk.split(b"\n")
            for index, raw in enumerate(lines):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self.bad_lines.append((self._lines_before + index + 1,
                                           f"bytes that are not valid UTF-8 ({exc.reason} at column {exc.start + 1})"))
                    self.blanked_rows += len(_ROW_TAG.findall(raw))
                    lines[index] = b""
            chunk = b"\n".join(lines)
        self._lines_before += chunk.count(b"\n")
        return chunk

    def close(self) -> None:
        self._fh.close()
        super().close()


def _declares_utf8(path: Path) -> bool:
    """True when the XML declaration names UTF-8 or no encoding (XML's default), without a UTF-16 BOM."""
    with path.open("rb") as fh:
        head = fh.read(256)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    match = _ENCODING_DECLARATION.match(head)
    return match is None or match.group(1).lower() in (b"utf-8", b"utf8")


def _unread_part(path: Path, rows_read: int, line: int | None) -> tuple[int, int, int]:
    """(rows of the file not read, rows in the file, bytes from ``line`` to the end) after a parse error."""
    total_rows, newlines, offset, carry = 0, 0, None, b""
    target = (line or 1) - 1  # newlines before the error line
    with path.open("rb") as fh:
        position = 0
        while chunk := fh.read(_CHUNK):
            buffer = carry + chunk
            total_rows += len(_ROW_TAG.findall(buffer))
            carry = buffer[-4:]  # a match is 5 bytes: one across the boundary is found next time
            if offset is None:
                count = chunk.count(b"\n")
                if newlines + count >= target:
                    index = -1
                    for _ in range(target - newlines):
                        index = chunk.index(b"\n", index + 1)
                    offset = position + index + 1
                newlines += count
            position += len(chunk)
    size = position
    return max(0, total_rows - rows_read), total_rows, size - (offset if offset is not None else size)


def iter_xml_rows(path: Path, *, progress: bool, on_bad_line: Callable[[int, str, str], None] | None = None,
                  ) -> Iterator[etree._Element]:
    """Stream the ``<row>`` elements of a dump file; each is cleared after the consumer's turn.

    With ``on_bad_line``, damage that the XML parser lets pass is reported as
    ``on_bad_line(line, message, reason)`` in file order, before the rows that follow it:
    in a UTF-8 file, a line that is not UTF-8 is left out (``invalid_encoding``; without the
    check lxml stops at the first bad byte); text or an element other than ``<row>`` between
    the rows (what a damaged row turns into, e.g. ``<rox .../>`` or ``row Id=...`` without its
    ``<``) is ``malformed_xml``. Malformed or truncated XML raises :class:`BadRow` (reason
    ``malformed_xml``) with the line lxml reports; its ``count`` is the number of the file's
    rows that were not read.
    """
    rows_read = 0
    pending: list[tuple[int, str, str]] = []  # stray content found, reported in line order with bad lines

    def report(before: int | None) -> None:
        if on_bad_line is None:
            return
        pending.extend((line, message, "invalid_encoding") for line, message in feeder.bad_lines)
        feeder.bad_lines.clear()
        pending.sort(key=lambda item: item[0])
        while pending and (before is None or pending[0][0] < before):
            on_bad_line(*pending.pop(0))

    def stray_text(text: str | None, line: int | None) -> None:
        if text and text.strip():
            snippet = " ".join(text.split())[:60]
            line = (line or 1) + text[: len(text) - len(text.lstrip())].count("\n")  # where the text starts
            pending.append((line, f"text outside any <row> (a damaged row?): {snippet!r}", "malformed_xml"))

    with open_binary(path, progress=progress) as fh:
        feeder = _LineFeeder(fh, check_utf8=on_bad_line is not None and _declares_utf8(path))
        root_text_checked = False
        try:
            for _, element in etree.iterparse(feeder, events=("end",), huge_tree=True):
                parent = element.getparent()
                if parent is None:  # the root element closed: the text left between its last children
                    if not root_text_checked:
                        stray_text(element.text, element.sourceline)
                    for child in element:
                        stray_text(child.tail, child.sourceline)
                    continue
                top_level = parent.getparent() is None
                if element.tag != "row":
                    if top_level:
                        pending.append((element.sourceline or 1, f"an element <{element.tag}> where a <row> was "
                                        "expected (a damaged row?)", "malformed_xml"))
                    continue
                rows_read += 1
                report(element.sourceline)
                yield element
                element.clear(keep_tail=True)
                if top_level:
                    if not root_text_checked:
                        stray_text(parent.text, parent.sourceline)
                        root_text_checked = True
                    while element.getprevious() is not None:
                        stray_text(parent[0].tail, parent[0].sourceline)
                        del parent[0]
            report(None)
        except etree.XMLSyntaxError as exc:
            report(exc.lineno or None)
            line = exc.lineno if exc.lineno else None
            unread, total, unread_bytes = _unread_part(path, rows_read, line)
            unread = max(0, unread - feeder.blanked_rows)
            if unread:
                lost = (f"reading stopped there: {unread} of the file's {total} rows were not read "
                        f"({unread_bytes} bytes from this line to the end)")
            else:
                lost = f"reading stopped there, after the last of the file's {total} rows (none lost)"
            message = f"malformed or truncated XML: {exc.msg}; {lost}"
            raise BadRow(DataError(message, path=str(path), line=line), "malformed_xml", count=unread) from exc


class StackExchangeDump(SourceAdapter):
    """A Stack Exchange site folder (``Posts.xml``, optional ``Users.xml``); see the module docstring."""

    kind = "stackexchange"

    def __init__(
        self, folder: str | Path, *, site: str | None = None, policy: BadRecordPolicy | None = None,
        spill_dir: str | Path | None = None, progress: bool = True, workers: int = 1,
    ):
        folder = Path(folder)
        super().__init__(folder, name=site or folder.name, policy=policy)
        self.site = site or folder.name
        self.posts_path = folder / "Posts.xml"
        self.users_path = folder / "Users.xml"
        self.spill_dir, self.progress, self.workers = spill_dir, progress, workers
        if not self.posts_path.is_file():
            raise DataError("no Posts.xml in this Stack Exchange site folder", path=str(folder))
        if progress and "." not in self.site:  # the records' links and ids are built from it
            print(f"warning: {folder}: the site name {self.site!r} (the folder's name) is not a host name such as "
                  f"{self.site}.stackexchange.com: links will read https://{self.site}/questions/...; name the "
                  "folder after the site's host", file=sys.stderr)

    def records(self) -> Iterator[QARecord]:
        with PostStore(self.spill_dir) as store:
            self._load(store)
            yield from records_from_store(store, self, site=self.site, source=self.source)

    def serialized_records(self) -> Iterator[SerializedRecord]:
        """:meth:`records` as ingestion reads them; with workers and a large ``Posts.xml``, each worker groups the
        questions of a range of ids and builds their records from the spill store (read-only), and this process
        only passes them on, in question-id order (the same records as :meth:`records`, test)."""
        if self._workers_for(self.posts_path) <= 1:
            yield from super().serialized_records()
            return
        with PostStore(self.spill_dir) as store:
            self._load(store)
            store.finish()
            jobs = ((str(store.path), low, high, self.site, self.source)
                    for low, high in store.question_ranges(_RANGE_QUESTIONS))
            with closing(ordered_map(serialize_question_range, jobs, workers=self.workers)) as built:
                for records, orphans in built:
                    self.notes["orphan_answers"] += orphans
                    yield from records

    @property
    def source(self) -> str:
        return f"stackexchange:{self.site}"

    def _workers_for(self, path: Path) -> int:
        return self.workers if path.stat().st_size >= PARALLEL_MIN_BYTES else 1

    def _load(self, store: PostStore) -> None:
        if self.users_path.is_file():
            self._load_users(store)
        self._load_posts(store)

    def _rows(self, path: Path) -> Iterator[etree._Element]:
        def bad_line(line: int, message: str, reason: str) -> None:
            self.policy.reject(DataError(message, path=str(path), line=line), reason)

        try:
            yield from iter_xml_rows(path, progress=self.progress, on_bad_line=bad_line)
        except BadRow as bad:  # skipping keeps what parsed before the error and counts what was not read
            self.policy.reject(bad.error, bad.reason, count=bad.count)

    def _load_users(self, store: PostStore) -> None:
        """Authors' names: pieces of whole rows parsed in workers (as ``Posts.xml``), from a damaged piece on the
        sequential reader; results stored here, in file order."""
        path = self.users_path
        sequential_from = self._read_pieces(path, user_rows, USER_FIELDS,
                                            lambda result, line: self._store_user(store, result, path, line))
        if sequential_from is None:
            return
        for row in self._rows(path):
            line = row.sourceline
            if line is None or line >= sequential_from:
                self._store_user(store, user_rows((str(path), [(line, tuple(map(row.get, USER_FIELDS)))]))[0],
                                 path, line)

    def _read_pieces(self, path: Path, rows_fn: Callable, fields: tuple[str, ...],
                     store: Callable[[tuple, int], None]) -> int | None:
        """``store(result, line)`` for each row of the plain pieces of ``path`` (parsed in workers, in file order); the
        line from which the sequential reader must take over (a damaged piece, or a head that is not plain), or
        None when the pieces were the whole file."""
        chunks = RowChunks(path, rows_fn, fields, progress=self.progress)
        with closing(ordered_map(parse_row_chunk, chunks.jobs(), workers=self._workers_for(path))) as pieces:
            for first_line, lines, results in pieces:
                if results is None:
                    return first_line
                for line, result in zip(lines, results):
                    store(result, line)
        return chunks.sequential_from

    def _store_user(self, store: PostStore, result: tuple, path: Path, line: int | None) -> None:
        if result[0] == "user":
            store.add_user(result[1], result[2])
        elif result[0] == "bad":
            _, reason, message, field = result
            self.policy.reject(DataError(message, path=str(path), line=line, field=field), reason)

    def _load_posts(self, store: PostStore) -> None:
        """Pieces of whole rows are parsed, cleaned and validated in worker processes
        (:mod:`qaembed.data.xml_chunks`); from a piece that is not plainly well formed on, the file is
        streamed here and only the rows cleaned in workers (:func:`clean_post_rows`). Results are
        stored and bad rows and bad lines reported here, in file order, exactly as a sequential run
        does them."""
        path = self.posts_path
        workers = self._workers_for(path)
        sequential_from = self._read_pieces(path, clean_post_rows, POST_FIELDS,
                                            lambda result, line: self._store_result(store, result, path, line))
        if sequential_from is None:
            return
        batches = _PostBatches(path, progress=self.progress, from_line=sequential_from)
        with closing(ordered_map(clean_post_rows, batches.jobs(), workers=workers)) as cleaned:
            for results in cleaned:
                rows = iter(results)
                for event in batches.events.popleft():
                    if event[0] == "row":
                        self._store_result(store, next(rows), path, event[1])
                    elif event[0] == "line":
                        _, line, message, reason = event
                        self.policy.reject(DataError(message, path=str(path), line=line), reason)
                    else:  # the parser stopped: what it could not read is counted
                        bad = event[1]
                        self.policy.reject(bad.error, bad.reason, count=bad.count)

    def _store_result(self, store: PostStore, result: tuple, path: Path, line: int | None) -> None:
        kind = result[0]
        if kind == "post":
            _, post_id, post_type, parent_id, post = result
            try:
                store_post(store, post_id, post_type, parent_id, line, post, path)
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
        elif kind == "empty_answer":
            self.notes["answer_empty_after_cleaning"] += 1
        elif kind == "ignored":
            self.notes[f"ignored_post_type_{result[1]}"] += 1
        else:
            _, reason, message, field = result
            self.policy.reject(DataError(message, path=str(path), line=line, field=field), reason)


class _PostBatches:
    """``Posts.xml`` rows in batches for :func:`clean_post_rows`, with the parser's own events.

    :meth:`jobs` yields ``(path, [(line, values of POST_FIELDS), ...])``; for each job it first appends
    to :attr:`events` the batch's events in file order: ``("row", line)`` per row,
    ``("line", line, message, reason)`` for a bad line the parser reported between rows, and
    ``("stop", BadRow)`` when the XML breaks (in the last batch, which may hold no rows). Rows on
    lines before ``from_line`` are parsed but left out (the pieces before it were read in workers).
    """

    def __init__(self, path: Path, *, progress: bool, from_line: int = 1):
        self.path, self.progress, self.from_line = path, progress, from_line
        self.events: deque[list[tuple]] = deque()

    def jobs(self) -> Iterator[tuple[str, list[tuple[int | None, tuple[str | None, ...]]]]]:
        rows: list[tuple[int | None, tuple[str | None, ...]]] = []
        events: list[tuple] = []

        def bad_line(line: int, message: str, reason: str) -> None:
            events.append(("line", line, message, reason))

        try:
            for row in iter_xml_rows(self.path, progress=self.progress, on_bad_line=bad_line):
                line = row.sourceline
                if line is not None and line < self.from_line:
                    continue
                rows.append((line, tuple(map(row.get, POST_FIELDS))))
                events.append(("row", line))
                if len(rows) >= _BATCH_ROWS:
                    self.events.append(events)
                    yield str(self.path), rows
                    rows, events = [], []
        except BadRow as bad:
            events.append(("stop", bad))
        self.events.append(events)
        yield str(self.path), rows
