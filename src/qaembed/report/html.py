"""Render report blocks to one self-contained HTML page (PNG plots embedded as base64)."""

from __future__ import annotations

import base64
import html
import re

from qaembed.report.document import BOLD, LINK, WEB_URL, Block, Bullets, Code, Heading, Image, Paragraph, TableBlock

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1, h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
.note { font-size: .85em; color: #555; }
"""


def _inline(text: str) -> str:
    """Escape text, then turn [text](url) links (http(s) URLs only: no ``javascript:``) and **bold** into HTML."""
    escaped = html.escape(text, quote=False)

    def anchor(match: re.Match) -> str:
        text, url = match.group(1), match.group(2)
        if not WEB_URL.fullmatch(url):  # left as written
            return match.group(0)
        # the URL is already escaped (&amp;); only quotes remain to escape inside the attribute
        return f'<a href="{url.replace(chr(34), "&quot;")}">{text}</a>'

    escaped = LINK.sub(anchor, escaped)
    return BOLD.sub(r"<strong>\1</strong>", escaped)


def render_html(blocks: list[Block], title: str) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, TableBlock):
            table = block.table
            parts.append(f"<h3>{html.escape(table.title)}</h3>{table.to_html()}")
            if table.note:
                parts.append(f'<p class="note">{_inline(table.note)}</p>')
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
        elif isinstance(block, Code):
            parts.append(f"<pre>{html.escape(block.text)}</pre>")
        else:  # pragma: no cover - Block is a closed union
            raise TypeError(f"unknown block {type(block).__name__}")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
