"""``prepare --split by-date``: test = questions created on/after a day; on real dumps and bad input."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from qaembed.data.dataset import SPLITS, read_split, write_jsonl_records
from qaembed.data.prepare import PrepareConfig, created_day, prepare_dataset
from qaembed.errors import ConfigError
from qaembed.records import Answer, Provenance, QARecord
from qaembed.suite.dataset import REQUEST_FILE, resolve_suite_data

TEST_AFTER = date(2022, 12, 1)


@pytest.fixture(scope="module")
def beer_genai(shared_data) -> list[str]:
    return [str(shared_data / "stackexchange" / s) for s in ("beer.stackexchange.com", "genai.stackexchange.com")]


def _days(dataset: Path) -> dict[str, list[date]]:
    return {split: [created_day(r.provenance.created) for r in read_split(dataset, split)] for split in SPLITS}


def test_by_date_puts_exactly_the_newer_questions_in_test(beer_genai, tmp_path, qaembed_cli):
    out = tmp_path / "ds"
    result = qaembed_cli("data", "prepare", *beer_genai, "--out", out, "--split", "by-date",
                         "--test-after", TEST_AFTER.isoformat())
    assert result.exit_code == 0, result.stderr
    days = _days(out)
    assert days["test"] and all(d >= TEST_AFTER for d in days["test"])
    assert days["train"] and days["dev"] and all(d < TEST_AFTER for d in days["train"] + days["dev"])
    test_sites = {r.provenance.site for r in read_split(out, "test")}
    assert test_sites == {"genai.stackexchange.com"}  # genai is entirely newer than 2021, beer older than the day
    assert len(days["test"]) == 142  # genai's questions with an answer (shared/data/README.md)
    rest = len(days["train"]) + len(days["dev"])
    assert abs(len(days["dev"]) / rest - 1 / 9) < 0.04  # seeded share dev / (train + dev) of 0.8,0.1,0.1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"] == {"mode": "by-date", "test_after": "2022-12-01", "seed": 13,
                                 "dev_share_of_rest": pytest.approx(1 / 9)}
    assert manifest["config"]["split_mode"] == "by-date" and manifest["config"]["test_after"] == "2022-12-01"


def test_dev_after_splits_the_rest_by_date_too(beer_genai, tmp_path):
    dev_after = date(2016, 1, 1)  # beer has questions from 2014 to 2017
    prepare_dataset(beer_genai, tmp_path, PrepareConfig(split_mode="by-date", test_after=TEST_AFTER,
                                                        dev_after=dev_after), progress=False)
    days = _days(tmp_path)
    assert days["train"] and all(d < dev_after for d in days["train"])
    assert days["dev"] and all(dev_after <= d < TEST_AFTER for d in days["dev"])
    assert all(d >= TEST_AFTER for d in days["test"])
    assert json.loads((tmp_path / "manifest.json").read_text())["split"] == {
        "mode": "by-date", "test_after": "2022-12-01", "dev_after": "2016-01-01"}


def _record(i: int, created: str | None) -> QARecord:
    return QARecord(id=f"x:{i}", title=f"question {i}", answers=[Answer(id=f"x:a{i}", text="an answer", score=1)],
                    provenance=Provenance(source="test", created=created))


def test_a_question_without_creation_date_is_an_error_or_a_counted_skip(tmp_path, qaembed_cli):
    source = tmp_path / "records.jsonl"
    write_jsonl_records(source, [_record(1, "2023-05-01T10:00:00"), _record(2, None), _record(3, "2020-01-01")])
    out = tmp_path / "out"
    result = qaembed_cli("data", "prepare", source, "--out", out, "--split", "by-date", "--test-after", "2022-12-01")
    assert result.exit_code == 2
    assert (f"error: {source}, field 'provenance.created': question 'x:2' has no creation date "
            "(needed by --split by-date)") in result.stderr
    assert not out.exists()
    stats = prepare_dataset([str(source)], out, PrepareConfig(split_mode="by-date", test_after=TEST_AFTER,
                                                              skip_bad=True), progress=False)
    assert stats["skipped_bad"] == {"missing_created": 1}
    assert [r.id for r in read_split(out, "test")] == ["x:1"]
    assert sorted(r.id for s in ("train", "dev") for r in read_split(out, s)) == ["x:3"]


def test_a_timezone_offset_counts_in_utc():
    record = _record(1, "2022-12-01T01:30:00+02:00")  # 2022-11-30 23:30 UTC
    assert created_day(record.provenance.created) == date(2022, 11, 30)


@pytest.mark.parametrize(("args", "message"), [
    (["--split", "by-date"], "error: --split by-date: split_mode 'by-date' needs test_after (--test-after YYYY-MM-DD)"),
    (["--split", "by-date", "--test-after", "2022-12-1x"], "error: --test-after: expected a day YYYY-MM-DD, got '2022-12-1x'"),
    (["--split", "by-date", "--test-after", "2022-12-01", "--dev-after", "2023-01-01"],
     "error: --split by-date: dev_after (2023-01-01) must be before test_after (2022-12-01)"),
    (["--test-after", "2022-12-01"], "error: --split 0.8,0.1,0.1: test_after / dev_after need split_mode 'by-date'"),
    (["--split", "tset"], "error: --split: expected three fractions TRAIN,DEV,TEST such as 0.8,0.1,0.1, or by-date, "
                          "got 'tset'"),
])
def test_bad_date_split_options_exit_2_naming_the_option(args, message, tmp_path, qaembed_cli):
    result = qaembed_cli("data", "prepare", "x.jsonl", "--out", tmp_path / "out", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_suite_data_takes_a_prepare_config_and_keys_reuse_on_it(tmp_path):
    source = tmp_path / "records.jsonl"
    write_jsonl_records(source, [_record(i, f"20{10 + i}-06-01") for i in range(10)])
    by_date = PrepareConfig(split_mode="by-date", test_after=date(2017, 1, 1), dev_after=date(2015, 1, 1))
    data = resolve_suite_data(str(source), tmp_path / "suite", by_date, progress=False)
    assert data.counts == {"train": 5, "dev": 2, "test": 3} and data.notice is None
    request = json.loads((tmp_path / "suite" / "data" / REQUEST_FILE).read_text())
    assert request["prepare"]["split_mode"] == "by-date" and request["prepare"]["test_after"] == "2017-01-01"
    again = resolve_suite_data(str(source), tmp_path / "suite", by_date, progress=False)
    assert again.hash == data.hash
    random = resolve_suite_data(str(source), tmp_path / "suite", progress=False)  # other options: prepared again
    assert sum(random.counts.values()) == 10 and random.hash != data.hash
    assert json.loads((tmp_path / "suite" / "data" / REQUEST_FILE).read_text())["prepare"]["split_mode"] == "random"
    with pytest.raises(ConfigError, match=r"is a prepared dataset .*\(split_mode=by-date, test_after=2017-01-01"):
        resolve_suite_data(str(tmp_path / "suite" / "data"), tmp_path / "other", by_date, progress=False)


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="needs test_after"):
        PrepareConfig(split_mode="by-date")
    with pytest.raises(ValueError, match="split_mode"):
        PrepareConfig(split_mode="by_date", test_after=TEST_AFTER)
    with pytest.raises(ValueError, match="both are 0"):
        PrepareConfig(split_mode="by-date", test_after=TEST_AFTER, split=(0, 0, 1))
    assert PrepareConfig(split_mode="by-date", test_after="2022-12-01").test_after == TEST_AFTER
