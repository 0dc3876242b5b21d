import pytest

from qaembed.records import Answer, QARecord, license_for_date, question_text


def test_license_boundaries():
    assert license_for_date("2011-04-07T23:59:59") == "CC BY-SA 2.5"
    assert license_for_date("2011-04-08T00:00:00") == "CC BY-SA 3.0"
    assert license_for_date("2018-05-01T23:59:59") == "CC BY-SA 3.0"
    assert license_for_date("2018-05-02T00:00:00.000") == "CC BY-SA 4.0"
    assert license_for_date(None) is None


def test_ranked_answers_break_ties_by_accepted_then_id():
    r = QARecord(id="q", title="t", answers=[
        Answer(id="b", text="x", score=2), Answer(id="a", text="y", score=2),
        Answer(id="c", text="z", score=2, accepted=True), Answer(id="d", text="w", score=5)])
    assert [a.id for a in r.ranked_answers()] == ["d", "c", "a", "b"]


def test_unknown_record_field_is_rejected():
    with pytest.raises(ValueError, match="bogus"):
        QARecord(id="q", title="t", bogus=1)


def test_question_text_modes():
    r = QARecord(id="q", title="Title", body="Body")
    assert question_text(r) == "Title\n\nBody"
    assert question_text(r, "body") == "Body"
    with pytest.raises(ValueError, match="empty body"):
        question_text(QARecord(id="q", title="T"), "body")
