"""The suite on Ray: the same numbers as the local executor (a real tiny-model grid on a 2-CPU local
Ray cluster started by the test), finished runs never redone, a killed worker retried and resumed,
and a clear error without Ray."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from suite_fakes import write_topic_dataset

from qaembed.data.dataset import write_jsonl_records
from qaembed.errors import ConfigError
from qaembed.records import Answer, QARecord
from qaembed.suite.grid import GridEntry, SuiteConfig
from qaembed.suite.runner import RunOutcome, read_status, run_suite

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this test file

from qaembed.suite.ray_executor import RayExecutor  # noqa: E402


def _executor() -> RayExecutor:
    return RayExecutor(init_options={"num_cpus": 2})


def test_ray_gives_the_numbers_of_a_local_run(tiny_model_dir, tmp_path):
    data = write_topic_dataset(tmp_path / "data")
    config = SuiteConfig(
        model=str(tiny_model_dir), data=str(data), seeds=[0], budget=48, budget_unit="texts", batch_size=6,
        learning_rate=1e-3, max_seq_length=32, eval_every=None, train_questions=None, dev_questions=None,
        test_questions=None, entries=[GridEntry(name="infonce", loss="infonce", strategy="hard_negative"),
                                      GridEntry(name="listwise", loss="listwise", strategy="listwise")])
    local = run_suite(config, tmp_path / "local")
    on_ray = run_suite(config, tmp_path / "ray", executor=_executor())
    assert not local.failed and not on_ray.failed, [s.error for s in on_ray.failed]
    assert [s.run_id for s in on_ray.statuses] == [s.run_id for s in local.statuses]
    assert len(on_ray.statuses) == 3  # the baseline and 2 entries
    for ours, theirs in zip(on_ray.statuses, local.statuses):
        assert ours.summary.keys() == theirs.summary.keys() and ours.summary
        for key, value in theirs.summary.items():
            assert ours.summary[key] == pytest.approx(value, abs=1e-6), (ours.run_id, key)
        assert (ours.steps, ours.texts, ours.question_order) == (theirs.steps, theirs.texts, theirs.question_order)
    # finished runs are never redone: a second invocation submits nothing
    again = run_suite(config, tmp_path / "ray", executor=_executor())
    assert sorted(again.skipped) == sorted(s.run_id for s in local.statuses)


def _dies_once(spec, context, run_dir: Path, resume: bool) -> RunOutcome:
    """A run whose worker process is killed the first time (as an OOM kill or a lost node would)."""
    marker = run_dir / "attempts.jsonl"
    attempts = marker.read_text().splitlines() if marker.exists() else []
    with marker.open("a") as fh:
        fh.write(json.dumps({"resume": resume, "pid": os.getpid()}) + "\n")
    if not attempts:
        os._exit(1)
    return RunOutcome(summary={"retrieval/ndcg@10": 0.5}, train_time_s=0.0, eval_time_s=0.0, texts_per_s=None)


def _always_dies(spec, context, run_dir: Path, resume: bool) -> RunOutcome:
    os._exit(1)


def _config(data: Path) -> SuiteConfig:
    return SuiteConfig(data=str(data), seeds=[0], budget=2, budget_unit="steps", baseline=False,
                       entries=[GridEntry(name="infonce", loss="infonce", strategy="hard_negative")])


def test_a_killed_worker_is_retried_and_resumes(tmp_path):
    config = _config(write_topic_dataset(tmp_path / "data"))
    result = run_suite(config, tmp_path / "suite", run_fn=_dies_once, executor=_executor())
    (status,) = result.statuses
    assert status.status == "ok", status.error
    attempts = [json.loads(line) for line in (tmp_path / "suite" / "runs" / status.run_id / "attempts.jsonl")
                .read_text().splitlines()]
    assert [a["resume"] for a in attempts] == [False, True]  # the retry resumes (spec there, no status)
    assert attempts[0]["pid"] != attempts[1]["pid"]


def test_a_worker_that_always_dies_is_a_failed_run_with_its_status_written(tmp_path):
    config = _config(write_topic_dataset(tmp_path / "data"))
    executor = RayExecutor(max_retries=1, init_options={"num_cpus": 2})
    (status,) = run_suite(config, tmp_path / "suite", run_fn=_always_dies, executor=executor).statuses
    assert status.status == "failed" and "died 2 time(s)" in status.error
    assert read_status(tmp_path / "suite" / "runs" / status.run_id).status == "failed"


def test_without_ray_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'qaembed\[ray\]'"):
        RayExecutor()


def _mine_and_record_where(data, out_dir, model):
    """The suite's mining step, recording the process it ran in."""
    from qaembed.suite.dataset import mine_suite_data

    (Path(out_dir) / "mined_by_pid").write_text(str(os.getpid()))
    return mine_suite_data(data, out_dir, model)


