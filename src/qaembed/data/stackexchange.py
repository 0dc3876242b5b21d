"""Stack Exchange data-dump adapter: a site folder with ``Posts.xml`` (and ``Users.xml``).

``Posts.xml`` is streamed with ``lxml.etree.iterparse`` (each ``<row>`` is cleared and
dropped once read), bodies are cleaned once (:func:`~qaembed.data.clean.clean_html`),
and questions and answers are spilled to an on-disk :class:`~qaembed.data.post_store.PostStore`
and grouped from there, so memory stays flat whatever the dump size and answers may come
before their question. ``Users.xml``, when present, gives authors' display names.

Rows: ``PostTypeId`` 1 = question, 2 = answer; other post types (tag wikis, ...) are
ignored and counted in ``notes`` (``ignored_post_type_N``); answers whose ``ParentId``
is not a question of the dump are counted (``orphan_answers``) and dropped. Neither is
an error. Bad rows (missing ``Id``/``PostTypeId``/``ParentId``/``Score``, a non-numeric
number, a duplicate ``Id``, a question without a title, a body empty after cleaning) and
malformed or truncated XML raise :class:`~qaembed.errors.DataError` naming the file,
line and field, or with ``--skip-bad`` are counted by reason. Truncated XML with
``--skip-bad`` keeps every row read before the error and counts one ``malformed_xml``.

Example
-------
>>> source = StackExchangeDump("/data/stackexchange/beer.stackexchange.com")  # doctest: +SKIP
>>> first = next(source.records())  # doctest: +SKIP
>>> first.id, first.provenance.url  # doctest: +SKIP
('beer.stackexchange.com:1', 'https://beer.stackexchange.com/questions/1')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from lxml import etree

from qaembed.data.adapter import BadRow, SourceAdapter, int_field, open_binary
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.clean import clean_html, normalize_whitespace, parse_tags
from qaembed.data.post_store import ANSWER, QUESTION, PostStore
from qaembed.errors import DataError
from qaembed.records import Answer, Author, Provenance, QARecord, license_for_date


def _question_payload(
    *, title: str | None, body_html: str | None, tags: list[str], score: int, accepted_answer_id: int | None,
    owner_id: int | None, owner_name: str | None, created: str | None, path: Path, line: int | None,
) -> dict:
    """The spilled form of a question row (clean text); raises :class:`BadRow` for an empty title/body."""
    if title is None:
        raise BadRow(DataError("question has no title", path=str(path), line=line, field="Title"), "missing_field")
    title = normalize_whitespace(title)
    if not title:
        raise BadRow(DataError("question title is empty", path=str(path), line=line, field="Title"), "empty_title")
    return {
        "title": title, "body": _clean_body(body_html, path, line), "tags": tags, "score": score,
        "accepted_answer_id": accepted_answer_id, "owner_id": owner_id, "owner_name": owner_name, "created": created,
    }


def _answer_payload(
    *, body_html: str | None, score: int, owner_id: int | None, owner_name: str | None, created: str | None,
    path: Path, line: int | None,
) -> dict:
    """The spilled form of an answer row (clean text); raises :class:`BadRow` for an empty body."""
    return {
        "body": _clean_body(body_html, path, line), "score": score,
        "owner_id": owner_id, "owner_name": owner_name, "created": created,
    }


def _clean_body(body_html: str | None, path: Path, line: int | None) -> str:
    body = clean_html(body_html)
    if not body:
        raise BadRow(DataError("body is empty after HTML cleaning", path=str(path), line=line, field="Body"), "empty_body")
    return body


def _author(site: str, owner_id: int | None, owner_name: str | None, user_name: Callable[[int | None], str | None]):
    if owner_id is None and not owner_name:
        return None
    return Author(
        id=None if owner_id is None else str(owner_id),
        name=user_name(owner_id) or owner_name,
        url=None if owner_id is None else f"https://{site}/users/{owner_id}",
    )


def build_record(
    *, site: str, source: str, question_id: int, question: dict, answers: list[tuple[int, dict]],
    user_name: Callable[[int | None], str | None],
) -> QARecord:
    """A :class:`QARecord` from a spilled question and its answers (shared by dump-style adapters)."""
    accepted = question.get("accepted_answer_id")
    return QARecord(
        id=f"{site}:{question_id}",
        title=question["title"],
        body=question["body"],
        tags=question["tags"],
        score=question["score"],
        answers=[
            Answer(
                id=f"{site}:{answer_id}",
                text=answer["body"],
                score=answer["score"],
                accepted=answer_id == accepted,
                provenance=Provenance(
                    source=source, native_id=str(answer_id), site=site, url=f"https://{site}/a/{answer_id}",
                    author=_author(site, answer.get("owner_id"), answer.get("owner_name"), user_name),
                    created=answer.get("created"), license=license_for_date(answer.get("created")),
                ),
            )
            for answer_id, answer in answers
        ],
        provenance=Provenance(
            source=source, native_id=str(question_id), site=site, url=f"https://{site}/questions/{question_id}",
            author=_author(site, question.get("owner_id"), question.get("owner_name"), user_name),
            created=question.get("created"), license=license_for_date(question.get("created")),
        ),
    )


def spill_post(
    store: PostStore, values: Mapping[str, str | None], kind: int, path: Path, line: int | None,
    *, tags_of: Callable[[int], list[str]],
) -> None:
    """Validate one question or answer row (dump column names: ``Id``, ``Score``, ``ParentId``, ``Title``,
    ``Body``, ``OwnerUserId``, ``OwnerDisplayName``, ``CreationDate``, ``AcceptedAnswerId``) and spill it.

    Raises :class:`BadRow` for a missing or non-numeric number, an empty title/body or a duplicate id.
    """
    post_id = int_field(values, "Id", path, line)
    score = int_field(values, "Score", path, line)
    common = {"owner_id": int_field(values, "OwnerUserId", path, line, required=False),
              "owner_name": values.get("OwnerDisplayName"), "created": values.get("CreationDate"),
              "path": path, "line": line}
    if kind == QUESTION:
        parent_id = None
        data = _question_payload(
            title=values.get("Title"), body_html=values.get("Body"), tags=tags_of(post_id), score=score,
            accepted_answer_id=int_field(values, "AcceptedAnswerId", path, line, required=False), **common,
        )
    else:
        parent_id = int_field(values, "ParentId", path, line)
        data = _answer_payload(body_html=values.get("Body"), score=score, **common)
    earlier = store.add_post(post_id, kind, parent_id, line, data)
    if earlier is not None:
        message = f"duplicate Id {post_id} (first seen on line {earlier})"
        raise BadRow(DataError(message, path=str(path), line=line, field="Id"), "duplicate_id")


def records_from_store(store: PostStore, adapter: SourceAdapter, *, site: str, source: str) -> Iterator[QARecord]:
    """Group the store's posts into records; notes the orphan-answer count on ``adapter``."""
    for question_id, question, answers in store.grouped():
        yield build_record(
            site=site, source=source, question_id=question_id, question=question, answers=answers,
            user_name=store.user_name,
        )
    adapter.notes["orphan_answers"] += store.orphan_answers


