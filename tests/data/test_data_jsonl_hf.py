"""Canonical JSONL and Hugging Face dataset adapters."""

import pytest

from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.dataset import write_jsonl_records
from qaembed.data.hf import HuggingFaceDataset, parse_column_mapping
from qaembed.data.jsonl import CanonicalJsonl
from qaembed.errors import ConfigError, DataError
from qaembed.records import Answer, QARecord


def _record(i: int) -> QARecord:
    return QARecord(id=f"s:{i}", title=f"q{i}", answers=[Answer(id=f"s:a{i}", text="yes", score=i)])


def test_jsonl_file_and_prepared_folder_round_trip(tmp_path):
    write_jsonl_records(tmp_path / "train.jsonl", [_record(1), _record(2)])
    write_jsonl_records(tmp_path / "test.jsonl", [_record(3)])
    assert list(CanonicalJsonl(tmp_path / "train.jsonl").records()) == [_record(1), _record(2)]
    assert [r.id for r in CanonicalJsonl(tmp_path).records()] == ["s:1", "s:2", "s:3"]


def test_jsonl_bad_line_names_line_and_field_or_is_skipped(tmp_path):
    path = tmp_path / "x.jsonl"
    write_jsonl_records(path, [_record(1)])
    with path.open("a") as fh:
        fh.write('{"id": "s:2", "answers": []}\n')
        fh.write('{"id": "s:3", "title": "t", "answers": [{"id": "a", "text": " ", "score": 1}]}\n')
    with pytest.raises(DataError) as info:
        list(CanonicalJsonl(path).records())
    assert (info.value.line, info.value.field) == (2, "title")
    adapter = CanonicalJsonl(path, policy=BadRecordPolicy(skip=True))
    assert [r.id for r in adapter.records()] == ["s:1"]
    assert adapter.policy.counts == {"invalid_record": 1, "empty_body": 1}


@pytest.fixture(scope="module")
def hf_dataset_dir(tmp_path_factory):
    import datasets

    rows = [
        {"qid": 1, "question_title": "How?", "question_body": "<p>Like <b>this</b>?</p>", "labels": ["x", "y"],
         "replies": [{"rid": 10, "body": "<p>So.</p>", "votes": 3, "accepted": True},
                     {"rid": 11, "body": "Not so.", "votes": -1, "accepted": False}]},
        {"qid": 2, "question_title": "Why?", "question_body": "", "labels": [],
         "replies": [{"rid": 12, "body": "Because.", "votes": 0, "accepted": False}]},
    ]
    path = tmp_path_factory.mktemp("hf") / "toy_qa"
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


MAPPING = "id=qid,title=question_title,body=question_body,tags=labels,answers=replies,answer_id=rid,answer_text=body,answer_score=votes"


def test_hf_dataset_with_column_mapping(hf_dataset_dir):
    adapter = HuggingFaceDataset(str(hf_dataset_dir), columns=parse_column_mapping(MAPPING))
    first, second = list(adapter.records())
    assert first.id == "toy_qa:1" and first.body == "Like this?" and first.tags == ["x", "y"]
    assert [(a.id, a.text, a.score, a.accepted) for a in first.answers] == [
        ("toy_qa:10", "So.", 3, True), ("toy_qa:11", "Not so.", -1, False)]
    assert second.body == "" and second.answers[0].score == 0


def test_hf_missing_mapped_column_is_an_error(hf_dataset_dir):
    with pytest.raises(DataError, match="no column"):
        list(HuggingFaceDataset(str(hf_dataset_dir)).records())


def test_column_mapping_rejects_unknown_fields():
    with pytest.raises(ConfigError, match="unknown field 'question'"):
        parse_column_mapping("question=q")


def test_hf_sequence_of_structs_read_as_dict_of_lists(tmp_path):
    import datasets

    features = datasets.Features({
        "id": datasets.Value("int64"), "title": datasets.Value("string"),
        "answers": datasets.Sequence({"id": datasets.Value("int64"), "text": datasets.Value("string"),
                                      "score": datasets.Value("int64")}),
    })
    rows = {"id": [1], "title": ["t"], "answers": [{"id": [5, 6], "text": ["x", "y"], "score": [2, 1]}]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "seq"))
    (record,) = HuggingFaceDataset(str(tmp_path / "seq")).records()
    assert [(a.id, a.text, a.score) for a in record.answers] == [("seq:5", "x", 2), ("seq:6", "y", 1)]
