"""HTML to clean text, done once at ingestion (every adapter calls :func:`clean_html`).

Rules: tags are removed and entities unescaped; block elements (``p``, ``div``,
headings, ``blockquote``, tables...) become paragraphs separated by a blank line,
``li``/``tr``/``br`` become line breaks; code blocks (``<pre>``) are kept verbatim,
line breaks included; everywhere else runs of whitespace collapse to one space.
``script``/``style`` content and comments are dropped.

Limits: bodies are parsed with libxml2's ``huge_tree`` option, so text of any size
(up to libxml2's 1 GB limit) is kept whole; nesting deeper than
:data:`MAX_HTML_DEPTH` elements is refused with :class:`HtmlLimitError` (libxml2 would
otherwise stop parsing there and silently drop the rest). Nothing is truncated
silently: a body the parser cannot read whole is an error. The HTML parser never
reads external entities or the network and does not expand DTD entities
(no entity bombs).

>>> clean_html("<p>Use <code>x &amp;&amp; y</code>.</p><pre><code>a = 1\\n  b = 2\\n</code></pre><p>Done&nbsp;!</p>")
'Use x && y.\\n\\na = 1\\n  b = 2\\n\\nDone !'
>>> parse_tags("<python><lxml>"), parse_tags("|python|lxml|"), parse_tags("")
(['python', 'lxml'], ['python', 'lxml'], [])
"""

from __future__ import annotations

import re

from lxml import etree

_PARAGRAPH_TAGS = frozenset(
    "p div blockquote h1 h2 h3 h4 h5 h6 ul ol dl table hr section article header footer figure pre".split()
)
_LINE_TAGS = frozenset("li dt dd tr br caption".split())
_DROPPED_TAGS = frozenset(("script", "style"))
_WHITESPACE = re.compile(r"\s+")
_TAG_SPLIT = re.compile(r"[<>|]+")
# A plain lxml HTML parser (no HtmlElement class lookup: faster); comments and PIs dropped while parsing.
# huge_tree lifts libxml2's 10 MB text-node and 256-level depth limits (to 1 GB and 2048 levels).
_PARSER = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, default_doctype=False,
                           huge_tree=True)
MAX_HTML_DEPTH = 2048  # libxml2's depth limit with huge_tree (XML_PARSE_HUGE)


class HtmlLimitError(ValueError):
    """The HTML parser stopped (at one of its limits, or at text it cannot encode such as a lone
    surrogate): the body cannot be cleaned whole."""

# Break strengths between text pieces: a line break or a paragraph (blank line).
_LINE, _PARAGRAPH = 1, 2


class _Verbatim(str):
    """Text from a code block: emitted as is, whitespace included."""


def _collect(root: etree._Element, out: list[object]) -> None:
    """Append text pieces (str), verbatim pieces and break strengths (int) in document order.

    Iterative (an explicit stack, not recursion), so the depth of the HTML does not matter.
    """
    # Stack items: an element to open, or a ("close", break, tail) marker to emit after its children.
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            _, brk, tail = item
            if brk:
                out.append(brk)
            if tail:
                out.append(tail)
            continue
        element = item
        tag = element.tag if isinstance(element.tag, str) else None  # comments / PIs have no str tag
        tail = element.tail if element is not root else None
        if tag is None or tag in _DROPPED_TAGS:
            if tail:
                out.append(tail)
            continue
        if tag == "pre":
            out.append(_PARAGRAPH)
            out.append(_Verbatim("".join(element.itertext())))
            out.append(_PARAGRAPH)
            if tail:
                out.append(tail)
            continue
        brk = _PARAGRAPH if tag in _PARAGRAPH_TAGS else _LINE if tag in _LINE_TAGS else 0
        if brk:
            out.append(brk)
        if element.text:
            out.append(element.text)
        stack.append(("close", brk, tail))
        stack.extend(reversed(list(element)))


def clean_html(html: str | None) -> str:
    """Clean text from an HTML fragment (see the module docstring for the rules).

    Raises :class:`HtmlLimitError` when the parser cannot read the fragment whole.
    """
    if not html or not html.strip():
        return ""
    if "<" not in html and "&" not in html:
        return normalize_whitespace(html)
    document = etree.fromstring(f"<div>{html}</div>", _PARSER)
    limits = [e for e in _PARSER.error_log if e.type_name == "ERR_RESOURCE_LIMIT" or e.level_name == "FATAL"]
    if limits:
        error = limits[0]
        if "depth" in error.message.lower():
            what = f"elements nested deeper than {MAX_HTML_DEPTH} levels (the parser's limit)"
        elif error.type_name == "ERR_RESOURCE_LIMIT":
            what = f"{error.message.strip()} (the parser's limits: {MAX_HTML_DEPTH} nested elements, 1 GB of text)"
        else:
            what = error.message.strip()
        raise HtmlLimitError(f"HTML cannot be cleaned whole: {what}; nothing is truncated silently")
    pieces: list[object] = []
    if document is not None:
        _collect(document, pieces)

    output: list[str] = []
    inline: list[str] = []
    pending_break = 0

    def emit(text: str) -> None:
        nonlocal pending_break
        if output:
            output.append("\n" * max(pending_break, _LINE))
        output.append(text)
        pending_break = 0

    def flush_inline() -> None:
        if not inline:
            return
        text = _WHITESPACE.sub(" ", "".join(inline)).strip()
        inline.clear()
        if text:
            emit(text)

    for piece in pieces:
        if isinstance(piece, int):
            flush_inline()
            pending_break = max(pending_break, piece)
        elif isinstance(piece, _Verbatim):
            flush_inline()
            code = "\n".join(line.rstrip() for line in piece.strip("\n").split("\n"))
            if code.strip():
                pending_break = _PARAGRAPH
                emit(code)
                pending_break = _PARAGRAPH
        else:
            inline.append(piece)
    flush_inline()
    return "".join(output)


def normalize_whitespace(text: str | None) -> str:
    """Plain text (titles are not HTML in the dumps) with whitespace runs collapsed to one space."""
    return _WHITESPACE.sub(" ", text).strip() if text else ""


def parse_tags(raw: str | None) -> list[str]:
    """Tags from either dump format: ``<a><b>`` (older) or ``|a|b|`` (newer)."""
    if not raw:
        return []
    return [tag for tag in _TAG_SPLIT.split(raw) if tag]
