"""User-facing errors. The CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations


class QaembedError(Exception):
    """An error caused by input or configuration that the user can fix."""


class DataError(QaembedError):
    """Bad input data, located as precisely as possible (file, line or row, field)."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None):
        self.message, self.path, self.line, self.field = message, path, line, field
        where = ":".join(str(p) for p in (path, line) if p is not None)
        parts = [where] if where else []
        if field:
            parts.append(f"field {field!r}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(QaembedError):
    """A configuration value is missing, unknown or out of range."""
