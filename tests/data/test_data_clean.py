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
