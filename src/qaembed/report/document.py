"""The report's content as a list of blocks, written once and rendered to Markdown and HTML.

Inline markup inside text is limited to ``[text](url)`` links and ``**bold**``; both
renderers understand exactly that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from qaembed.report.tables import Table

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
BOLD = re.compile(r"\*\*([^*]+)\*\*")
WEB_URL = re.compile(r"https?://[^)\s]+", re.IGNORECASE)  # the only URLs a report links to


def literal(text: str) -> str:
    """Text quoted from a dataset (a title, an author, a license, a site), made to render as written inside report
    text: brackets become parentheses (no link can start in it) and line breaks spaces (it cannot end a list item
    or start a heading or a table row).

    >>> literal("Why [x](javascript:y)?\\n# Heading")
    'Why (x)(javascript:y)? # Heading'
    """
    return " ".join(text.replace("[", "(").replace("]", ")").split())


def link(text: str, url: str | None) -> str:
    """``[text](url)`` when ``url`` is an http(s) URL the link syntax can hold, else just ``text``: a URL read from
    a dataset (``javascript:...``, one with a space or a parenthesis) never becomes a link."""
    return f"[{text}]({url})" if url is not None and WEB_URL.fullmatch(url) else text


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class TableBlock:
    table: Table


@dataclass
class Image:
    path: Path  # PNG file next to the report
    caption: str


@dataclass
class Code:
    text: str


Block = Heading | Paragraph | Bullets | TableBlock | Image | Code
