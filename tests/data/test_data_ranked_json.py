"""The seed project's ranked_qa.json adapter."""

import json
from pathlib import Path

import pytest

from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.ranked_json import RankedQaJson
from qaembed.errors import DataError

FIXTURE = Path(__file__).parent / "fixtures" / "ranked_qa.json"


def test_liberal_key_names_are_read():
    records = list(RankedQaJson(FIXTURE).records())
    first, second = records
    assert first.id == "ranked_qa:101" and first.body == "In Python, please." and first.tags == ["python", "list"]
    assert [(a.id, a.text, a.score, a.accepted) for a in first.answers] == [
        ("ranked_qa:201", "Use reversed(xs).", 10, True), ("ranked_qa:202", "xs[::-1]", 4, False)]
    assert second.id == "ranked_qa:q2" and second.body == "Plain text body." and second.tags == ["python"]
    assert second.provenance.created == "2010-01-01T00:00:00"  # Unix timestamp converted
    assert second.answers[0].text == "An immutable sequence."


def _write(tmp_path, items):
    path = tmp_path / "ranked_qa.json"
    path.write_text(json.dumps(items))
    return path


def test_missing_answer_score_names_item_and_field(tmp_path):
    items = json.loads(FIXTURE.read_text())
    del items[1]["answers"][0]["score"]
    with pytest.raises(DataError, match="item 1: missing") as info:
        list(RankedQaJson(_write(tmp_path, items)).records())
    assert info.value.field == "answers[0].score"


def test_missing_question_id_and_skip_bad(tmp_path):
    items = json.loads(FIXTURE.read_text())
    del items[0]["question"]["id"]
    path = _write(tmp_path, items)
    with pytest.raises(DataError) as info:
        list(RankedQaJson(path).records())
    assert info.value.field == "question.id" and "item 0" in str(info.value)
    adapter = RankedQaJson(path, policy=BadRecordPolicy(skip=True))
    assert [r.id for r in adapter.records()] == ["ranked_qa:q2"]
    assert adapter.policy.counts == {"missing_field": 1}


def test_duplicate_ids_and_non_numeric_scores_are_bad(tmp_path):
    items = json.loads(FIXTURE.read_text())
    with pytest.raises(DataError, match="duplicate id"):
        list(RankedQaJson(_write(tmp_path, [items[0], items[0]])).records())
    items[0]["answers"][0]["score"] = "ten"
    with pytest.raises(DataError, match="not a number"):
        list(RankedQaJson(_write(tmp_path, items)).records())


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "ranked_qa.json"
    path.write_text('[\n{"question": }\n]')
    with pytest.raises(DataError, match="invalid JSON") as info:
        list(RankedQaJson(path).records())
    assert info.value.line == 2
