"""User-facing errors. The CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import ValidationError


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


class Problem(NamedTuple):
    """One problem of a pydantic ValidationError, in the words qaembed's messages use."""

    field: str  # dotted location of the value ("loss.options.temperature"); "" for the whole object
    message: str  # what is wrong, with the offending value where it helps
    kind: str  # pydantic's error type ("extra_forbidden", "missing", "greater_than", ...)


def validation_problems(exc: ValidationError, data: Any = None) -> list[Problem]:
    """Every problem of ``exc``, the one place pydantic errors become qaembed's wording.

    * an unknown key reads ``unknown key``; a missing one ``required``;
    * the offending input follows the message of value errors (``(got 0)``), pydantic's
      ``Value error, `` prefix is dropped;
    * a tagged union (``loss: {name: ..., options: ...}``) names the tag field and lists the
      allowed names; pydantic's loc carries the member's tag (``loss.infonce.options``), which is
      dropped when ``data`` (the input that was validated) shows it is not a key of the input.

    >>> from pydantic import BaseModel, ConfigDict, Field
    >>> class Options(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     temperature: float = Field(0.05, gt=0)
    >>> try:
    ...     Options.model_validate({"temperature": 0, "temp": 1})
    ... except ValidationError as exc:
    ...     [f"{p.field}: {p.message}" for p in validation_problems(exc)]
    ['temperature: Input should be greater than 0 (got 0)', 'temp: unknown key']
    """
    problems = []
    for error in exc.errors():
        loc = _strip_tags(tuple(error.get("loc", ())), data)
        kind = error.get("type", "")
        message = str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required"
        elif kind == "union_tag_invalid":
            ctx = error.get("ctx") or {}
            loc = (*loc, _discriminator_key(error))
            message = f"unknown name {ctx.get('tag')!r}; allowed: {str(ctx.get('expected_tags', '')).replace(chr(39), '')}"
        elif kind == "union_tag_not_found":
            key = _discriminator_key(error)
            if isinstance(error.get("input"), dict):
                loc, message = (*loc, key), "required"
            else:
                message = f"expected a mapping with {key!r}, got {error.get('input')!r}"
        elif kind != "value_error" and "input" in error and not isinstance(error["input"], dict | list):
            message += f" (got {_shortened(error['input'])})"
        problems.append(Problem(".".join(str(part) for part in loc), message, kind))
    return problems


def _shortened(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut in the middle past ``limit`` characters (the input of a broken JSON line is the line).

    >>> _shortened("x" * 200, 20)
    "'xxxxxxx … xxxxxxx' (200 characters)"
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    half = (limit - 4) // 2
    length = f" ({len(value)} characters)" if isinstance(value, str | bytes) else ""
    return f"{text[:half]} … {text[-half:]}{length}"


def first_problem(exc: ValidationError, data: Any = None) -> Problem:
    """The first problem of ``exc`` (for messages that name one field, e.g. a record's line)."""
    return validation_problems(exc, data)[0]


def option_error(exc: ValidationError) -> ConfigError:
    """The first problem of a command's options model as a ConfigError naming its flag (``--max-k: ...``)."""
    problem = first_problem(exc)
    flag = problem.field.split(".")[0].replace("_", "-")
    return ConfigError(f"--{flag}: {problem.message}" if flag else problem.message)


def format_validation_error(exc: ValidationError, source: str, data: Any = None) -> str:
    """``"{source}: field: message; field: message"``: every problem of ``exc`` in one line."""
    parts = [f"{p.field}: {p.message}" if p.field else p.message for p in validation_problems(exc, data)]
    return f"{source}: " + "; ".join(parts)


def _discriminator_key(error: dict[str, Any]) -> str:
    """The key a tagged union is told apart by (pydantic writes ``'name'``, or ``name()`` for a callable)."""
    return str((error.get("ctx") or {}).get("discriminator", "name")).strip("'").removesuffix("()")


def _strip_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """``loc`` without the tagged-union tags pydantic inserts (those that are not keys of ``data``)."""
    if data is None:
        return loc
    kept, node = [], data
    for index, part in enumerate(loc):
        if isinstance(node, dict):
            if part in node or index == len(loc) - 1:
                kept.append(part)
                node = node.get(part)
            # else: a tag, not a key of the input: skip it and stay on this node
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            kept.append(part)
            node = node[part]
        else:
            kept.append(part)
            node = None
    return tuple(kept)
