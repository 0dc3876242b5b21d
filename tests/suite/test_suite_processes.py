"""One suite run on several processes (``--processes-per-run``; on Ray ``--gpus-per-run N``): torchrun around
``qaembed train`` with the global batch split between the processes and negatives gathered, so the run is the
same ranking problem and the same compute as on one process (test: the same numbers, 2 gloo CPU processes)."""

from __future__ import annotations

import pytest
import yaml
from suite_fakes import write_topic_dataset

from qaembed.errors import ConfigError
from qaembed.suite.grid import GridEntry, SuiteConfig
from qaembed.suite.runner import LAUNCH_CONFIG, read_status, run_suite
from qaembed.train.launch import split_config


def _config(model, data, **changes) -> SuiteConfig:
    values = dict(model=str(model), data=str(data), seeds=[0], budget=96, budget_unit="texts", batch_size=6,
                  learning_rate=1e-3, max_seq_length=32, eval_every=None, train_questions=None, dev_questions=None,
                  test_questions=None, baseline=False,
                  entries=[GridEntry(name="infonce", loss="infonce", strategy="hard_negative")])
    return SuiteConfig(**{**values, **changes})


def test_split_config_keeps_the_global_batch_and_gathers_negatives(tmp_path):
    from qaembed.train.config import parse_config

    config = parse_config({"data": {"dataset": str(tmp_path)}, "loss": {"name": "listwise"},
                           "strategy": {"name": "listwise"}, "training": {"batch_size": 8, "lr": 1e-4}})
    split = split_config(config, 4)
    assert (split.training.batch_size, split.training.gather_across_devices) == (2, True)
    assert split.loss == config.loss and split.training.lr == config.training.lr
    assert split_config(config, 1) is config
    with pytest.raises(ConfigError, match="does not split into 3 processes"):
        split_config(config, 3)


def test_a_batch_that_does_not_split_is_refused_before_any_work(tmp_path):
    config = _config("unused-model", write_topic_dataset(tmp_path / "data"))  # batch 6
    with pytest.raises(ConfigError, match="batch_size 6 does not split into 4 processes"):
        run_suite(config, tmp_path / "suite", processes_per_run=4)
    assert not (tmp_path / "suite" / "runs").exists()


def test_a_launched_run_progress_follows_its_metrics_file(tmp_path):
    import json

    from qaembed.train.launch import MetricsFollower

    plans, steps = [], []
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path, step_callback=steps.append, plan_callback=plans.append)
    follower.poll()  # the run has written nothing yet
    assert (plans, steps) == ([], [])
    with path.open("w") as fh:
        fh.write(json.dumps({"step": 0, "dev/retrieval/ndcg@10": 0.3}) + "\n")  # an evaluation: no length
        fh.write(json.dumps({"step": 10, "total_steps": 40, "loss": 1.0}) + "\n")
        fh.write('{"step": 20, "total_steps": 40, "lo')  # being written
    follower.poll()
    assert (plans, steps) == ([40], [10])
    with path.open("a") as fh:
        fh.write('ss": 0.9}\n' + json.dumps({"step": 30, "total_steps": 40, "loss": 0.8}) + "\n")
    follower.poll()
    follower.poll()  # nothing new: no repeated calls
    assert (plans, steps) == ([40], [10, 30])


