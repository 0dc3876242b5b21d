"""Shared by the benchmark scripts: print a markdown result and optionally save it."""

from __future__ import annotations

from pathlib import Path


def print_and_save(text: str, path: Path | None) -> None:
    """Print ``text``; with ``path``, also write it there (folders created)."""
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
