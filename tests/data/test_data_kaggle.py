"""Kaggle StackSample CSV-pair adapter."""

import shutil
from pathlib import Path

import pytest

from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.kaggle import KaggleCsvPair
from qaembed.errors import DataError

FIXTURE = Path(__file__).parent / "fixtures" / "kaggle"


def _records(folder=FIXTURE, skip=False, encoding=None):
    adapter = KaggleCsvPair(folder, encoding=encoding, policy=BadRecordPolicy(skip=skip), progress=False)
    return adapter, list(adapter.records())


def test_questions_answers_and_tags_are_joined():
    adapter, records = _records()
    assert [r.id for r in records] == ["stackoverflow.com:80", "stackoverflow.com:90", "stackoverflow.com:120"]
    first, second, third = records
    assert first.tags == ["flex", "actionscript-3"] and third.tags == []
    # multi-line quoted body, code block kept
    assert first.body == "I've written a database generation script in SQL.\n\nCREATE TABLE t (\n  id INT\n);"
    assert [(a.id, a.score) for a in second.answers] == [("stackoverflow.com:92", 13), ("stackoverflow.com:269", 4)]
    assert first.answers[0].text.startswith("I wound up using this.")
    assert third.provenance.author is None  # OwnerUserId NA
    assert first.provenance.url == "https://stackoverflow.com/questions/80"
    assert first.provenance.license == "CC BY-SA 2.5"
    assert adapter.notes["orphan_answers"] == 0


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "kaggle"
    shutil.copytree(FIXTURE, folder)
    return folder


def test_invalid_utf8_is_an_error_naming_file_and_line(tmp_path):
    folder = _copy(tmp_path)
    with (folder / "Answers.csv").open("ab") as fh:
        fh.write("300,7,2008-08-02T00:00:00Z,80,2,<p>caf\xe9 answer</p>\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8") as info:
        _records(folder)
    assert info.value.path == str(folder / "Answers.csv") and info.value.line == 5


def test_invalid_utf8_row_is_skipped_with_skip_bad(tmp_path):
    folder = _copy(tmp_path)
    with (folder / "Answers.csv").open("ab") as fh:
        fh.write("300,7,2008-08-02T00:00:00Z,80,2,<p>caf\xe9 answer</p>\n".encode("latin-1"))
    adapter, records = _records(folder, skip=True)
    assert adapter.policy.counts == {"invalid_encoding": 1}
    assert "Answers.csv:5: bytes that are not valid utf-8" in adapter.policy.summary()["examples"]["invalid_encoding"][0]
    assert len(records[0].answers) == 1


def test_latin1_files_read_with_the_given_encoding(tmp_path):
    folder = _copy(tmp_path)
    with (folder / "Answers.csv").open("ab") as fh:
        fh.write("300,7,2008-08-02T00:00:00Z,80,2,<p>caf\xe9 answer</p>\n".encode("latin-1"))
    _, records = _records(folder, encoding="latin-1")
    assert records[0].answers[-1].text == "café answer"


def test_non_numeric_score_names_row_and_field(tmp_path):
    folder = _copy(tmp_path)
    text = (folder / "Answers.csv").read_text().replace("90,13,", "90,many,")
    (folder / "Answers.csv").write_text(text)
    with pytest.raises(DataError) as info:
        _records(folder)
    assert (info.value.line, info.value.field) == (2, "Score")


def test_missing_column_is_an_error(tmp_path):
    folder = _copy(tmp_path)
    text = (folder / "Answers.csv").read_text().replace("ParentId", "Parent")
    (folder / "Answers.csv").write_text(text)
    with pytest.raises(DataError, match="missing column"):
        _records(folder)
