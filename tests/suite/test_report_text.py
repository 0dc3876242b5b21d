"""Text read from the dataset and the run folders reaches report.html and report.md as text: never a script, a
``javascript:`` link or markup that changes the page."""

from __future__ import annotations

import re

import pytest
from suite_fakes import N_TEST, FakeRun, tiny_config

from qaembed.data.dataset import write_jsonl_records
from qaembed.records import Answer, Author, Provenance, QARecord
from qaembed.report import ReportPaths, build_report
from qaembed.report.document import Paragraph
from qaembed.report.html import render_html
from qaembed.report.tables import Table
from qaembed.suite.runner import run_suite

HOSTILE = "<script>alert(1)</script> \"q\" 's' & </textarea> | pipe |\n# heading [x](javascript:alert%281%29)"


def _record(split: str, index: int) -> QARecord:
    site = "beer.stackexchange.com"
    native = f"{split}{index}"
    return QARecord(
        id=f"{site}:{native}", title=f"T{native} {HOSTILE}", body="Body text.",
        answers=[Answer(id=f"{site}:{native}a{k}", text=f"answer {k} {HOSTILE}", score=3 - k) for k in range(3)],
        provenance=Provenance(
            source=f"stackexchange:{site}", site=site if index % 3 else f"evil.example/x) [y](javascript:z)\n# {site}",
            url="javascript:alert%28document.cookie%29" if index % 2 else f"https://{site}/questions/{native}",
            author=Author(name=f"u{index} {HOSTILE}",
                          url="javascript:alert%283%29" if index % 2 else f"https://{site}/users/{index}"),
            license=f"CC BY-SA 4.0 {HOSTILE}"),
    )


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    root = tmp_path_factory.mktemp("hostile")
    dataset = root / "prepared"
    dataset.mkdir()
    for split, count in (("train", 40), ("dev", 10), ("test", N_TEST)):
        write_jsonl_records(dataset / f"{split}.jsonl", [_record(split, i) for i in range(count)])
    run_suite(tiny_config(dataset, seeds=[0]), root / "suite", run_fn=FakeRun())
    return build_report(root / "suite")


def test_only_web_urls_become_links_in_the_html():
    page = render_html([Paragraph("[ok](https://a.example/x?a=1&b=2) [bad](javascript:alert%281%29) "
                                  "[data](data:text/html,hi)")], "t")
    assert '<a href="https://a.example/x?a=1&amp;b=2">ok</a>' in page
    assert "javascript:" not in page.split("<body>")[1].replace("[bad](javascript:alert%281%29)", "")
    assert 'href="javascript' not in page and 'href="data' not in page


def test_dataset_urls_that_are_not_web_urls_are_not_linked(hostile_report: ReportPaths):
    html, markdown = hostile_report.html.read_text(), hostile_report.markdown.read_text()
    assert "Example questions" in markdown
    assert 'href="javascript' not in html and "<script>" not in html
    assert "document.cookie" not in markdown and "alert%283%29" not in markdown
    assert "document.cookie" not in html and "alert%283%29" not in html


def test_markup_and_line_breaks_in_quoted_text_stay_text(hostile_report: ReportPaths):
    html, markdown = hostile_report.html.read_text(), hostile_report.markdown.read_text()
    assert 'href="javascript' not in html
    examples = markdown.split("## Example questions")[1].split("## Environment")[0]  # and the attribution
    assert "](javascript:" not in examples and "[y]" not in examples and "[x]" not in examples
    assert "\n# heading" not in examples and "\n# beer" not in examples  # a title's line break started a heading
    gains = examples.split("Largest gains:\n\n")[1].split("\n\n")[0]
    assert all(line.startswith("- ") for line in gains.splitlines())  # one line per quoted question


def test_html_in_quoted_text_is_not_raw_html_in_the_markdown(hostile_report: ReportPaths):
    markdown = hostile_report.markdown.read_text()
    assert not re.search(r"(?<!\\)<(script|/textarea)>", markdown)  # Markdown viewers would render raw HTML
    assert "\\<script>alert(1)\\</script>" in markdown  # shown as written
    assert "(< MDE)" in markdown or "p < 0.05" in markdown  # a < that starts no tag is left alone


def test_a_table_cell_stays_on_its_row_in_the_markdown():
    table = Table("t", ["run", "error"], [["a", "RuntimeError: x,\r\n\"q\" a|b\rc\nd"]])
    lines = table.to_markdown().splitlines()  # splitlines: \r and \r\n end a line, as in Markdown
    assert len(lines) == 3 and lines[2] == '| a | RuntimeError: x, "q" a\\|b c d |'


def test_results_csv_counts_are_integers(hostile_report: ReportPaths):
    lines = hostile_report.csv.read_text().splitlines()
    header = lines[0].split(",")
    infonce = next(line for line in lines if line.startswith("infonce/seed0,")).split(",")
    assert infonce[header.index("steps")] == "4" and infonce[header.index("tokens")] == "1600"  # was 4.0, 1600.0
    baseline = next(line for line in lines if line.startswith("baseline,")).split(",")
    assert baseline[header.index("steps")] == ""
