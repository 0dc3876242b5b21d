r"""JSON files every stage writes (manifests, stats, run status, checkpoints' state): read with errors that
name the file and line, written atomically (temp file + rename) so a killed process leaves the old file or
the new one, never half of one.

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
import os
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


def write_json(path: str | Path, payload: object) -> None:
    """Write JSON atomically (temp file + rename), pretty-printed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
