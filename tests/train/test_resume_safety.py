"""``qaembed train --resume`` on tampered, truncated or half-written run folders.

A checkpoint file cannot execute code (a crafted pickle is refused or never opened), a
truncated file is an exit-2 error naming it with the run folder untouched, and the
unfinished last line a kill leaves in ``metrics.jsonl`` is dropped and counted. Every
resume goes through the console entry point :func:`qaembed.cli.main`.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from qaembed.train import StopTraining, load_config, train


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of ``qaembed ARGS`` through the console entry point."""
    from qaembed.cli import main

    monkeypatch.setattr(sys, "argv", ["qaembed", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())


class CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: the file appears only if the pickle is executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def stopped_run(tiny_model_dir, tiny_dataset, tmp_path_factory) -> tuple[Path, Path]:
    """(config file, run folder) of a run killed after step 5; its checkpoint is at step 4."""
    root = tmp_path_factory.mktemp("stopped")
    config_file = root / "config.yaml"
    config_file.write_text(yaml.safe_dump({
        "model": {"base": str(tiny_model_dir), "max_seq_length": 32},
        "data": {"dataset": str(tiny_dataset)},
        "strategy": {"name": "hard_negative"},
        "loss": {"name": "infonce", "options": {"temperature": 0.1}},
        "training": {"batch_size": 8, "max_steps": 6, "lr": 1e-3, "log_every": 1, "save_every": 2, "eval_every": 3,
                     "seed": 3},
    }))

    def kill_after_five(step: int) -> None:
        if step == 5:
            raise StopTraining

    run = root / "run"
    assert train(load_config(config_file, []), run, step_callback=kill_after_five, progress_bar=False).steps == 5
    return config_file, run


@pytest.fixture()
def run_copy(stopped_run, tmp_path) -> tuple[Path, Path, Path]:
    """(config file, a copy of the stopped run, its checkpoint folder)."""
    config_file, run = stopped_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return config_file, copy, copy / "checkpoints" / "step-000004"


def _crafted_pickle(path: Path, marker: Path) -> None:
    torch.save({"state": {}, "param_groups": [CreatesMarker(marker)]}, path)


def test_the_crafted_pickle_would_execute_with_an_unsafe_load(tmp_path):
    """The file the next tests plant is a real exploit: an unsafe torch.load creates the marker."""
    marker = tmp_path / "marker"
    _crafted_pickle(tmp_path / "crafted.pt", marker)
    torch.load(tmp_path / "crafted.pt", weights_only=False)
    assert marker.exists()


def test_crafted_optimizer_pickle_is_refused_and_never_executed(run_copy, monkeypatch, capsys, tmp_path):
    config_file, run, checkpoint = run_copy
    marker = tmp_path / "marker"
    _crafted_pickle(checkpoint / "optimizer.pt", marker)
    before = _tree(run)
    code, err = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 2
    assert f"error: {checkpoint / 'optimizer.pt'}: refused: it holds objects other than tensors and plain values" in err
    assert not marker.exists()
    assert _tree(run) == before


def test_old_pickle_checkpoint_is_refused_unopened(run_copy, monkeypatch, capsys, tmp_path):
    config_file, run, checkpoint = run_copy
    marker = tmp_path / "marker"
    (checkpoint / "model.safetensors").unlink()
    (checkpoint / "rng-0.json").unlink()
    for name in ("model.pt", "rng-0.pt"):
        _crafted_pickle(checkpoint / name, marker)
    code, err = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 2 and f"error: {checkpoint} is a checkpoint of an older qaembed" in err and "not loaded" in err
    assert not marker.exists()


def test_a_planted_rng_pickle_is_never_opened_and_resume_completes(run_copy, monkeypatch, capsys, tmp_path):
    config_file, run, checkpoint = run_copy
    marker = tmp_path / "marker"
    _crafted_pickle(checkpoint / "rng-0.pt", marker)  # the file the old format loaded with weights_only=False
    code, _ = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 0
    assert not marker.exists()
    assert json.loads((run / "result.json").read_text())["steps"] == 6


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng-0.json", "state.json"])
def test_truncated_checkpoint_file_is_named_and_nothing_changes(run_copy, monkeypatch, capsys, name):
    config_file, run, checkpoint = run_copy
    data = (checkpoint / name).read_bytes()
    (checkpoint / name).write_bytes(data[: len(data) // 2])
    before = _tree(run)
    code, err = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 2 and f"error: {checkpoint / name}" in err
    if name != "state.json":  # (state.json: "invalid JSON" with the line)
        assert f"it is truncated or corrupt, or was written for another config. Delete {checkpoint}" in err
    assert _tree(run) == before


def test_unfinished_last_metrics_line_is_dropped_and_counted(run_copy, monkeypatch, capsys, caplog):
    config_file, run, _ = run_copy
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"step": 6, "epoch": 0, "loss": 0.4')  # killed in the middle of appending step 6
    with caplog.at_level(logging.WARNING, logger="qaembed.train.loop"):
        code, _ = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 0
    assert "metrics.jsonl: dropped 1 unfinished last line (35 characters" in caplog.text
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if "dev/retrieval/ndcg@10" in r] == [0, 3, 6]


def test_bad_metrics_line_before_the_end_is_named_and_the_file_kept(run_copy, monkeypatch, capsys):
    config_file, run, _ = run_copy
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + '{"step": 1, "loss": \n' + "".join(lines[2:]))
    before = path.read_bytes()
    code, err = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 2 and f"error: {path}:2: invalid JSON" in err
    assert path.read_bytes() == before

    path.write_text(lines[0] + '{"loss": 1.0}\n' + "".join(lines[2:]))
    code, err = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 2 and f"error: {path}:2, field 'step': missing or non-integer step" in err


def test_tampered_loop_state_names_the_field(run_copy, monkeypatch, capsys):
    config_file, run, checkpoint = run_copy
    state = json.loads((checkpoint / "state.json").read_text())
    (checkpoint / "state.json").write_text(json.dumps({**state, "batch_in_epoch": -3}))
    code, err = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 2
    assert f"error: {checkpoint / 'state.json'}, field 'batch_in_epoch': Input should be greater than or equal to 0 (got -3)" in err


def test_resume_without_a_checkpoint_says_it_starts_again_and_keeps_folders_it_did_not_write(run_copy, capsys):
    config_file, run, checkpoint = run_copy
    shutil.rmtree(checkpoint)  # killed before its first checkpoint
    foreign = run / "checkpoints" / "step-abc"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    capsys.readouterr()
    result = train(load_config(config_file, []), run, resume=True, progress_bar=False)
    assert result.status == "completed" and result.steps == 6
    assert "has no complete checkpoint yet; the run starts again from step 0" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"  # the checkpoint rotation deletes only step-N folders
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name != "step-abc"] == ["step-000006"]


