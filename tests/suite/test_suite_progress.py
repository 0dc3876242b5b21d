"""Progress a person can follow when the suite's output is not a terminal: plain lines with counts and ETA."""

from __future__ import annotations

from pathlib import Path

from suite_fakes import FakeRun, tiny_config

from qaembed.cli.suite import PlainSuiteProgress
from qaembed.suite.runner import run_suite


def test_plain_progress_prints_runs_done_elapsed_eta_and_steps(tiny_dataset: Path, tmp_path: Path):
    lines: list[str] = []
    progress = PlainSuiteProgress(lines.append)
    run_suite(tiny_config(tiny_dataset), tmp_path / "suite", run_fn=FakeRun(), progress=progress)
    assert lines[0] == "suite: 4 runs"
    finished = [line for line in lines if ": ok (" in line]
    assert [line.split("]")[0] for line in finished] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all("elapsed" in line and "ETA" in line for line in finished)
    assert finished[-1].endswith("ETA 0m00s)")
    # a training run reports its steps once it knows how many it will take
    progress.run_started(type("Spec", (), {"kind": "train", "run_id": "x/seed0"})())
    progress.run_planned(8)
    for step in range(1, 9):
        progress.run_advanced(step)
    assert [line.strip() for line in lines if "step " in line] == ["step 1/8", "step 3/8", "step 5/8", "step 7/8"]


def test_rerun_counts_skipped_runs_without_timing_them(tiny_dataset: Path, tmp_path: Path):
    run_suite(tiny_config(tiny_dataset), tmp_path / "suite", run_fn=FakeRun())
    lines: list[str] = []
    run_suite(tiny_config(tiny_dataset), tmp_path / "suite", run_fn=FakeRun(), progress=PlainSuiteProgress(lines.append))
    assert sum(": skipped (-;" in line for line in lines) == 4
