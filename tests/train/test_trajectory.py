"""Invariant runs: 10 InfoNCE steps on the tiny model, plain and with GradCache, against a committed
per-step reference (loss and gradient norm), as TRL's invariant tests do.

A change to the loop, the losses, batching, tokenization or the optimizer that moves any step's loss or
gradient norm fails here, even when every unit test still passes. When the change is intended (or the
libraries changed: the reference records their versions), regenerate the reference and commit it::

    QAEMBED_UPDATE_TRAJECTORIES=1 python -m pytest -q tests/train/test_trajectory.py

Runs on the CPU in seconds: the tiny 2-layer BERT (``tiny_model_dir``, dropout 0, seeded) and the tiny
dataset (``tiny_dataset``) are built the same way every session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qaembed.provenance import hardware, library_versions
from qaembed.train import train
from qaembed.train.config import parse_config

REFERENCE = Path(__file__).resolve().parent / "data" / "trajectories.json"
UPDATE = os.environ.get("QAEMBED_UPDATE_TRAJECTORIES") == "1"
STEPS = 10
RTOL, ATOL = 1e-4, 1e-5
# the canonical run; "gradcache" must train the same as "plain" (the equivalence GradCache promises)
TRAINING = {"batch_size": 8, "max_steps": STEPS, "lr": 1e-3, "warmup_ratio": 0.1, "max_grad_norm": 1.0, "seed": 3,
            "log_every": 1, "eval_every": None, "save_every": None}
RUNS = {"plain": {}, "gradcache": {"mini_batch_size": 6}}


def _trajectory(config: dict, run_dir: Path) -> dict[str, list[float]]:
    train(parse_config(config), run_dir, progress_bar=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "loss" in row]
    assert [row["step"] for row in steps] == list(range(1, STEPS + 1))
    return {"loss": [row["loss"] for row in steps], "grad_norm": [row["grad_norm"] for row in steps]}


@pytest.fixture(scope="module")
def trajectories(tiny_model_dir, tiny_dataset, tmp_path_factory) -> dict[str, dict[str, list[float]]]:
    """Per-step loss and gradient norm of every run of ``RUNS`` (trained once per module)."""
    runs = {}
    for name, overrides in RUNS.items():
        config = {
            "model": {"base": str(tiny_model_dir), "max_seq_length": 32},
            "data": {"dataset": str(tiny_dataset)},
            "strategy": {"name": "hard_negative"},
            "loss": {"name": "infonce", "options": {"temperature": 0.1}},
            "training": {**TRAINING, **overrides},
        }
        runs[name] = _trajectory(config, tmp_path_factory.mktemp(f"trajectory_{name}") / "run")
    if UPDATE:
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_text(json.dumps({
            "about": "per-step loss and grad_norm of tests/train/test_trajectory.py; regenerate with "
                     "QAEMBED_UPDATE_TRAJECTORIES=1 python -m pytest -q tests/train/test_trajectory.py",
            "loss": "infonce", "options": {"temperature": 0.1}, "strategy": "hard_negative",
            "training": TRAINING, "runs": {name: {"overrides": RUNS[name], **runs[name]} for name in RUNS},
            "environment": {"versions": library_versions(), "hardware": hardware()},
        }, indent=1) + "\n", encoding="utf-8")
    return runs


def _reference() -> dict:
    if not REFERENCE.is_file():
        pytest.fail(f"{REFERENCE} is missing; write it with QAEMBED_UPDATE_TRAJECTORIES=1 "
                    "python -m pytest -q tests/train/test_trajectory.py")
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", list(RUNS))
def test_trajectory_matches_the_committed_reference(trajectories, name):
    reference = _reference()
    assert reference["training"] == TRAINING and reference["runs"][name]["overrides"] == RUNS[name], (
        "the canonical run changed: regenerate the reference")
    for key in ("loss", "grad_norm"):
        expected, actual = reference["runs"][name][key], trajectories[name][key]
        assert actual == pytest.approx(expected, rel=RTOL, abs=ATOL), (
            f"{name} run: {key} per step differs from {REFERENCE.name} (recorded with "
            f"{reference['environment']['versions']}; now {library_versions()}). If the change is intended, "
            "regenerate it (see this file's docstring)")
    if UPDATE:
        pytest.skip(f"reference written to {REFERENCE}")


def test_gradcache_trains_the_same_trajectory_as_the_plain_run(trajectories):
    for key in ("loss", "grad_norm"):
        assert trajectories["gradcache"][key] == pytest.approx(trajectories["plain"][key], rel=RTOL, abs=ATOL), key


def test_the_trajectory_moves():
    # a reference of a run that does not train would make the comparison vacuous
    runs = _reference()["runs"]
    losses = runs["plain"]["loss"]
    assert len(losses) == STEPS and len(set(losses)) == STEPS and min(losses[-3:]) < losses[0]
    assert all(norm > 0 for norm in runs["plain"]["grad_norm"])