def _planted_config(marker: Path) -> str:
    """A run config whose ``training`` an unsafe YAML load would build by calling ``open(marker, "w")``."""
    return f'training: !!python/object/apply:builtins.open ["{marker}", "w"]\n'


def test_the_planted_config_would_execute_with_an_unsafe_load(tmp_path):
    marker = tmp_path / "marker"
    yaml.unsafe_load(_planted_config(marker)).pop("training").close()
    assert marker.exists()


@pytest.mark.parametrize("content, problem", [
    ("planted", "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:builtins.open' "
                "(line 1, column 11)"),
    ("training: [1,\n  lr: 2\n", "while parsing a flow sequence: expected ',' or ']', but got '<stream end>' "
                                 "(line 3, column 1)"),
    ("- a list\n", "a config must be a mapping of sections, got list"),
    (b"training: {}\n\xff\n", "not UTF-8 (invalid start byte at byte 13, line 2)"),
])
def test_an_unreadable_saved_config_is_named_and_never_executed(run_copy, monkeypatch, capsys, tmp_path, content,
                                                                problem):
    config_file, run, _ = run_copy
    marker = tmp_path / "marker"
    saved = run / "config.yaml"
    if isinstance(content, bytes):
        saved.write_bytes(content)
    else:
        saved.write_text(_planted_config(marker) if content == "planted" else content)
    before = _tree(run)
    code, err = run_main(monkeypatch, capsys, "train", "--config", config_file, "--out", run, "--resume")
    assert code == 2 and "Traceback" not in err
    separator = ": " if problem.startswith("a config") else ": cannot parse: "
    assert err == f"error: {saved}{separator}{problem}"
    assert not marker.exists()
    assert _tree(run) == before
