"""Describe losses and strategies from their configs: for ``qaembed losses`` and ``docs/losses.md``.

Everything here is derived from the classes (pydantic fields, ``strategies``, module
docstrings), so the CLI and the documentation cannot drift from the code.
"""

from __future__ import annotations

import inspect
import sys
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, Discriminator
from pydantic.fields import FieldInfo


def _range(field: FieldInfo) -> str:
    bounds = []
    for item in field.metadata:
        for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attribute, None)
            if value is not None:
                bounds.append(f"{symbol} {value}")
        if getattr(item, "min_length", None) is not None:
            bounds.append(f"length >= {item.min_length}")
    return ", ".join(bounds)


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Annotated and any(isinstance(m, Discriminator) for m in get_args(annotation)[1:]):
        return "part"  # a tagged union of typed sections (options.named_union), e.g. multitask's parts
    if get_origin(annotation) is list:
        return f"list[{_type_name(get_args(annotation)[0])}]"
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    return text or str(annotation).replace("typing.", "")


def describe_options(config_class: type[BaseModel]) -> list[dict[str, Any]]:
    """One dict per option: name, type, default, range, description."""
    rows = []
    for name, field in config_class.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        rows.append(
            {
                "name": name,
                "type": _type_name(field.annotation),
                "default": default,
                "required": field.is_required(),
                "range": _range(field),
                "description": field.description or "",
            }
        )
    return rows


def summary(cls: type) -> str:
    """First line of the docstring of the module that defines ``cls`` (or of the class)."""
    doc = inspect.getdoc(sys.modules[cls.__module__]) or inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def loss_catalog() -> list[dict[str, Any]]:
    from qaembed.losses import LOSSES

    return [
        {
            "name": name,
            "class": cls.__name__,
            "summary": summary(cls),
            "strategies": list(cls.strategies) if not cls.composite else ["(those all parts accept)"],
            "options": describe_options(cls.config_class),
        }
        for name, cls in LOSSES.items()
    ]


def strategy_catalog() -> list[dict[str, Any]]:
    from qaembed.batching.strategies import STRATEGIES
    from qaembed.losses import LOSSES

    return [
        {
            "name": name,
            "summary": (inspect.getdoc(cls) or "").splitlines()[0],
            "losses": [loss for loss, cls_ in LOSSES.items() if name in cls_.strategies and not cls_.composite],
            "options": describe_options(cls.config_class),
        }
        for name, cls in STRATEGIES.items()
    ]


def losses_markdown() -> str:
    """``docs/losses.md`` body: every loss with its full docstring and options, then the strategies."""
    from qaembed.losses import LOSSES

    lines = ["## Losses", ""]
    for entry in loss_catalog():
        cls = LOSSES[entry["name"]]
        doc = inspect.getdoc(sys.modules[cls.__module__]) or ""
        lines += [f"### `{entry['name']}`", "", *_docstring_markdown(doc), ""]
        lines += _options_markdown(entry["options"])
    lines += ["## Batching strategies", ""]
    for entry in strategy_catalog():
        lines += [f"### `{entry['name']}`", "", entry["summary"], ""]
        composites = " and ".join(f"`{name}`" for name, cls in LOSSES.items() if cls.composite)
        lines += [f"Losses that accept it: {', '.join(f'`{x}`' for x in entry['losses'])} (and {composites}).", ""]
        lines += _options_markdown(entry["options"])
    return "\n".join(lines).rstrip() + "\n"


def _docstring_markdown(doc: str) -> list[str]:
    """numpydoc -> Markdown: section underlines to bold titles, ``::`` blocks and doctests to fences."""
    lines, out, i = doc.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line.strip() and underline and set(underline) == {"-"}:
            out += [f"**{line.strip()}**", ""]
            i += 2
            continue
        if line.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += ["```python", *block, "```"]
            continue
        if line.rstrip().endswith("::"):
            out.append(line.rstrip()[:-1])
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:])
                i += 1
            text = "\n".join(block).strip("\n")
            out += ["", "```text", *text.splitlines(), "```", ""]
            continue
        out.append(line)
        i += 1
    return out


def _options_markdown(options: list[dict[str, Any]]) -> list[str]:
    lines = ["| option | type | default | range | meaning |", "|---|---|---|---|---|"]
    for row in options:
        default = "(required)" if row["required"] else f"`{row['default']!r}`"
        lines.append(f"| `{row['name']}` | {row['type']} | {default} | {row['range']} | {row['description']} |")
    return lines + [""]
