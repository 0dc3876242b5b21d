"""Issue 16 (hardening), data side: each silent loss or traceback, fed its exact bad input through the CLI.

Every test reproduces one case of the issue and asserts the exit code, the message (file,
line, field or option named), and, for ``--skip-bad``, the count reported and that no
answer was lost silently.
"""

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qaembed.cli import app
from qaembed.data.adapter import BadRow, int_field
from qaembed.data.clean import HtmlLimitError, clean_html
from qaembed.errors import QaembedError

sys.path.insert(0, str(Path(__file__).parent / "bad_inputs"))
from make_corpus import (  # noqa: E402
    A_HEADER,
    K_QUESTIONS,
    a_row,
    dump_bytes,
    good_rows,
    k_answer,
    kaggle_answers,
    q_row,
    r_answer,
    ranked_item,
)


def prepare(*args: str) -> tuple[int, str, dict | None]:
    """``qaembed data prepare ARGS`` as ``qaembed.cli.main`` runs it: (exit code, output, stats.json or None)."""
    result = CliRunner().invoke(app, ["data", "prepare", *args])
    error, output = result.exception, result.output
    if isinstance(error, QaembedError):
        code, output = 2, output + f"error: {error}\n"
    elif error is not None and not isinstance(error, SystemExit):
        raise error  # a traceback: the test fails with it
    else:
        code = result.exit_code
    out = Path(args[args.index("--out") + 1])
    stats = json.loads((out / "stats.json").read_text()) if code == 0 else None
    return code, output, stats


def written_answers(stats: dict) -> int:
    return sum(split["answers"] for split in stats["splits"].values())


def site(tmp_path: Path, data: bytes, name: str = "x.stackexchange.com") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "Posts.xml").write_bytes(data)
    return folder


def kaggle(tmp_path: Path, answers: str) -> Path:
    folder = tmp_path / "kaggle"
    folder.mkdir()
    (folder / "Questions.csv").write_text(K_QUESTIONS)
    (folder / "Answers.csv").write_text(answers)
    return folder


def read_answers(out: Path) -> dict[str, str]:
    texts = {}
    for split in ("train", "dev", "test"):
        for line in (out / f"{split}.jsonl").read_text().splitlines():
            for answer in json.loads(line)["answers"]:
                texts[answer["id"]] = answer["text"]
    return texts


# ------------------------------------------------------------------ Kaggle CSV: unclosed quote


def _unclosed(bodies: dict[int, str]) -> str:
    rows = [k_answer(i, bodies.get(i, f'"<p>Answer {i}, quoted</p>"')) for i in range(2, 14)]
    return kaggle_answers(rows)


def test_kaggle_unclosed_quote_is_an_error_at_its_line(tmp_path):
    folder = kaggle(tmp_path, _unclosed({3: '"<p>Answer 3 has an unclosed quote</p>'}))
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"{folder / 'Answers.csv'}:3: broken CSV quoting" in output


def test_kaggle_unclosed_quote_with_skip_bad_drops_only_that_row(tmp_path):
    folder = kaggle(tmp_path, _unclosed({3: '"<p>Answer 3 has an unclosed quote</p>'}))
    out = tmp_path / "o"
    code, output, stats = prepare(str(folder), "--out", str(out), "--skip-bad")
    assert code == 0, output
    assert stats["skipped_bad"] == {"malformed_csv": 1} and "malformed_csv=1" in output
    texts = read_answers(out)
    assert len(texts) == 11 and written_answers(stats) == 11  # 12 in the input: 11 written + 1 counted
    assert texts["stackoverflow.com:4"] == "Answer 4, quoted"  # not merged into answer 3


