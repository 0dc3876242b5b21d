"""On-disk spill store that groups answers under their questions with bounded memory.

Dump-style sources (Stack Exchange ``Posts.xml``, the Kaggle CSV pair) list questions
and answers as separate rows in any order. The adapters stream rows into this store (a
SQLite file in a temporary folder, deleted on close) and then read questions back in id
order with their answers (a merge join over two sorted cursors), so memory does not
grow with the size of the dump. Answers whose parent is not a question in the store are
*orphans*: they are counted (``orphan_answers``) and dropped.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

QUESTION, ANSWER = 1, 2


class PostStore:
    """Questions, answers and user names spilled to SQLite; use as a context manager."""

    def __init__(self, spill_dir: str | Path | None = None):
        if spill_dir is not None:
            Path(spill_dir).mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix="qaembed-spill-", dir=spill_dir)
        self._conn = sqlite3.connect(Path(self._tmp.name) / "posts.sqlite", isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache, whatever the dump size
        self._conn.execute(
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, parent_id INTEGER,"
            " line INTEGER, data TEXT NOT NULL)"
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

    def add_post(self, post_id: int, kind: int, parent_id: int | None, line: int | None, data: dict | str,
                 ) -> int | None:
        """Store one post (``data`` a dict, or its JSON already encoded by a worker); returns None, or
        the line of an earlier post with the same id (nothing stored)."""
        try:
            self._conn.execute(
                "INSERT INTO posts (id, kind, parent_id, line, data) VALUES (?, ?, ?, ?, ?)",
                (post_id, kind, parent_id, line, data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)),
            )
        except sqlite3.IntegrityError:
            row = self._conn.execute("SELECT line FROM posts WHERE id = ?", (post_id,)).fetchone()
            return row[0] if row and row[0] is not None else -1
        return None

    def add_user(self, user_id: int, name: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO users (id, name) VALUES (?, ?)", (user_id, name))

    def user_name(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        row = self._conn.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchone()
        return row[0] if row else None

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

    def grouped(self) -> Iterator[tuple[int, dict, list[tuple[int, dict]]]]:
        """``(question_id, question_data, [(answer_id, answer_data), ...])`` in question-id order.

        Answers are in id order. Sets :attr:`orphan_answers` once the iteration is complete.
        """
        self._conn.execute("COMMIT")
        self._conn.execute("CREATE INDEX answers_by_parent ON posts (parent_id, id) WHERE kind = 2")
        self._conn.execute("BEGIN")
        questions = self._conn.execute("SELECT id, data FROM posts WHERE kind = 1 ORDER BY id")
        answers = self._conn.execute(
            "SELECT parent_id, id, data FROM posts WHERE kind = 2 ORDER BY parent_id, id"
        )
        orphans = 0
        pending = answers.fetchone()
        for question_id, question_data in questions:
            while pending is not None and pending[0] < question_id:
                orphans += 1
                pending = answers.fetchone()
            grouped: list[tuple[int, dict]] = []
            while pending is not None and pending[0] == question_id:
                grouped.append((pending[1], json.loads(pending[2])))
                pending = answers.fetchone()
            yield question_id, json.loads(question_data), grouped
        while pending is not None:
            orphans += 1
            pending = answers.fetchone()
        self.orphan_answers = orphans
