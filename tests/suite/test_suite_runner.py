"""The resumable runner: skip finished runs, redo unfinished and failed ones, record failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from suite_fakes import FakeRun, tiny_config

from qaembed.errors import ConfigError
from qaembed.suite.grid import GridEntry, build_suite_config, expand_runs
from qaembed.suite.runner import read_status, run_suite


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
    # more steps change every trained run but not the baseline
    again = FakeRun()
    run_suite(tiny_config(tiny_dataset, steps=5), out, run_fn=again)
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


def test_unknown_loss_is_a_config_error_before_any_run(tiny_dataset: Path, tmp_path: Path):
    config = tiny_config(tiny_dataset)
    config.entries.append(GridEntry(name="bad", loss="no_such_loss", strategy="listwise"))
    fake = FakeRun()
    with pytest.raises(ConfigError, match="suite entry 'bad'.*no_such_loss"):
        run_suite(config, tmp_path / "suite", run_fn=fake)
    assert fake.calls == []


def test_presets_and_overrides(tmp_path: Path):
    quick = build_suite_config("quick")
    assert quick == build_suite_config()  # quick is the default
    full = build_suite_config("full", overrides={"seeds": [0, 1, 2, 3]})
    assert full.seeds == [0, 1, 2, 3] and full.test_questions is None and full.steps > quick.steps
    config_file = tmp_path / "suite.yaml"
    config_file.write_text("preset: full\nsteps: 7\nentries:\n  - {name: a, loss: infonce, strategy: infonce}\n")
    from_file = build_suite_config(file=config_file)
    assert from_file.steps == 7 and from_file.max_seq_length == full.max_seq_length
    assert [e.name for e in from_file.entries] == ["a"]
    config_file.write_text("steps: 0\n")
    with pytest.raises(ConfigError, match="steps"):
        build_suite_config(file=config_file)
    with pytest.raises(ConfigError, match="allowed: quick, full"):
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