def iter_xml_rows(path: Path, *, progress: bool) -> Iterator[etree._Element]:
    """Stream the ``<row>`` elements of a dump file; each is cleared after the consumer's turn.

    Malformed or truncated XML raises :class:`BadRow` (reason ``malformed_xml``) with the
    line lxml reports.
    """
    with open_binary(path, progress=progress) as fh:
        try:
            for _, element in etree.iterparse(fh, events=("end",), tag="row", huge_tree=True):
                yield element
                element.clear(keep_tail=True)
                parent = element.getparent()
                while element.getprevious() is not None:
                    del parent[0]
        except etree.XMLSyntaxError as exc:
            line = exc.lineno if exc.lineno else None
            message = f"malformed or truncated XML: {exc.msg}"
            raise BadRow(DataError(message, path=str(path), line=line), "malformed_xml") from exc


class StackExchangeDump(SourceAdapter):
    """A Stack Exchange site folder (``Posts.xml``, optional ``Users.xml``); see the module docstring."""

    kind = "stackexchange"

    def __init__(
        self, folder: str | Path, *, site: str | None = None, policy: BadRecordPolicy | None = None,
        spill_dir: str | Path | None = None, progress: bool = True,
    ):
        folder = Path(folder)
        super().__init__(folder, name=site or folder.name, policy=policy)
        self.site = site or folder.name
        self.posts_path = folder / "Posts.xml"
        self.users_path = folder / "Users.xml"
        self.spill_dir, self.progress = spill_dir, progress
        if not self.posts_path.is_file():
            raise DataError("no Posts.xml in this Stack Exchange site folder", path=str(folder))

    def records(self) -> Iterator[QARecord]:
        with PostStore(self.spill_dir) as store:
            if self.users_path.is_file():
                self._load_users(store)
            self._load_posts(store)
            yield from records_from_store(store, self, site=self.site, source=f"stackexchange:{self.site}")

    def _rows(self, path: Path) -> Iterator[etree._Element]:
        try:
            yield from iter_xml_rows(path, progress=self.progress)
        except BadRow as bad:
            self.policy.reject(bad.error, bad.reason)  # skipping keeps what parsed before the error

    def _load_users(self, store: PostStore) -> None:
        for row in self._rows(self.users_path):
            try:
                user_id = int_field(row.attrib, "Id", self.users_path, row.sourceline)
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
                continue
            name = row.get("DisplayName")
            if name:
                store.add_user(user_id, name)

    def _load_posts(self, store: PostStore) -> None:
        path = self.posts_path
        for row in self._rows(path):
            line = row.sourceline
            try:
                attrib = row.attrib
                int_field(attrib, "Id", path, line)  # every row needs an Id, even one of an ignored type
                post_type = int_field(attrib, "PostTypeId", path, line)
                if post_type not in (QUESTION, ANSWER):
                    self.notes[f"ignored_post_type_{post_type}"] += 1
                    continue
                spill_post(store, attrib, post_type, path, line, tags_of=lambda _: parse_tags(attrib.get("Tags")))
            except BadRow as bad:
                self.policy.reject(bad.error, bad.reason)
