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