def test_kaggle_unclosed_quote_ending_cleanly_is_caught_by_the_row_shape_rule(tmp_path):
    """The open quote closes exactly at the start of answer 4's cell (a cell starting with a newline):
    csv's strict mode sees nothing wrong; the continuation line that starts like a row gives it away."""
    folder = kaggle(tmp_path, _unclosed({3: '"<p>unclosed</p>', 4: '"\n<p>Answer 4</p>"'}))
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "Answers.csv:3: a quoted cell opened on this line runs into line 4, which starts like a new row" in output
    code, output, stats = prepare(str(folder), "--out", str(tmp_path / "o2"), "--skip-bad")
    assert code == 0 and written_answers(stats) == 11 and stats["skipped_bad"] == {"malformed_csv": 1}


def test_kaggle_multi_line_bodies_that_are_not_rows_are_kept(tmp_path):
    body = '"<p>first line</p>\n3, 4, 5 and more\n2008,NA,x\n<pre>1,NA,2008-08-01T14:00:00Z</pre>"'
    folder = kaggle(tmp_path, _unclosed({3: body}))
    out = tmp_path / "o"
    code, output, stats = prepare(str(folder), "--out", str(out))
    assert code == 0, output
    assert written_answers(stats) == 12
    assert "2008,NA,x" in read_answers(out)["stackoverflow.com:3"]


def test_kaggle_unknown_encoding_names_the_option(tmp_path):
    folder = kaggle(tmp_path, _unclosed({}))
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"), "--encoding", "nope")
    assert code == 2 and "error: --encoding: unknown encoding 'nope'" in output


# ------------------------------------------------------------------ non-finite scores


