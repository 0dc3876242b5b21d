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
        self._conn.execute("COMMIT")
        self._conn.execute("CREATE INDEX answers_by_parent ON posts (parent_id, id) WHERE kind = 2")
        self._conn.execute("BEGIN")
        questions = self._conn.execute(f"SELECT p.id, {_SELECT} WHERE p.kind = 1 ORDER BY p.id")
        answers = self._conn.execute(f"SELECT p.parent_id, p.id, {_SELECT} WHERE p.kind = 2 ORDER BY p.parent_id, p.id")
        orphans = 0
        pending = answers.fetchone()
        for question_id, *question in questions:
            while pending is not None and pending[0] < question_id:
                orphans += 1
                pending = answers.fetchone()
            grouped: list[tuple[int, Post]] = []
            while pending is not None and pending[0] == question_id:
                grouped.append((pending[1], Post._make(pending[2:])))
                pending = answers.fetchone()
            question[_TAGS] = json.loads(question[_TAGS])
            yield question_id, Post._make(question), grouped
        while pending is not None:
            orphans += 1
            pending = answers.fetchone()
        self.orphan_answers = orphans
