"""prepare_dataset: split by question (deterministic, order-stable), filters, stats, manifest, bad input."""

import json
import shutil
from pathlib import Path

import pytest

from qaembed.data.dataset import SPLITS, read_split
from qaembed.data.prepare import PrepareConfig, assign_split, prepare_dataset, split_key
from qaembed.data.stats import compute_stats, dataset_stats
from qaembed.errors import DataError
from qaembed.records import Answer, QARecord

FIXTURES = Path(__file__).parent / "fixtures"
SE_SITE = FIXTURES / "stackexchange" / "example.stackexchange.com"
SOURCES = [SE_SITE, FIXTURES / "kaggle", FIXTURES / "ranked_qa.json"]


def _prepare(out, sources=SOURCES, **config):
    return prepare_dataset([str(s) for s in sources], out, PrepareConfig(**config), progress=False)


def _split_ids(out):
    return {split: [r.id for r in read_split(out, split)] for split in SPLITS}


def test_writes_all_sources_split_by_question_with_stats_and_manifest(tmp_path):
    stats = _prepare(tmp_path, min_answers=0)
    ids = _split_ids(tmp_path)
    all_ids = [i for split in SPLITS for i in ids[split]]
    assert len(all_ids) == len(set(all_ids)) == 3 + 3 + 2  # no question in two splits
    assert stats["total"]["questions"] == 8
    assert {name: s["stats"]["questions"] for name, s in stats["sources"].items()} == {
        "example.stackexchange.com": 3, "kaggle": 3, "ranked_qa.json": 2}
    assert stats["sources"]["example.stackexchange.com"]["notes"] == {"ignored_post_type_5": 1, "orphan_answers": 1}
    assert sum(stats["splits"][s]["questions"] for s in SPLITS) == 8
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 13 and [s["kind"] for s in manifest["sources"]] == [
        "stackexchange", "kaggle", "ranked_qa"]
    assert {s: manifest["files"][s]["records"] for s in SPLITS} == {s: len(ids[s]) for s in SPLITS}
    assert json.loads((tmp_path / "stats.json").read_text()) == stats


def test_split_is_deterministic_and_stable_under_source_order(tmp_path):
    _prepare(tmp_path / "a", seed=5)
    _prepare(tmp_path / "b", sources=list(reversed(SOURCES)), seed=5)
    for split in SPLITS:
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
    hashes = [json.loads((tmp_path / d / "manifest.json").read_text())["files"] for d in "ab"]
    assert hashes[0] == hashes[1]


def test_seed_changes_the_assignment_and_fractions_hold_at_scale():
    ids = [f"site:{i}" for i in range(20000)]
    splits_13 = [assign_split(split_key(13, i), (0.8, 0.1, 0.1)) for i in ids]
    splits_14 = [assign_split(split_key(14, i), (0.8, 0.1, 0.1)) for i in ids]
    assert splits_13 != splits_14
    for name, expected in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
        assert abs(splits_13.count(name) / len(ids) - expected) < 0.01
    assert all(assign_split(split_key(13, i), (0.0, 0.0, 1.0)) == "test" for i in ids[:100])


def test_min_answers_filters_and_counts(tmp_path):
    stats = _prepare(tmp_path, min_answers=2)
    kept = [r for split in SPLITS for r in read_split(tmp_path, split)]
    assert sorted(r.id for r in kept) == ["example.stackexchange.com:1", "example.stackexchange.com:4",
                                          "ranked_qa:101", "stackoverflow.com:90"]
    assert stats["filtered_min_answers"] == 4
    assert stats["total"]["questions"] == 8  # source rows describe the raw sources


def test_duplicate_ids_across_sources_are_bad_input(tmp_path):
    copy = tmp_path / "copy" / "example.stackexchange.com"
    shutil.copytree(SE_SITE, copy)
    with pytest.raises(DataError, match="duplicate question id 'example.stackexchange.com:1'"):
        _prepare(tmp_path / "out", sources=[SE_SITE, copy])
    stats = _prepare(tmp_path / "out", sources=[SE_SITE, copy], skip_bad=True)
    assert stats["skipped_bad"] == {"duplicate_id": 3}
    assert list(stats["sources"]) == ["example.stackexchange.com", "example.stackexchange.com#2"]


def test_empty_source_is_an_error_or_skipped(tmp_path):
    empty = tmp_path / "empty.stackexchange.com"
    empty.mkdir()
    (empty / "Posts.xml").write_text('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n</posts>\n')
    with pytest.raises(DataError, match="source has no records") as info:
        _prepare(tmp_path / "out", sources=[SE_SITE, empty])
    assert info.value.path == str(empty)
    stats = _prepare(tmp_path / "out", sources=[SE_SITE, empty], skip_bad=True)
    assert stats["skipped_sources"] == ["empty.stackexchange.com"] and stats["skipped_bad"] == {"empty_source": 1}
    with pytest.raises(DataError, match="no records left"):
        _prepare(tmp_path / "out2", sources=[empty], skip_bad=True)


def test_unknown_source_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        _prepare(tmp_path / "out", sources=[tmp_path / "nothing-here"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not a known source"):
        _prepare(tmp_path / "out", sources=[tmp_path / "notes.txt"])


def test_split_fractions_are_validated():
    with pytest.raises(ValueError, match="sum to 1"):
        PrepareConfig(split=(0.8, 0.3, 0.1))


def test_compute_stats_counts_ties_and_score_spread():
    def record(i, scores):
        return QARecord(id=f"s:{i}", title="t", answers=[Answer(id=f"s:{i}:{j}", text="a", score=s)
                                                         for j, s in enumerate(scores)])
    stats = compute_stats([record(1, [1, 1]), record(2, [5, -2, 0]), record(3, []), record(4, [3])])
    assert stats == {
        "questions": 4, "answers": 6, "questions_with_answers": 3, "questions_with_2plus_answers": 2,
        "tied_questions": 1, "mean_answers_per_question": 1.5,
        "score_min": -2, "score_median": 1.0, "score_max": 5,  # sorted: -2 0 1 1 3 5
    }


def test_dataset_stats_recomputes_splits_and_flags_edited_files(tmp_path):
    stats = _prepare(tmp_path)
    recomputed = dataset_stats(tmp_path)
    assert recomputed["splits"] == stats["splits"] and recomputed["stale"] is False
    train = tmp_path / "train.jsonl"
    train.write_text("".join(train.read_text().splitlines(keepends=True)[1:]))
    assert dataset_stats(tmp_path)["stale"] is True


def test_read_json_names_the_file_and_line_of_invalid_json(tmp_path):
    from qaembed.errors import DataError
    from qaembed.jsonfiles import read_json

    path = tmp_path / "state.json"
    path.write_text('{\n  "step": 3,\n  "x": oops\n}\n')
    with pytest.raises(DataError) as info:
        read_json(path)
    assert str(info.value).startswith(f"{path}:3: invalid JSON") and info.value.line == 3
    path.write_text('{"step": 3}')
    assert read_json(path) == {"step": 3}
