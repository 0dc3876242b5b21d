"""HTML cleaning at ingestion and tag parsing."""

from qaembed.data.clean import clean_html, normalize_whitespace, parse_tags


def test_paragraphs_become_blank_lines_and_inline_whitespace_collapses():
    html = "<p>First   line\nstill first.</p><p>Second <b>bold</b> <a href='x'>link</a>.</p>"
    assert clean_html(html) == "First line still first.\n\nSecond bold link."


def test_code_block_keeps_its_line_breaks_and_indentation():
    html = "<p>Try:</p><pre><code>for x in xs:\n    print(x &lt; 3)\n</code></pre><p>Done.</p>"
    assert clean_html(html) == "Try:\n\nfor x in xs:\n    print(x < 3)\n\nDone."


def test_entities_are_unescaped():
    assert clean_html("<p>a &amp; b &lt;c&gt; &quot;d&quot; &#233;t&eacute;</p>") == 'a & b <c> "d" été'


def test_list_items_and_br_are_line_breaks():
    assert clean_html("<ul><li>one</li><li>two</li></ul>x<br>y") == "one\ntwo\n\nx\ny"


def test_script_style_and_comments_are_dropped_but_their_tail_kept():
    assert clean_html("<p>a<!-- hidden -->b<script>evil()</script>c<style>p{}</style></p>") == "abc"


def test_empty_and_whitespace_only_inputs_are_empty():
    assert clean_html(None) == ""
    assert clean_html("  \n") == ""
    assert clean_html("<p> </p><img src='x.png'>") == ""


def test_plain_text_is_only_whitespace_normalized():
    assert clean_html("plain\n\ttext ") == "plain text"
    assert normalize_whitespace("What does <T> mean?\n") == "What does <T> mean?"


def test_both_tag_formats_parse():
    assert parse_tags("<python><c++>") == ["python", "c++"]
    assert parse_tags("|python|c++|") == ["python", "c++"]
    assert parse_tags(None) == []


# --- the fast walker against a plain recursive reference of the same rules -------------------------

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from qaembed.data.clean import _LINE_TAGS, _PARAGRAPH_TAGS, _PARSER


def _reference(html: str) -> str:
    """The module's rules written the obvious way: recursion, a flat list of pieces, then assembly."""
    if not html or not html.strip():
        return ""
    if "<" not in html and "&" not in html:
        return " ".join(html.split())
    pieces: list[object] = []  # str: inline text; ("code", str): a code block; int: a break (1 line, 2 paragraph)

    def visit(element, is_root=False):
        tag = element.tag if isinstance(element.tag, str) else None
        if tag is not None and tag not in ("script", "style"):
            if tag == "pre":
                pieces.extend([2, ("code", "".join(element.itertext())), 2])
            else:
                brk = 2 if tag in _PARAGRAPH_TAGS else 1 if tag in _LINE_TAGS else 0
                pieces.extend([brk] if brk else [])
                pieces.append(element.text or "")
                for child in element:
                    visit(child)
                pieces.extend([brk] if brk else [])
        if not is_root:
            pieces.append(element.tail or "")

    document = etree.fromstring(f"<div>{html}</div>", _PARSER)
    if document is not None:
        visit(document, is_root=True)
    blocks: list[str] = []
    pending, inline = 0, []
    for piece in pieces + [0]:  # a final break flushes the last inline text
        if isinstance(piece, str):
            inline.append(piece)
            continue
        text = " ".join("".join(inline).split())
        inline = []
        if text:
            blocks.append(("\n\n" if pending == 2 else "\n") if blocks else "")
            blocks.append(text)
            pending = 0
        if isinstance(piece, tuple):
            code = "\n".join(line.rstrip() for line in piece[1].strip("\n").split("\n"))
            if code.strip():
                blocks.append("\n\n" if blocks else "")
                blocks.append(code)
            pending = 2
        else:
            pending = max(pending, piece)
    return "".join(blocks)


_TAGS = ["p", "div", "b", "code", "a", "li", "ul", "br", "pre", "h2", "blockquote", "script", "span", "tr", "td"]
_TEXTS = st.sampled_from(["", " ", "word", "  two  words ", "\n", "x\u00a0y", "&amp;", "&lt;b&gt;", "tab\tend",
                          "  indented\n    code\n", "\u2003em space", "&nbsp;"])


@st.composite
def _html(draw, depth=0):
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        if depth < 4 and draw(st.booleans()):
            tag = draw(st.sampled_from(_TAGS))
            inner = draw(_html(depth + 1))
            closed = draw(st.integers(0, 9)) > 0  # sometimes unclosed: the parser's repairs are walked too
            parts.append(f"<{tag}>{inner}" + (f"</{tag}>" if closed else ""))
        else:
            parts.append(draw(_TEXTS))
    return "".join(parts)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(_html())
def test_clean_html_equals_the_plain_reference_on_generated_html(html):
    assert clean_html(html) == _reference(html)


def test_clean_html_equals_the_plain_reference_on_real_bodies(shared_data):
    bodies = []
    for posts in sorted((shared_data / "stackexchange").glob("*/Posts.xml"))[:2]:
        for _, row in etree.iterparse(str(posts), tag="row"):
            if row.get("Body"):
                bodies.append(row.get("Body"))
            row.clear()
    assert len(bodies) > 1000
    assert [clean_html(b) for b in bodies] == [_reference(b) for b in bodies]
