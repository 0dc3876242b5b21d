"""On-disk spill store that groups answers under their questions with bounded memory.

Dump-style sources (Stack Exchange ``Posts.xml``, the Kaggle CSV pair) list questions
and answers as separate rows in any order. The adapters stream rows into this store (a
SQLite file in a temporary folder, deleted on close) and then read questions back in id
order with their answers (a merge join over two sorted cursors), so memory does not
grow with the size of the dump. Answers whose parent is not a question in the store are
*orphans*: they are counted (``orphan_answers``) and dropped.

Posts are stored as columns (no JSON round trip) and authors' display names from
``Users.xml`` are joined in SQL while grouping: at Stack Overflow's size every
per-row Python step counts (``benchmarks/RESULTS.md``, data pipeline).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

QUESTION, ANSWER = 1, 2


class Post(NamedTuple):
    """One validated, cleaned question or answer as spilled (a plain tuple: workers send it back)."""

    score: int
    body: str
    owner_id: int | None
    owner_name: str | None  # the dump's OwnerDisplayName; grouping returns the Users.xml name when known
    created: str | None  # ISO 8601
    license: str | None
    title: str | None = None  # questions only
    tags: list[str] | None = None  # questions only
    accepted_answer_id: int | None = None  # questions only


_TAGS = Post._fields.index("tags")  # stored as JSON text
_INSERT = ("INSERT INTO posts (id, kind, parent_id, line, score, body, owner_id, owner_name, created, license, title,"
           " tags, accepted_answer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
# A grouped post: its columns with the author's name from Users.xml when there is one (else the dump's).
_SELECT = ("p.score, p.body, p.owner_id, COALESCE(u.name, p.owner_name), p.created, p.license, p.title, p.tags, "
           "p.accepted_answer_id FROM posts p LEFT JOIN users u ON u.id = p.owner_id")


class PostStore:
    """Questions, answers and user names spilled to SQLite; use as a context manager."""

    def __init__(self, spill_dir: str | Path | None = None):
        if spill_dir is not None:
            Path(spill_dir).mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix="qaembed-spill-", dir=spill_dir)
        self._conn = sqlite3.connect(Path(self._tmp.name) / "posts.sqlite", isolation_level=None)
        self._conn.execute("PRAGMA page_size=16384")  # fewer, larger pages: posts are ~1 KB each (measured faster)
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache, whatever the dump size
        self._conn.execute(
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, parent_id INTEGER, line INTEGER,"
            " score INTEGER NOT NULL, body TEXT NOT NULL, owner_id INTEGER, owner_name TEXT, created TEXT,"
            " license TEXT, title TEXT, tags TEXT, accepted_answer_id INTEGER)"
        )
        self._conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        self._conn.execute("CREATE TABLE tags (question_id INTEGER NOT NULL, tag TEXT NOT NULL)")
        self._tags_indexed = False
        self._conn.execute("BEGIN")
        self.orphan_answers = 0
        self.questions = 0  # stored

    def __enter__(self) -> PostStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()
        self._tmp.cleanup()

    def add_post(self, post_id: int, kind: int, parent_id: int | None, line: int | None, post: Post) -> int | None:
        """Store one post; returns None, or the line of an earlier post with the same id (nothing stored)."""
        score, body, owner_id, owner_name, created, license, title, tags, accepted = post
        try:
            self._conn.execute(_INSERT, (post_id, kind, parent_id, line, score, body, owner_id, owner_name, created,
                                         license, title, None if tags is None else json.dumps(tags), accepted))
        except sqlite3.IntegrityError:
            row = self._conn.execute("SELECT line FROM posts WHERE id = ?", (post_id,)).fetchone()
            return row[0] if row and row[0] is not None else -1
        self.questions += kind == QUESTION
        return None

    def add_user(self, user_id: int, name: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO users (id, name) VALUES (?, ?)", (user_id, name))

    def add_tag(self, question_id: int, tag: str) -> None:
        self._conn.execute("INSERT INTO tags (question_id, tag) VALUES (?, ?)", (question_id, tag))

    def tags(self, question_id: int) -> list[str]:
        """Tags added with :meth:`add_tag` for one question, in insertion order."""
        if not self._tags_indexed:
            self._conn.execute("CREATE INDEX tags_by_question ON tags (question_id)")
            self._tags_indexed = True
        rows = self._conn.execute("SELECT tag FROM tags WHERE question_id = ? ORDER BY rowid", (question_id,))
        return [row[0] for row in rows]

    def count(self, kind: int) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM posts WHERE kind = ?", (kind,)).fetchone()[0]

    def grouped(self) -> Iterator[tuple[int, Post, list[tuple[int, Post]]]]:
        """``(question_id, question, [(answer_id, answer), ...])`` in question-id order.

        Answers are in id order; each post's ``owner_name`` is its author's ``Users.xml`` name
        when there is one. Sets :attr:`orphan_answers` once the iteration is complete.
        """
        self.finish()
        self._conn.execute("BEGIN")
        counted = Orphans()
        yield from grouped_posts(self._conn, 1, None, counted)
        self.orphan_answers = counted.count

    def finish(self) -> None:
        """Commit what was stored and index answers by question: from here on the store is read, by this
        connection (:meth:`grouped`) or by others (:func:`grouped_range`, in workers)."""
        self._conn.execute("COMMIT")
        self._conn.execute("CREATE INDEX answers_by_parent ON posts (parent_id, id) WHERE kind = 2")

    @property
    def path(self) -> Path:
        return Path(self._tmp.name) / "posts.sqlite"

    def question_ranges(self, questions_per_range: int) -> list[tuple[int, int | None]]:
        """Bounds ``[(low, high), ...]`` (``high`` None: no upper bound) that split every post id into ranges
        of about ``questions_per_range`` questions each, in order (from the questions' id span: ids of a
        dump are chronological, questions spread over them). After :meth:`finish`."""
        if not self.questions:
            return [(1, None)]
        # the ends of the rowid (= id) order: no scan of the table
        low = self._conn.execute("SELECT id FROM posts WHERE kind = 1 ORDER BY id LIMIT 1").fetchone()[0]
        high = self._conn.execute("SELECT id FROM posts WHERE kind = 1 ORDER BY id DESC LIMIT 1").fetchone()[0]
        ranges = max(1, -(-self.questions // questions_per_range))
        width = max(1, -(-(high - low + 1) // ranges))
        cuts = list(range(low + width, high + 1, width))
        return list(zip([1, *cuts], [*cuts, None]))


class Orphans:
    """A count of orphan answers that :func:`grouped_posts` adds to while it groups."""

    count = 0


def grouped_posts(conn: sqlite3.Connection, low: int, high: int | None,
                  orphans: Orphans) -> Iterator[tuple[int, Post, list[tuple[int, Post]]]]:
    """:meth:`PostStore.grouped` for the questions with ids in ``[low, high)`` (``high`` None: no upper
    bound); answers whose parent id is in that range but not a question are added to ``orphans``."""
    bounds = (low,) if high is None else (low, high)
    within = "{} >= ?" if high is None else "{} >= ? AND {} < ?"
    questions = conn.execute(
        f"SELECT p.id, {_SELECT} WHERE p.kind = 1 AND {within.format('p.id', 'p.id')} ORDER BY p.id", bounds)
    answers = conn.execute(
        f"SELECT p.parent_id, p.id, {_SELECT} WHERE p.kind = 2 AND {within.format('p.parent_id', 'p.parent_id')} "
        "ORDER BY p.parent_id, p.id", bounds)
    pending = answers.fetchone()
    for question_id, *question in questions:
        while pending is not None and pending[0] < question_id:
            orphans.count += 1
            pending = answers.fetchone()
        grouped: list[tuple[int, Post]] = []
        while pending is not None and pending[0] == question_id:
            grouped.append((pending[1], Post._make(pending[2:])))
            pending = answers.fetchone()
        question[_TAGS] = json.loads(question[_TAGS])
        yield question_id, Post._make(question), grouped
    while pending is not None:
        orphans.count += 1
        pending = answers.fetchone()


_READERS: dict[str, sqlite3.Connection] = {}  # per worker process: the spill stores it reads


def grouped_range(path: str | Path, low: int, high: int | None,
                  orphans: Orphans) -> Iterator[tuple[int, Post, list[tuple[int, Post]]]]:
    """:func:`grouped_posts` on the spill store at ``path`` (after :meth:`PostStore.finish`), opened read-only
    once per process: what a worker building the records of one range of questions reads."""
    key = str(path)
    conn = _READERS.get(key)
    if conn is None:
        conn = _READERS[key] = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    return grouped_posts(conn, low, high, orphans)
