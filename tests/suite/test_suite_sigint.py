"""Ctrl-C on the real ``qaembed suite`` process: exit 130, nothing half-written, rerun resumes.

Deterministic: the suite process runs in short slices between SIGSTOP and SIGCONT, and the
test reads the marker (the run's logged steps) only while the process is stopped, so the
SIGINT is sent at a known point of the run whatever the machine's load (no sleep decides it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from suite_fakes import write_tiny_dataset

from qaembed.suite.runner import read_status


def _logged_steps(run_dir: Path) -> list[int]:
    """Steps with a training-loss line in the run's metrics.jsonl (complete lines only)."""
    metrics = run_dir / "train" / "metrics.jsonl"
    if not metrics.is_file():
        return []
    lines = metrics.read_text().split("\n")[:-1]
    return [json.loads(line)["step"] for line in lines if '"loss"' in line]


def _last_step(run_dir: Path) -> int:
    steps = _logged_steps(run_dir)
    return steps[-1] if steps else 0


def test_sigint_mid_training_leaves_no_partial_files_and_rerun_finishes(tiny_model_dir: Path, tmp_path: Path,
                                                                        pause_when):
    dataset = write_tiny_dataset(tmp_path / "prepared")
    config = {
        "model": str(tiny_model_dir), "data": str(dataset), "seeds": [0], "budget": 120, "budget_unit": "steps",
        "batch_size": 4,
        "max_seq_length": 32, "eval_every": None, "save_every": 20, "learning_rate": 1e-3,
        "entries": [{"name": "infonce", "loss": "infonce", "strategy": "hard_negative"},
                    {"name": "listwise", "loss": "listwise", "strategy": "listwise"}],
    }
    config_path = tmp_path / "suite.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "suite"
    command = [sys.executable, "-m", "qaembed", "suite", "--config", str(config_path), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    # a shell's background job inherits SIGINT ignored, and Python then never installs its Ctrl-C
    # handler: give the suite the default disposition, as a terminal would
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run_dir = out / "runs" / "infonce" / "seed0"
    try:
        # past the first checkpoint (step 20), mid-run; read while the suite is stopped
        pause_when(process, lambda: _last_step(run_dir) >= 25, what="training step 25")
        process.send_signal(signal.SIGINT)  # pending until the process continues
        process.send_signal(signal.SIGCONT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output[-3000:]
    assert "interrupted" in output
    interrupted_at = _last_step(run_dir)
    assert 25 <= interrupted_at < 120
    assert read_status(out / "runs" / "baseline").status == "ok"
    assert read_status(run_dir) is None  # not counted as done
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.tmp.*"))
    assert not (out / "runs" / "listwise").exists()
    checkpoint = max(int(p.name.split("-")[1]) for p in (run_dir / "train" / "checkpoints").glob("step-*"))
    metrics_lines = (run_dir / "train" / "metrics.jsonl").read_text().splitlines()
    kept = [line for line in metrics_lines if json.loads(line)["step"] <= checkpoint]

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for run in ("baseline", "infonce/seed0", "listwise/seed0"):
        assert read_status(out / "runs" / run).status == "ok", run
    steps = _logged_steps(run_dir)
    # resumed from the last checkpoint: lines after it were dropped, every step logged once
    assert steps == sorted(set(steps)) and steps[-1] == 120
    # resumed, not redone: the lines up to the checkpoint (with their timings) are untouched
    assert (run_dir / "train" / "metrics.jsonl").read_text().splitlines()[: len(kept)] == kept
    assert (out / "report.md").is_file()