@pytest.mark.slow
def test_two_processes_give_the_numbers_of_one(tiny_model_dir, tmp_path):
    from qaembed.suite.runner import NoProgress

    class Steps(NoProgress):
        def __init__(self):
            self.planned, self.steps = [], []

        def run_planned(self, total_steps):
            self.planned.append(total_steps)

        def run_advanced(self, step):
            self.steps.append(step)

    data = write_topic_dataset(tmp_path / "data")
    config = _config(tiny_model_dir, data)
    one_progress, two_progress = Steps(), Steps()
    one = run_suite(config, tmp_path / "one", progress=one_progress)
    two = run_suite(config, tmp_path / "two", processes_per_run=2, progress=two_progress)
    assert not one.failed and not two.failed, [s.error for s in two.failed]
    (single,), (double,) = one.statuses, two.statuses
    assert (single.processes, double.processes) == (1, 2)
    # the same compute, on the same questions in the same order
    assert (double.steps, double.texts, double.tokens, double.question_order) == (
        single.steps, single.texts, single.tokens, single.question_order)
    assert single.steps >= 2
    # the launched run's progress is seen as the one-process run's is (at its logged steps, here every step)
    assert one_progress.planned == two_progress.planned == [single.steps]
    assert two_progress.steps and two_progress.steps[-1] == single.steps
    assert set(two_progress.steps) <= set(one_progress.steps)
    for key, value in single.summary.items():  # the same model up to float rounding
        assert double.summary[key] == pytest.approx(value, abs=1e-4), key
    launched = yaml.safe_load((tmp_path / "two" / "runs" / double.run_id / LAUNCH_CONFIG).read_text())
    assert launched["training"]["batch_size"] == 3 and launched["training"]["gather_across_devices"] is True
    # the report says how the runs were trained
    from qaembed.report.collect import load_suite
    from qaembed.report.tables import cost_table, run_rows

    suite = load_suite(tmp_path / "two")
    assert "Training ran in 2 processes per run" in cost_table(suite).note
    assert [row["processes"] for row in run_rows(suite, [])] == [2]
    assert "processes per run" not in cost_table(load_suite(tmp_path / "one")).note
    # finished runs are never redone, whatever the process count
    again = run_suite(config, tmp_path / "two")
    assert again.skipped == [double.run_id]


@pytest.mark.slow
def test_a_launched_training_that_fails_is_a_failed_run_with_its_log(tmp_path):
    config = _config(tmp_path / "no-such-model", write_topic_dataset(tmp_path / "data"))
    result = run_suite(config, tmp_path / "suite", processes_per_run=2)
    (status,) = result.failed
    assert "training in 2 processes failed" in status.error
    assert "no-such-model" in status.error  # the end of the run's log says why
    assert read_status(tmp_path / "suite" / "runs" / status.run_id).status == "failed"


def test_the_command_line_refuses_a_process_count_other_than_the_gpus(tmp_path, monkeypatch, capsys):
    import sys

    from qaembed.cli import main

    pytest.importorskip("ray")
    monkeypatch.setattr(sys, "argv", ["qaembed", "suite", "--executor", "ray", "--gpus-per-run", "2",
                                      "--processes-per-run", "3", "--out", str(tmp_path / "suite")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    expected = "--processes-per-run 3 with --gpus-per-run 2: a run trains with one process per GPU"
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "suite").exists()


@pytest.mark.slow
def test_a_killed_suite_process_leaves_no_training_behind(tiny_model_dir, tmp_path):
    """The run's own process is SIGKILLed mid-training (an OOM kill, a lost Ray worker): torchrun and the training
    processes die with it (Linux), so nothing keeps writing into the folder that the retry resumes."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    if not sys.platform.startswith("linux"):
        pytest.skip("the kernel's parent-death signal is Linux only")
    config = _config(tiny_model_dir, write_topic_dataset(tmp_path / "data"), budget=20000)  # minutes of steps
    config_file = tmp_path / "suite.json"
    config_file.write_text(config.model_dump_json())
    code = ("import sys; from qaembed.suite.grid import SuiteConfig; from qaembed.suite.runner import run_suite; "
            "run_suite(SuiteConfig.model_validate_json(open(sys.argv[1]).read()), sys.argv[2], processes_per_run=2)")
    suite = subprocess.Popen([sys.executable, "-c", code, str(config_file), str(tmp_path / "suite")],
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    launched = []
    try:
        metrics = tmp_path / "suite" / "runs" / "infonce" / "seed0" / "train" / "metrics.jsonl"
        deadline = time.monotonic() + 240
        while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
            assert suite.poll() is None and time.monotonic() < deadline, "the launched training did not start"
            time.sleep(0.5)
        launched = psutil.Process(suite.pid).children(recursive=True)
        assert len(launched) >= 3  # torchrun and its two training processes
        os.kill(suite.pid, signal.SIGKILL)
        suite.wait()
        _, alive = psutil.wait_procs(launched, timeout=30)
        assert not alive, [p.cmdline()[:6] for p in alive]
    finally:  # whatever happened, nothing of this test keeps running
        for process in [*launched, *(psutil.Process(suite.pid).children(recursive=True) if suite.poll() is None
                                     else [])]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        suite.kill()
        suite.wait()
