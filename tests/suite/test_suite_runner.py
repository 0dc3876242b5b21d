"""The resumable runner: skip finished runs, redo unfinished and failed ones, record failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from suite_fakes import FakeRun, tiny_config

from qaembed.errors import ConfigError
from qaembed.suite.grid import GridEntry, SuiteConfig, build_suite_config, expand_runs
from qaembed.suite.runner import NoProgress, read_status, run_suite


def test_all_runs_finish_and_write_status_and_suite_json(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    fake = FakeRun()
    result = run_suite(tiny_config(tiny_dataset, seeds=[0, 1]), out, run_fn=fake)
    assert [c[0] for c in fake.calls] == [
        "baseline", "infonce/seed0", "infonce/seed1", "listwise/seed0", "listwise/seed1",
        "triplet_hard/seed0", "triplet_hard/seed1"]
    assert all(s.status == "ok" for s in result.statuses) and not result.skipped
    suite = json.loads((out / "suite.json").read_text())
    assert [r["run_id"] for r in suite["runs"]] == [c[0] for c in fake.calls]
    assert suite["data"]["counts"] == {"train": 40, "dev": 10, "test": 120}
    assert suite["environment"]["versions"]["python"]
    status = read_status(out / "runs" / "infonce" / "seed1")
    assert status.summary["retrieval/ndcg@10"] > 0 and status.seed == 1


def test_rerun_skips_finished_runs(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun())
    again = FakeRun()
    result = run_suite(tiny_config(tiny_dataset), out, run_fn=again)
    assert again.calls == []
    assert sorted(result.skipped) == ["baseline", "infonce/seed0", "listwise/seed0", "triplet_hard/seed0"]


def test_changed_config_reruns_only_the_affected_runs(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun())
    changed = tiny_config(tiny_dataset)
    changed.entries[1] = GridEntry(name="listwise", loss="listwise", loss_options={"temperature": 0.1},
                                   strategy="listwise")
    again = FakeRun()
    run_suite(changed, out, run_fn=again)
    assert again.calls == [("listwise/seed0", False)]  # stale hash: wiped and redone from scratch
    # a larger budget changes every trained run but not the baseline
    again = FakeRun()
    run_suite(tiny_config(tiny_dataset, budget=5), out, run_fn=again)
    assert [c[0] for c in again.calls] == ["infonce/seed0", "listwise/seed0", "triplet_hard/seed0"]


def test_failing_run_is_recorded_and_others_continue_then_retried(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    result = run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun(fail={"listwise/seed0"}))
    assert [s.run_id for s in result.failed] == ["listwise/seed0"]
    failed = read_status(out / "runs" / "listwise" / "seed0")
    assert failed.status == "failed" and "RuntimeError: boom in listwise/seed0" in failed.error
    assert "Traceback" in failed.traceback
    assert read_status(out / "runs" / "triplet_hard" / "seed0").status == "ok"  # ran after the failure
    again = FakeRun()
    run_suite(tiny_config(tiny_dataset), out, run_fn=again)
    assert again.calls == [("listwise/seed0", False)]


def test_interrupt_marks_nothing_done_and_rerun_resumes(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    with pytest.raises(KeyboardInterrupt):
        run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun(interrupt={"listwise/seed0"}))
    run_dir = out / "runs" / "listwise" / "seed0"
    assert read_status(run_dir) is None and (run_dir / "spec.json").is_file()
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no partial files
    again = FakeRun()
    run_suite(tiny_config(tiny_dataset), out, run_fn=again)
    # the interrupted run resumes (same config hash); the one never started starts fresh
    assert again.calls == [("listwise/seed0", True), ("triplet_hard/seed0", False)]


def test_unknown_loss_is_a_config_error_when_the_suite_file_is_read(tmp_path: Path):
    file = tmp_path / "suite.yaml"
    file.write_text("entries:\n  - {name: bad, loss: no_such_loss, strategy: listwise}\n")
    with pytest.raises(ConfigError, match=r"suite\.yaml: entries\.0: entry 'bad': loss: unknown name 'no_such_loss'; "
                                          r"allowed: infonce,"):
        build_suite_config(file=file)
    with pytest.raises(ValueError, match="entry 'bad': loss: unknown name 'no_such_loss'"):
        GridEntry(name="bad", loss="no_such_loss", strategy="listwise")  # from Python: when the entry is made


def test_an_entry_whose_strategy_batches_other_data_fails_before_any_run(tiny_dataset: Path, tmp_path: Path):
    config = tiny_config(tiny_dataset)
    config.entries.append(GridEntry(name="pairs_only", loss="infonce", strategy="pairs"))
    fake = FakeRun()
    with pytest.raises(ConfigError, match="suite entry 'pairs_only': strategy 'pairs' batches duplicate-question pairs"):
        run_suite(config, tmp_path / "suite", run_fn=fake)
    assert fake.calls == []


def test_presets_and_overrides(tmp_path: Path):
    quick = build_suite_config("quick")
    assert quick == build_suite_config()  # quick is the default
    full = build_suite_config("full", overrides={"seeds": [0, 1, 2, 3]})
    assert full.seeds == [0, 1, 2, 3] and full.test_questions is None and full.budget > quick.budget
    assert quick.preset == "quick" and full.preset == "full" and quick.budget_unit == "texts"
    cpu = build_suite_config("cpu")
    assert len(cpu.seeds) >= 3 and "infonce" in [e.name for e in cpu.entries]
    config_file = tmp_path / "suite.yaml"
    config_file.write_text("preset: full\nbudget: 7\nentries:\n  - {name: a, loss: infonce, strategy: infonce}\n")
    from_file = build_suite_config(file=config_file)
    assert from_file.budget == 7 and from_file.max_seq_length == full.max_seq_length and from_file.preset == "full"
    assert [e.name for e in from_file.entries] == ["a"]
    config_file.write_text("budget: 0\n")
    with pytest.raises(ConfigError, match="budget"):
        build_suite_config(file=config_file)
    config_file.write_text("steps: 10\n")  # the old step budget: a clear error, not silently ignored
    with pytest.raises(ConfigError, match="steps"):
        build_suite_config(file=config_file)
    with pytest.raises(ConfigError, match="allowed: quick, cpu, full"):
        build_suite_config("medium")
    with pytest.raises(ConfigError, match="unknown entries.*known: infonce"):
        quick.select(["infonce", "nope"])


def test_default_grid_covers_every_loss_and_expands_with_distinct_hashes():
    from qaembed.losses import LOSSES
    from qaembed.suite.grid import check_entries

    config = build_suite_config(overrides={"seeds": [0, 1]})
    check_entries(config.entries)
    assert {e.loss for e in config.entries} == set(LOSSES)
    runs = expand_runs(config, data_hash="abc")
    assert runs[0].run_id == "baseline" and len(runs) == 1 + 2 * len(config.entries)
    assert len({r.config_hash for r in runs}) == len(runs)
    assert expand_runs(config, data_hash="other")[1].config_hash != runs[1].config_hash


def test_shipped_suite_configs_are_valid():
    from qaembed.suite.grid import check_entries

    files = sorted((Path(__file__).resolve().parents[2] / "configs" / "suite").glob("*.yaml"))
    assert files
    for file in files:
        check_entries(build_suite_config(file=file).entries)


def _mixed_dataset(folder: Path) -> Path:
    """Train questions with 1 or 3 answers (listwise and triplet_hard can only use the 3-answer ones)."""
    from suite_fakes import _record

    from qaembed.data.dataset import write_jsonl_records

    train = []
    for i in range(30):
        record = _record("train", i)
        train.append(record if i % 3 else record.model_copy(update={"answers": record.answers[:1]}))
    write_jsonl_records(folder / "train.jsonl", train)
    write_jsonl_records(folder / "dev.jsonl", [_record("dev", i) for i in range(5)])
    write_jsonl_records(folder / "test.jsonl", [_record("test", i) for i in range(20)])
    return folder


def test_every_entry_trains_on_the_common_question_set(tmp_path: Path):
    from qaembed.suite.runner import TRAIN_QUESTIONS_FILE, train_config_for, train_question_ids

    dataset = _mixed_dataset(tmp_path / "data")
    config = tiny_config(dataset, train_questions=15)
    ids, description = train_question_ids(config, dataset)
    assert len(ids) == 15 and all(not question_id.endswith(("train0", "train3")) for question_id in ids)
    assert "15 train questions" in description and "(20 of 30)" in description
    only_infonce = config.select(["infonce"])
    assert len(train_question_ids(only_infonce, dataset)[0]) == 15  # the cap still applies
    each = tiny_config(dataset, train_question_set="each")
    assert train_question_ids(each, dataset)[0] is None

    out = tmp_path / "suite"
    run_suite(config, out, run_fn=FakeRun())
    listed = (out / TRAIN_QUESTIONS_FILE).read_text().split()
    assert listed == ids
    suite = json.loads((out / "suite.json").read_text())
    assert suite["data"]["train_questions"]["count"] == 15
    spec = next(r for r in expand_runs(config, "h", "t") if r.kind == "train")
    train_config = train_config_for(spec, config, dataset, out / TRAIN_QUESTIONS_FILE)
    assert train_config.data.train_questions_file == out / TRAIN_QUESTIONS_FILE
    assert train_config.data.max_train_questions is None
    assert train_config.training.budget.unit == "steps" and train_config.training.budget.amount == 4


def test_a_grid_change_that_changes_the_common_set_reruns_every_entry(tmp_path: Path):
    dataset = _mixed_dataset(tmp_path / "data")
    out = tmp_path / "suite"
    run_suite(tiny_config(dataset).select(["infonce"]), out, run_fn=FakeRun())
    again = FakeRun()
    run_suite(tiny_config(dataset).select(["infonce", "listwise"]), out, run_fn=again)
    assert [c[0] for c in again.calls] == ["infonce/seed0", "listwise/seed0"]  # not the baseline


def test_redoing_a_run_deletes_only_what_qaembed_wrote(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun(fail={"listwise/seed0"}))
    run_dir = out / "runs" / "listwise" / "seed0"
    (run_dir / "my_notes.txt").write_text("keep me")
    again = FakeRun()
    run_suite(tiny_config(tiny_dataset), out, run_fn=again)
    assert again.calls == [("listwise/seed0", False)]
    assert (run_dir / "my_notes.txt").read_text() == "keep me"
    assert read_status(run_dir).status == "ok"


def test_corrupt_spec_or_status_is_redone_with_a_message(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun())
    (out / "runs" / "listwise" / "seed0" / "status.json").write_text("{not json")
    (out / "runs" / "infonce" / "seed0" / "status.json").unlink()
    (out / "runs" / "infonce" / "seed0" / "spec.json").write_text('{"kind": "train"}')

    class Messages(NoProgress):
        def __init__(self):
            self.lines = []

        def message(self, text):
            self.lines.append(text)

    progress, again = Messages(), FakeRun()
    run_suite(tiny_config(tiny_dataset), out, run_fn=again, progress=progress)
    assert sorted(c[0] for c in again.calls) == ["infonce/seed0", "listwise/seed0"]
    assert any("status.json" in line and "listwise/seed0 is redone" in line for line in progress.lines)
    assert any("spec.json" in line and "infonce/seed0 is redone" in line for line in progress.lines)


def test_out_that_is_a_file_fails_before_any_work(tiny_dataset: Path, tmp_path: Path):
    target = tmp_path / "results.txt"
    target.write_text("a user's file")
    fake = FakeRun()
    with pytest.raises(ConfigError, match="is an existing file, not a folder"):
        run_suite(tiny_config(tiny_dataset), target, run_fn=fake)
    assert fake.calls == [] and target.read_text() == "a user's file"


def test_data_is_a_list_of_sources_given_as_a_list_or_a_comma_string(tmp_path: Path):
    assert build_suite_config(overrides={"data": "a.stackexchange.com, b.stackexchange.com"}).data == [
        "a.stackexchange.com", "b.stackexchange.com"]
    file = tmp_path / "suite.yaml"
    file.write_text("data: [a.stackexchange.com, b.stackexchange.com]\n")
    assert build_suite_config(file=file).data == ["a.stackexchange.com", "b.stackexchange.com"]
    assert build_suite_config().data is None  # the default sites
    with pytest.raises(ConfigError, match="data: no sources given"):
        build_suite_config(overrides={"data": " , "})
    # a suite.json written when data was one string reads back
    assert SuiteConfig.model_validate({"data": "runs/x/data"}).data == ["runs/x/data"]


def test_a_second_suite_into_the_same_folder_is_refused_while_the_first_runs(tiny_dataset, tmp_path):
    """Two suites in one folder ran the same runs into the same run folders (metrics.jsonl lines twice)."""
    import os

    from qaembed.errors import ConfigError
    from qaembed.outputs import writing_alone

    out = tmp_path / "suite"
    out.mkdir()
    with writing_alone(out, "qaembed suite"):  # a suite running into it now
        with pytest.raises(ConfigError, match=rf"another qaembed suite is writing there now \(pid {os.getpid()}\)"):
            run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun())
    assert not (out / "runs").exists()
    result = run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun())  # the lock went with its holder
    assert not result.failed and len(result.statuses) == 4