@pytest.mark.parametrize("score", ["NaN", '"NaN"', '"inf"', "Infinity", "-Infinity", "1e400"])
def test_ranked_qa_non_finite_score_is_rejected_with_item_and_field(tmp_path, score):
    path = tmp_path / "ranked_qa.json"
    items = [ranked_item(1, [r_answer(10)]), ranked_item(2, [r_answer(20, "SCORE")])]
    path.write_text(json.dumps(items).replace('"SCORE"', score))
    code, output, _ = prepare(str(path), "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"{path}, field 'answers[0].score': item 1: not a" in output
    code, output, stats = prepare(str(path), "--out", str(tmp_path / "o2"), "--skip-bad")
    assert code == 0 and written_answers(stats) == 1 and sum(stats["skipped_bad"].values()) == 1
    def no_constants(name):
        raise AssertionError(f"stats.json holds {name}")

    json.loads((tmp_path / "o2" / "stats.json").read_text(), parse_constant=no_constants)  # no NaN / Infinity


@pytest.mark.parametrize("score", ["NaN", '"NaN"', '"inf"', "Infinity", "1e400"])
def test_jsonl_non_finite_score_is_rejected_with_line_and_field(tmp_path, score):
    path = tmp_path / "r.jsonl"
    good = {"id": "s:1", "title": "T", "answers": [{"id": "s:2", "text": "a", "score": 1}]}
    bad = {"id": "s:3", "title": "T", "answers": [{"id": "s:4", "text": "a", "score": "SCORE"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad).replace('"SCORE"', score) + "\n")
    code, output, _ = prepare(str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and f"{path}:2, field 'answers.0.score'" in output


def test_hf_non_finite_score_is_rejected_with_row_and_field(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"id": [1, 2], "title": ["Q1", "Q2"], "answers": [
        [{"id": 10, "text": "A", "score": 1.0}], [{"id": 20, "text": "B", "score": float("nan")}]]}).save_to_disk(str(folder))
    code, output, _ = prepare(f"hf:{folder}", "--out", str(tmp_path / "o"))
    assert code == 2 and f"{folder}, field 'score': row 1: not a finite number: nan" in output


# ------------------------------------------------------------------ HTML cleaning


def test_html_nested_300_deep_keeps_what_follows():
    html = "<b>" * 300 + "deep" + "</b>" * 300 + "<p>after the deep part</p>"
    assert clean_html(html) == "deep\n\nafter the deep part"


def test_html_beyond_the_depth_limit_is_an_explicit_error_not_empty():
    with pytest.raises(HtmlLimitError, match="nested deeper than 2048"):
        clean_html("<b>" * 5000 + "deep")


def test_html_body_of_24_million_characters_is_not_truncated():
    text = clean_html("<p>" + "x" * 24_000_000 + "</p><p>end</p>")
    assert len(text) == 24_000_000 + len("\n\nend")


def test_deep_html_answer_through_the_cli_names_the_limit_and_is_counted(tmp_path):
    folder = site(tmp_path, dump_bytes(good_rows(2) + [a_row(4, body="&lt;i&gt;" * 5000 + "x")]))
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"{folder / 'Posts.xml'}:6, field 'Body': HTML cannot be cleaned whole: elements nested deeper than 2048" in output
    assert "empty after HTML cleaning" not in output
    code, output, stats = prepare(str(folder), "--out", str(tmp_path / "o2"), "--skip-bad")
    assert code == 0 and stats["skipped_bad"] == {"html_limit": 1} and written_answers(stats) == 2


# ------------------------------------------------------------------ invalid UTF-8 and malformed XML


def test_one_invalid_utf8_byte_costs_one_row_with_skip_bad(tmp_path):
    data = dump_bytes(good_rows(20)).replace(b"Answer 11.", b"Answer \xff11.")
    folder = site(tmp_path, data)
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and f"{folder / 'Posts.xml'}:13: bytes that are not valid UTF-8" in output
    code, output, stats = prepare(str(folder), "--out", str(tmp_path / "o2"), "--skip-bad")
    assert code == 0, output
    assert stats["skipped_bad"] == {"invalid_encoding": 1} and written_answers(stats) == 19


def test_malformed_xml_with_skip_bad_counts_the_rows_it_could_not_read(tmp_path):
    rows = good_rows(20)
    rows[5] = rows[5].replace(" />", " <oops/>")
    folder = site(tmp_path, dump_bytes(rows))
    code, output, stats = prepare(str(folder), "--out", str(tmp_path / "o"), "--skip-bad")
    assert code == 0, output
    # rows 1-5 read (question + 4 answers); the broken row and the 15 after it are lost and counted
    assert written_answers(stats) == 4 and stats["skipped_bad"] == {"malformed_xml": 16}
    example = stats["sources"]["x.stackexchange.com"]["skipped_examples"]["malformed_xml"][0]
    assert "16 of the file's 21 rows were not read" in example and "Posts.xml:8" in example


def test_xml_declared_in_another_encoding_is_not_checked_as_utf8(tmp_path):
    text = '<?xml version="1.0" encoding="ISO-8859-1"?>\n<posts>\n' + q_row(1, title="Caf\xe9") + "\n" + a_row(2) + "\n</posts>\n"
    code, output, stats = prepare(str(site(tmp_path, text.encode("latin-1"))), "--out", str(tmp_path / "o"))
    assert code == 0, output and written_answers(stats) == 1


# ------------------------------------------------------------------ number grammar


@pytest.mark.parametrize(("raw", "positive", "reason"), [
    ("1e3", False, "non_numeric"), ("1_000", False, "non_numeric"), ("\u0661\u0662", False, "non_numeric"),
    ("1e308", False, "non_numeric"), ("+5", False, "non_numeric"), (" 5", False, "non_numeric"),
    ("5.0", False, "non_numeric"), ("-4", True, "out_of_range"), ("0", True, "out_of_range"),
    (str(1 << 63), False, "out_of_range"), (str(-(1 << 63) - 1), False, "out_of_range"), ("9" * 5000, True, "out_of_range"),
])
def test_integer_grammar_rejects_lenient_numbers(raw, positive, reason):
    with pytest.raises(BadRow) as info:
        int_field({"Score": raw}, "Score", Path("Posts.xml"), 7, positive=positive)
    assert info.value.reason == reason and str(info.value).startswith("Posts.xml:7, field 'Score': ")


@pytest.mark.parametrize(("raw", "positive", "value"), [
    ("0", False, 0), ("-1", False, -1), (str((1 << 63) - 1), True, (1 << 63) - 1), (str(-(1 << 63)), False, -(1 << 63)),
    ("007", True, 7),
])
def test_integer_grammar_accepts_int64_decimals(raw, positive, value):
    assert int_field({"Score": raw}, "Score", Path("Posts.xml"), 7, positive=positive) == value


@pytest.mark.parametrize(("attr", "value", "message"), [
    ("Score", "1e3", "field 'Score': not an integer: '1e3'"),
    ("Id", "99999999999999999999", "field 'Id': an id must be a positive integer below 2^63"),
    ("Id", "-4", "field 'Id': an id must be a positive integer below 2^63: '-4'"),
    ("CreationDate", "yesterday", "field 'CreationDate': not an ISO 8601 date or date-time: 'yesterday'"),
])
def test_bad_numbers_and_dates_in_posts_xml_exit_2_or_are_counted(tmp_path, attr, value, message):
    row = a_row(4, **({"CreationDate": value} if attr == "CreationDate" else {}))
    if attr != "CreationDate":
        row = row.replace(f' {attr}="4"' if attr == "Id" else f' {attr}="1"', f' {attr}="{value}"', 1)
    folder = site(tmp_path, dump_bytes(good_rows(2) + [row]))
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and f"{folder / 'Posts.xml'}:6, {message}" in output
    code, output, stats = prepare(str(folder), "--out", str(tmp_path / "o2"), "--skip-bad")
    assert code == 0 and written_answers(stats) == 2 and sum(stats["skipped_bad"].values()) == 1


@pytest.mark.parametrize("created", ["1e20", "1e+20", '"1e20"', '"tomorrow"'])
def test_created_far_beyond_year_9999_is_an_error_in_ranked_qa_and_jsonl(tmp_path, created):
    ranked = tmp_path / "ranked_qa.json"
    ranked.write_text(json.dumps([ranked_item(1, [r_answer(10)], created="C")]).replace('"C"', created))
    code, output, _ = prepare(str(ranked), "--out", str(tmp_path / "o"))
    assert code == 2 and f"{ranked}, field 'question.created': item 0: not an ISO 8601" in output
    jsonl = tmp_path / "r.jsonl"
    record = {"id": "s:1", "title": "T", "answers": [{"id": "s:2", "text": "a", "score": 1}],
              "provenance": {"source": "x", "created": "C"}}
    jsonl.write_text(json.dumps(record).replace('"C"', created) + "\n")
    code, output, _ = prepare(str(jsonl), "--out", str(tmp_path / "o2"))
    assert code == 2 and f"{jsonl}:1, field 'provenance.created'" in output


# ------------------------------------------------------------------ empty answers are real data


def test_image_only_answer_is_counted_and_its_question_kept_by_default(tmp_path):
    image = "&lt;p&gt;&lt;img src=&quot;https://i.sstatic.net/x.png&quot;&gt;&lt;/p&gt;"
    folder = site(tmp_path, dump_bytes(good_rows(2) + [a_row(4, body=image), q_row(9), a_row(10, 9, body=image)]))
    out = tmp_path / "o"
    code, output, stats = prepare(str(folder), "--out", str(out))
    assert code == 0, output
    assert written_answers(stats) == 2 and stats["skipped_bad"] == {}
    assert stats["sources"]["x.stackexchange.com"]["notes"]["answer_empty_after_cleaning"] == 2
    assert "answers left out because their text is empty after HTML cleaning" in output and ": 2 " in output
    assert stats["total"]["questions"] == 2  # question 9 kept (with no answers: left out by --min-answers 1, counted)


def test_question_with_empty_body_stays_an_error(tmp_path):
    folder = site(tmp_path, dump_bytes([q_row(1, body="&lt;img src=&quot;x&quot;&gt;"), a_row(2)]))
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and "Posts.xml:3, field 'Body': question body is empty after HTML cleaning" in output


def test_kaggle_image_only_answer_is_counted(tmp_path):
    folder = kaggle(tmp_path, A_HEADER + "\n" + k_answer(2) + "\n" + k_answer(3, '"<img src=""x.png"">"') + "\n")
    code, output, stats = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 0 and written_answers(stats) == 1
    assert stats["sources"]["kaggle"]["notes"]["answer_empty_after_cleaning"] == 1


def test_utf8_check_across_chunks_names_the_right_line(tmp_path):
    """The checker reads 1 MiB chunks extended to whole lines: multi-byte characters at chunk ends stay
    whole, and line numbers in later chunks are right."""
    rows = [q_row(1)] + [a_row(i, body="&lt;p&gt;caf\u00e9 \u2014 " + "\u00e9" * 300 + f" {i}&lt;/p&gt;") for i in range(2, 4002)]
    data = dump_bytes(rows)
    assert len(data) > 2.5 * (1 << 20)
    target = data.index(b" 3500&lt;")
    data = data[:target] + b"\xc3" + data[target:]  # a lone lead byte on the line of answer 3500
    folder = site(tmp_path, data)
    line = data[:target].count(b"\n") + 1
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and f"Posts.xml:{line}: bytes that are not valid UTF-8" in output
    code, output, stats = prepare(str(folder), "--out", str(tmp_path / "o2"), "--skip-bad")
    assert code == 0 and written_answers(stats) == 3999 and stats["skipped_bad"] == {"invalid_encoding": 1}


def test_utf8_check_with_a_line_longer_than_a_chunk(tmp_path):
    rows = good_rows(2) + [a_row(4, body="\u00e9" * 1_500_000), a_row(5, body="x\u00e9y"), a_row(6)]
    data = dump_bytes(rows).replace("x\u00e9y".encode(), b"x\xe9y")  # a latin-1 byte on answer 5's line (line 7)
    folder = site(tmp_path, data)
    code, output, _ = prepare(str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and "Posts.xml:7: bytes that are not valid UTF-8" in output
    out = tmp_path / "o2"
    code, output, stats = prepare(str(folder), "--out", str(out), "--skip-bad")
    assert code == 0 and written_answers(stats) == 4 and stats["skipped_bad"] == {"invalid_encoding": 1}
    assert len(read_answers(out)["x.stackexchange.com:4"]) == 1_500_000


@pytest.mark.parametrize("name, content, options", [
    ("ranked_qa.json", '[{"question": {"id": 1, "title": "bad \\ud800 q"}, "answers": [{"id": 2, "text": "a", '
                       '"score": 1}]}, {"question": {"id": 3, "title": "good"}, "answers": [{"id": 4, "text": "b", '
                       '"score": 1}]}]', []),
    ("pairs.jsonl", '{"text1": "bad \\ud800", "text2": "x", "label": 1}\n{"text1": "a", "text2": "b", "label": 0}\n',
     ["--format", "pairs-jsonl"]),
])
def test_a_lone_surrogate_escape_is_bad_json_naming_the_line_not_a_traceback(tmp_path, name, content, options):
    """JSON's "\\ud800" decodes to text no UTF-8 writer takes: it was a serialization traceback after the read."""
    path = tmp_path / name
    path.write_text(content)
    code, output, _ = prepare(str(path), *options, "--out", str(tmp_path / "out"))
    assert code == 2 and f"{path}:1: invalid JSON" in " ".join(output.split()), output
    if name.endswith(".jsonl"):  # one bad line of many: skipped and counted
        code, output, stats = prepare(str(path), *options, "--skip-bad", "--out", str(tmp_path / "skipped"))
        assert code == 0 and "skipped bad records: invalid_record=1" in output, output
