"""Stack Exchange dump adapter: records, provenance, streaming grouping, bad input."""

from pathlib import Path

import pytest

from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.stackexchange import StackExchangeDump
from qaembed.errors import DataError

FIXTURE_SITE = Path(__file__).parent / "fixtures" / "stackexchange" / "example.stackexchange.com"
SITE = "example.stackexchange.com"


def _records(folder=FIXTURE_SITE, skip=False):
    adapter = StackExchangeDump(folder, policy=BadRecordPolicy(skip=skip), progress=False)
    return adapter, list(adapter.records())


def test_questions_are_grouped_with_their_answers_in_id_order():
    adapter, records = _records()
    assert [r.id for r in records] == [f"{SITE}:1", f"{SITE}:4", f"{SITE}:7"]
    by_id = {r.id: r for r in records}
    # answer 3 comes before its question in the file
    assert [a.id for a in by_id[f"{SITE}:1"].answers] == [f"{SITE}:2", f"{SITE}:3"]
    assert [a.score for a in by_id[f"{SITE}:1"].answers] == [3, 7]
    assert by_id[f"{SITE}:7"].answers == []
    assert adapter.notes["orphan_answers"] == 1
    assert adapter.notes["ignored_post_type_5"] == 1


def test_text_fields_are_clean_and_tags_parse_in_both_formats():
    _, records = _records()
    first, second = records[0], records[1]
    assert first.title == "Which glass for stout & porter <3?"
    assert first.body == "I pour stout & porter.\n\npour(angle=45)\n  wait(2)\n\nWhich glass?"
    assert first.tags == ["glassware", "stout"]
    assert second.tags == ["lager", "style"]
    assert first.score == 12 and records[2].score == -1


def test_accepted_flag_comes_from_the_question():
    _, records = _records()
    assert {a.id: a.accepted for a in records[0].answers} == {f"{SITE}:2": False, f"{SITE}:3": True}
    assert not any(a.accepted for a in records[1].answers)


def test_provenance_urls_authors_and_license_by_date():
    _, records = _records()
    question = records[0]
    prov = question.provenance
    assert prov.url == f"https://{SITE}/questions/1"
    assert prov.native_id == "1" and prov.site == SITE and prov.source == f"stackexchange:{SITE}"
    assert prov.author.name == "Ada" and prov.author.url == f"https://{SITE}/users/10"
    assert prov.license == "CC BY-SA 2.5"  # 2010
    early, late = question.answers
    assert early.provenance.license == "CC BY-SA 3.0"  # 2012
    assert late.provenance.license == "CC BY-SA 4.0"  # 2019
    assert late.provenance.url == f"https://{SITE}/a/3"
    assert late.provenance.author.name == "Bjørn"  # from Users.xml (entity in the name)
    # no OwnerUserId: the display name stored on the post, no profile link
    assert early.provenance.author.id is None and early.provenance.author.name == "anonymous brewer"
    assert early.provenance.author.url is None
    # a user missing from Users.xml keeps id and url, no name
    assert records[2].provenance.author.name is None and records[2].provenance.author.url == f"https://{SITE}/users/12"


def test_without_users_xml_authors_have_ids_only(tmp_path):
    folder = tmp_path / SITE
    folder.mkdir()
    (folder / "Posts.xml").write_bytes((FIXTURE_SITE / "Posts.xml").read_bytes())
    _, records = _records(folder)
    assert records[0].provenance.author.id == "10" and records[0].provenance.author.name is None


GOOD_QUESTION = '<row Id="1" PostTypeId="1" Score="1" Title="T" Body="&lt;p&gt;q&lt;/p&gt;" />'
GOOD_ANSWER = '<row Id="2" PostTypeId="2" ParentId="1" Score="1" Body="&lt;p&gt;a&lt;/p&gt;" />'

