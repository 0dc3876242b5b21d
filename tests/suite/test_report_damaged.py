"""Rebuilding the report from a damaged suite folder: every problem is a DataError naming the file (and line or
field), never a traceback, and no run is silently left out of the analysis."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from suite_fakes import FakeRun, tiny_config, write_tiny_dataset

from qaembed.errors import DataError
from qaembed.report import build_report
from qaembed.suite.runner import run_suite

RUN = Path("runs/infonce/seed0")


@pytest.fixture(scope="module")
def finished_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("damaged")
    dataset = write_tiny_dataset(root / "prepared")
    run_suite(tiny_config(dataset, seeds=[0]), root / "suite", run_fn=FakeRun())
    return root / "suite"


@pytest.fixture()
def suite(finished_suite: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "suite"
    shutil.copytree(finished_suite, copy)
    return copy


@pytest.mark.parametrize(("line", "message"), [
    ("[1, 2]", r"metrics.jsonl:7: a training log record must be a JSON object, got list"),
    ('{"loss": 0.5}', r"metrics.jsonl:7, field 'step': a training log record without a step"),
    ('{"step": 5, "loss": "x"}', r"metrics.jsonl:7, field 'loss': must be a number, got str 'x'"),
    ('{"step": 5, "texts": true}', r"metrics.jsonl:7, field 'texts': must be a number, got bool True"),
])
def test_a_training_log_line_that_is_not_a_record_of_numbers_is_named(suite: Path, line: str, message: str):
    with (suite / RUN / "train" / "metrics.jsonl").open("a") as fh:
        fh.write(line + "\n")
    with pytest.raises(DataError, match=message):
        build_report(suite)


def test_a_diverged_loss_in_the_training_log_is_plotted(suite: Path):
    with (suite / RUN / "train" / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 5, "loss": NaN}\n')
    assert build_report(suite).html.is_file()


def _edit_per_question(suite: Path, edit) -> None:
    path = suite / RUN / "eval" / "per_question.parquet"
    table = pd.read_parquet(path)
    edit(table)
    table.to_parquet(path)


def test_an_infinite_per_question_value_is_named(suite: Path):
    _edit_per_question(suite, lambda t: t.iloc.__setitem__((3, 0), np.inf))
    with pytest.raises(DataError, match=r"per_question.parquet, field 'retrieval/graded_ndcg@10': 1 infinite value"
                                        r"\(s\) \(first at question 'beer.stackexchange.com:test3'\)"):
        build_report(suite)


def test_a_per_question_column_of_text_is_named(suite: Path):
    _edit_per_question(suite, lambda t: t.__setitem__("retrieval/ndcg@10", "high"))
    with pytest.raises(DataError, match=r"per_question.parquet, field 'retrieval/ndcg@10': holds .* not numbers"):
        build_report(suite)


def test_a_question_listed_twice_is_named(suite: Path):
    path = suite / RUN / "eval" / "per_question.parquet"
    table = pd.read_parquet(path)
    pd.concat([table, table.iloc[:2]]).to_parquet(path)
    with pytest.raises(DataError, match=r"per_question.parquet: 2 question id\(s\) appear more than once"):
        build_report(suite)


@pytest.mark.parametrize(("keep", "message"), [
    (slice(0, 60), r"its 60 test questions are not those of run baseline \(120; 60 of them missing here, 0 here"),
    (slice(None), r"its 120 test questions are not those of run baseline \(120; 120 of them missing here, 120 here"),
])
def test_a_run_evaluated_on_other_questions_is_named_not_left_out(suite: Path, keep: slice, message: str):
    path = suite / RUN / "eval" / "per_question.parquet"
    table = pd.read_parquet(path).iloc[keep]
    if keep == slice(None):
        table.index = pd.Index([f"other:{i}" for i in range(len(table))], name=table.index.name)
    table.to_parquet(path)
    with pytest.raises(DataError, match=r"runs/infonce/seed0/eval/per_question.parquet: " + message):
        build_report(suite)


@pytest.mark.parametrize(("field", "value"), [("summary.retrieval/ndcg@10", "nan"), ("wall_time_s", "inf"),
                                              ("texts_per_s", "-inf")])
def test_a_non_finite_number_in_a_run_status_is_named(suite: Path, field: str, value: str):
    path = suite / RUN / "status.json"
    record = json.loads(path.read_text())
    if field.startswith("summary."):
        record["summary"][field.removeprefix("summary.")] = float(value)
    else:
        record[field] = float(value)
    path.write_text(json.dumps(record))  # NaN, Infinity: what Python's json writes and reads back
    with pytest.raises(DataError, match=rf"seed0/status.json, field '{field}': must be a finite number, got {value}"):
        build_report(suite)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("data", [1], r"data: Input should be a valid dictionary"),
    ("environment", "x", r"environment: Input should be a valid dictionary"),
    ("base_model_notes", 5, r"base_model_notes: Input should be a valid list"),
    ("base_model_notes", "abc", r"base_model_notes: Input should be a valid list"),  # was three one-letter notes
    ("data.counts", "x", r"data.counts: Input should be a valid dictionary"),
    ("data.dataset_dir", 5, r"data.dataset_dir: Input should be a valid string"),
    ("data.kind", "triples", r"data.kind: Input should be 'qa' or 'pairs'"),
    ("environment.versions", ["torch"], r"environment.versions: Input should be a valid dictionary"),
])
def test_a_suite_record_part_of_the_wrong_type_is_named(suite: Path, key: str, value, message: str):
    path = suite / "suite.json"
    record = json.loads(path.read_text())
    *parents, last = key.split(".")
    target = record
    for part in parents:
        target = target[part]
    target[last] = value
    path.write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"suite.json: suite record written by an incompatible qaembed .*: " + message):
        build_report(suite)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["summary"].update({"retrieval/ndcg@10": "x"}),
     r"summary.json, field 'summary.retrieval/ndcg@10': must be a number, got str 'x'"),  # was a ValueError
    (lambda r: r.update(summary=[1]), r"summary.json, field 'summary': must be an object, got list"),
    (lambda r: r["counts"].update({"retrieval/questions": None}),
     r"summary.json, field 'counts.retrieval/questions': must be an integer, got NoneType None"),  # was a TypeError
    (lambda r: r["counts"].update({"retrieval/questions": 2.5}), r"field 'counts.retrieval/questions': must be an"),
    (lambda r: r.update(info="x"), r"summary.json, field 'info': must be an object, got str"),
])
def test_a_run_summary_of_the_wrong_type_is_named(suite: Path, edit, message: str):
    path = suite / RUN / "eval" / "summary.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(DataError, match=message):
        build_report(suite)


def test_a_run_summary_that_is_not_an_object_is_named(suite: Path):
    (suite / RUN / "eval" / "summary.json").write_text("[1]")
    with pytest.raises(DataError, match=r"summary.json: must be a JSON object, got list"):
        build_report(suite)