def _prepare_and_record_where(data, out_dir, prepare):
    """The suite's data step, recording the process it ran in."""
    from qaembed.suite.dataset import resolve_suite_data

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "prepared_by_pid").write_text(str(os.getpid()))
    return resolve_suite_data(data, out_dir, prepare)


def test_data_preparation_and_mining_run_as_ray_tasks(tiny_model_dir, tmp_path, monkeypatch):
    import qaembed.suite.runner as runner

    monkeypatch.setattr(runner, "resolve_suite_data", _prepare_and_record_where)
    monkeypatch.setattr(runner, "mine_suite_data", _mine_and_record_where)
    records = [QARecord(id=f"s:{i}", title=f"question {i} about topic {i % 5}?",
                        answers=[Answer(id=f"s:{i}a", text=f"answer {i} on topic {i % 5}", score=1.0)])
               for i in range(40)]
    write_jsonl_records(tmp_path / "questions.jsonl", records)
    monkeypatch.chdir(tmp_path)  # a relative source path: made absolute for the worker
    config = SuiteConfig(model=str(tiny_model_dir), data=["questions.jsonl"], seeds=[0], budget=2,
                         budget_unit="steps", baseline=False, mine_negatives=True,
                         entries=[GridEntry(name="infonce_mined", loss="infonce", strategy="mined")])
    fake = lambda spec, context, run_dir, resume: RunOutcome(  # noqa: E731
        summary={"retrieval/ndcg@10": 0.5}, train_time_s=0.0, eval_time_s=0.0, texts_per_s=None)
    result = run_suite(config, "suite", run_fn=fake, executor=_executor())
    assert not result.failed
    manifest = json.loads((tmp_path / "suite" / "data" / "manifest.json").read_text())
    assert sum(f["records"] for f in manifest["files"].values()) == 40
    assert (tmp_path / "suite" / "data_mined" / "mining.json").is_file()
    for step in ("prepared_by_pid", "mined_by_pid"):  # on Ray workers, not here
        assert int((tmp_path / "suite" / step).read_text()) != os.getpid(), step


@pytest.mark.slow
def test_a_run_given_two_gpus_on_ray_trains_in_two_processes_with_the_numbers_of_one(tiny_model_dir, tmp_path):
    """``--executor ray --gpus-per-run 2``: the task asks Ray for 2 GPUs (here logical ones of a local cluster
    that declares 2) and trains in 2 torchrun processes inside it (gloo on this CPU box); same run as on one."""
    data = write_topic_dataset(tmp_path / "data")
    config = SuiteConfig(
        model=str(tiny_model_dir), data=str(data), seeds=[0], budget=96, budget_unit="texts", batch_size=6,
        learning_rate=1e-3, max_seq_length=32, eval_every=None, train_questions=None, dev_questions=None,
        test_questions=None, baseline=False, entries=[GridEntry(name="infonce", loss="infonce",
                                                                strategy="hard_negative")])
    local = run_suite(config, tmp_path / "local")
    executor = RayExecutor(gpus_per_run=2, init_options={"num_cpus": 2, "num_gpus": 2})
    on_ray = run_suite(config, tmp_path / "ray", executor=executor, processes_per_run=2)
    assert not local.failed and not on_ray.failed, [s.error for s in on_ray.failed]
    (single,), (double,) = local.statuses, on_ray.statuses
    assert (single.processes, double.processes) == (1, 2)
    assert (double.steps, double.texts, double.question_order) == (single.steps, single.texts, single.question_order)
    for key, value in single.summary.items():
        assert double.summary[key] == pytest.approx(value, abs=1e-4), key