# (case, third row (on line 5 of the file), reason, field)
BAD_ROWS = [
    ("missing Id", '<row PostTypeId="2" ParentId="1" Score="1" Body="x" />', "missing_field", "Id"),
    ("missing PostTypeId", '<row Id="3" ParentId="1" Score="1" Body="x" />', "missing_field", "PostTypeId"),
    ("missing ParentId", '<row Id="3" PostTypeId="2" Score="1" Body="x" />', "missing_field", "ParentId"),
    ("missing Score", '<row Id="3" PostTypeId="2" ParentId="1" Body="x" />', "missing_field", "Score"),
    ("non-numeric Score", '<row Id="3" PostTypeId="2" ParentId="1" Score="lots" Body="x" />', "non_numeric", "Score"),
    ("duplicate Id", '<row Id="2" PostTypeId="2" ParentId="1" Score="0" Body="x" />', "duplicate_id", "Id"),
    # an empty *answer* body is real data (counted note, see test_data_hardening.py); an empty question body is bad
    ("empty question body", '<row Id="3" PostTypeId="1" Score="0" Title="T" Body="&lt;p&gt; &lt;/p&gt;" />',
     "empty_body", "Body"),
    ("missing title", '<row Id="3" PostTypeId="1" Score="0" Body="x" />', "missing_field", "Title"),
]


def _write_site(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / SITE
    folder.mkdir(exist_ok=True)
    (folder / "Posts.xml").write_text(text, encoding="utf-8")
    return folder


def _dump(*rows: str, close: bool = True) -> str:
    body = "".join(f"  {row}\n" for row in rows)
    return '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + body + ("</posts>\n" if close else "")


@pytest.mark.parametrize(("case", "row", "reason", "field"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_row_is_an_error_naming_file_line_and_field(tmp_path, case, row, reason, field):
    folder = _write_site(tmp_path, _dump(GOOD_QUESTION, GOOD_ANSWER, row))
    with pytest.raises(DataError) as info:
        _records(folder)
    error = info.value
    assert error.path == str(folder / "Posts.xml") and error.line == 5 and error.field == field
    assert f"Posts.xml:5, field '{field}'" in str(error)


@pytest.mark.parametrize(("case", "row", "reason", "field"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_row_is_skipped_and_counted_with_skip_bad(tmp_path, case, row, reason, field):
    folder = _write_site(tmp_path, _dump(GOOD_QUESTION, GOOD_ANSWER, row))
    adapter, records = _records(folder, skip=True)
    assert adapter.policy.counts == {reason: 1}
    assert [r.id for r in records] == [f"{SITE}:1"]
    assert [a.id for a in records[0].answers] == [f"{SITE}:2"]  # the good answer, not the bad row
    assert "Posts.xml:5" in adapter.policy.summary()["examples"][reason][0]


def test_truncated_xml_is_an_error_with_a_line(tmp_path):
    text = _dump(GOOD_QUESTION, GOOD_ANSWER, close=False) + '  <row Id="3" PostTypeId="2" Par'
    folder = _write_site(tmp_path, text)
    with pytest.raises(DataError, match="malformed or truncated XML") as info:
        _records(folder)
    assert info.value.path.endswith("Posts.xml") and info.value.line == 5


def test_truncated_xml_with_skip_bad_keeps_what_parsed_and_counts_one_error(tmp_path):
    text = _dump(GOOD_QUESTION, GOOD_ANSWER, close=False) + '  <row Id="3" PostTypeId="2" Par'
    adapter, records = _records(_write_site(tmp_path, text), skip=True)
    assert adapter.policy.counts == {"malformed_xml": 1}
    assert len(records) == 1 and len(records[0].answers) == 1


def test_malformed_xml_names_the_line(tmp_path):
    folder = _write_site(tmp_path, _dump(GOOD_QUESTION, '<row Id="2" PostTypeId="2" ParentId="1" Score="1" Body="a" <oops/>'))
    with pytest.raises(DataError) as info:
        _records(folder)
    assert info.value.line == 4


def test_missing_posts_xml_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no Posts.xml"):
        StackExchangeDump(tmp_path)


def test_large_file_path_reads_through_the_progress_bar(monkeypatch, capsys):
    from qaembed.data import adapter as adapter_module

    monkeypatch.setattr(adapter_module, "PROGRESS_MIN_BYTES", 0)
    source = StackExchangeDump(FIXTURE_SITE, progress=True)
    assert [r.id for r in source.records()] == [f"{SITE}:1", f"{SITE}:4", f"{SITE}:7"]
    assert "Posts.xml" in capsys.readouterr().err  # the bar's description
