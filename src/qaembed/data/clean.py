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
_TAG_SPLIT = re.compile(r"[<>|]+")
# A plain lxml HTML parser (no HtmlElement class lookup: faster); comments and PIs dropped while parsing.
# huge_tree lifts libxml2's 10 MB text-node and 256-level depth limits (to 1 GB and 2048 levels).
_PARSER = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, default_doctype=False,
                           huge_tree=True)
MAX_HTML_DEPTH = 2048  # libxml2's depth limit with huge_tree (XML_PARSE_HUGE)


class HtmlLimitError(ValueError):
    """The HTML parser stopped (at one of its limits, or at text it cannot encode such as a lone
    surrogate): the body cannot be cleaned whole."""

# Break strengths between text pieces: none, a line break, a paragraph (blank line).
_NONE, _LINE, _PARAGRAPH = 0, 1, 2
_SEPARATOR = {_NONE: "\n", _LINE: "\n", _PARAGRAPH: "\n\n"}


class _Text:
    """The cleaned text as it is built: blocks joined by the strongest break seen between them.

    Inline text is gathered until the next break and then collapsed (whitespace runs to one
    space, ``str.split``: the same Unicode whitespace as the regex ``\\s``, four times faster);
    a block that is empty after collapsing leaves its break pending, so breaks never pile up.
    """

    __slots__ = ("blocks", "inline", "pending")

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.inline: list[str] = []
        self.pending = _NONE

    def brk(self, strength: int) -> None:
        if self.inline:
            self._emit(" ".join("".join(self.inline).split()))
            self.inline.clear()
        if strength > self.pending:
            self.pending = strength

    def verbatim(self, code: str) -> None:
        """A code block: its own paragraph, line breaks and indentation kept (trailing spaces dropped)."""
        self.brk(_PARAGRAPH)
        code = "\n".join(line.rstrip() for line in code.strip("\n").split("\n"))
        if code.strip():
            self._emit(code)
        self.pending = _PARAGRAPH

    def _emit(self, text: str) -> None:
        if text:
            if self.blocks:
                self.blocks.append(_SEPARATOR[self.pending])
            self.blocks.append(text)
            self.pending = _NONE

    def result(self) -> str:
        self.brk(_NONE)
        return "".join(self.blocks)


def _walk(root: etree._Element, text: _Text) -> None:
    """Feed the text, code blocks and breaks of ``root`` to ``text`` in document order.

    Iterative (an explicit stack, not recursion), so the depth of the HTML does not matter.
    """
    # Stack items: an element to open, or a (break, tail) pair to emit after its children.
    stack: list[object] = [root]
    inline = text.inline
    while stack:
        item = stack.pop()
        if item.__class__ is tuple:
            brk, tail = item
            if brk:
                text.brk(brk)
            if tail:
                inline.append(tail)
            continue
        element = item
        tag = element.tag
        tail = element.tail if element is not root else None
        if tag.__class__ is not str or tag in _DROPPED_TAGS:  # comments / PIs have no str tag
            if tail:
                inline.append(tail)
            continue
        if tag == "pre":
            text.verbatim("".join(element.itertext()))
        else:
            brk = _PARAGRAPH if tag in _PARAGRAPH_TAGS else _LINE if tag in _LINE_TAGS else _NONE
            if brk:
                if inline:
                    text.brk(brk)
                elif brk > text.pending:  # nothing to flush: only the break is kept (saves a call)
                    text.pending = brk
            if element.text:
                inline.append(element.text)
            if len(element):
                stack.append((brk, tail))
                stack.extend(reversed(element))
                continue
            if brk:
                text.brk(brk)
        if tail:
            inline.append(tail)


def clean_html(html: str | None) -> str:
    """Clean text from an HTML fragment (see the module docstring for the rules).

    Raises :class:`HtmlLimitError` when the parser cannot read the fragment whole.
    """
    if not html or not html.strip():
        return ""
    if "<" not in html and "&" not in html:
        return normalize_whitespace(html)
    document = etree.fromstring(f"<div>{html}</div>", _PARSER)
    if len(_PARSER.error_log):
        _check_parse_errors()
    text = _Text()
    if document is not None:
        _walk(document, text)
    return text.result()


def _check_parse_errors() -> None:
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


def normalize_whitespace(text: str | None) -> str:
    """Plain text (titles are not HTML in the dumps) with whitespace runs collapsed to one space."""
    return " ".join(text.split()) if text else ""


def parse_tags(raw: str | None) -> list[str]:
    """Tags from either dump format: ``<a><b>`` (older) or ``|a|b|`` (newer)."""
    if not raw:
        return []
    return [tag for tag in _TAG_SPLIT.split(raw) if tag]
