r"""JSON files every stage writes (manifests, stats, run status, checkpoints' state): read with errors that
name the file and line, written atomically (temp file + rename) so a killed process leaves the old file or
the new one, never half of one, and never through a link planted at the file's name.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "sub" / "status.json"
>>> write_json(path, {"status": "ok", "steps": 3})
>>> read_json(path)
{'status': 'ok', 'steps': 3}
>>> _ = path.write_text('{"status": "ok",\n "steps": }')
>>> read_json(path)
Traceback (most recent call last):
...
qaembed.errors.DataError: ...status.json:2: invalid JSON: Expecting value
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from qaembed.errors import DataError


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; invalid JSON is a :class:`DataError` naming the file and line."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno) from exc


class JsonProblem(ValueError):
    """Text that :func:`parse_input_json` refuses: ``message``, with the ``line`` and ``column`` where known."""

    def __init__(self, message: str, line: int | None, column: int | None):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


_WHERE = re.compile(r" at line (\d+) column (\d+)$")


def parse_input_json(text: str | bytes) -> Any:
    r"""The value of a JSON document from a user's file, as :func:`json.loads` gives it, except that a lone
    surrogate escape (``"\ud800"``, which no UTF-8 writer or tokenizer accepts) is refused like any other bad
    JSON, and nesting too deep for the parser is an error, not a RecursionError. Raises :class:`JsonProblem`.

    >>> parse_input_json('{"title": "caf\\u00e9", "score": 2}')
    {'title': 'café', 'score': 2}
    >>> parse_input_json('{"title": "bad \\ud800"}')
    Traceback (most recent call last):
    ...
    qaembed.jsonfiles.JsonProblem: unexpected end of hex escape
    """
    from pydantic_core import from_json

    if isinstance(text, str):
        try:
            text = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # the text itself holds a surrogate
            raise JsonProblem(f"not valid UTF-8 text (a lone surrogate at character {exc.start + 1})", None,
                              None) from None
    try:
        return from_json(text)
    except ValueError as exc:
        message = str(exc)
        where = _WHERE.search(message)
        if where is None:
            raise JsonProblem(message, None, None) from None
        raise JsonProblem(message[: where.start()], int(where[1]), int(where[2])) from None


def write_json(path: str | Path, payload: object) -> None:
    """Write JSON atomically (temp file + rename), pretty-printed; a link at the name is replaced, never followed
    (:func:`qaembed.outputs.replacing`)."""
    from qaembed.outputs import replace_text

    replace_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
