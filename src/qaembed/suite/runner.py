"""The resumable suite runner: one folder per run, finished runs skipped, failures recorded.

Layout of a suite folder (everything the report reads)::

    OUT/suite.json                 resolved SuiteConfig, environment, data description, run list
    OUT/data/                      the prepared dataset (``qaembed data prepare`` output), unless
                                   ``--data`` names an existing prepared folder
    OUT/runs/baseline/             the zero-shot base model (evaluation only)
    OUT/runs/<entry>/seed<k>/
        spec.json                  the RunSpec (with its config hash), written when the run starts
        train/                     the training run folder (metrics.jsonl, result.json, config, ...)
        eval/                      the test-split EvalResult (summary.json, per_question.parquet)
        status.json                written last and atomically: status ok|failed, error, timings

A run is *finished* when ``status.json`` says ``ok`` with the run's current config hash;
re-running the suite skips it. A run with a ``spec.json`` of the same hash but no
``status.json`` was interrupted and is resumed (``resume=True``); anything else (failed, or
a stale hash) is wiped and redone. A run that raises is recorded as ``failed`` with its
error and the suite goes on. ``KeyboardInterrupt`` propagates after closing the progress
display: the interrupted run has no ``status.json``, so nothing half-done is marked done.

The work of one run is an injectable function (:data:`RunFunction`); the default,
:func:`train_and_evaluate`, trains with :func:`qaembed.train.train` and evaluates with
:func:`qaembed.evaluate.evaluate_model`. Tests inject fakes.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from qaembed.data.dataset import write_json
from qaembed.provenance import environment
from qaembed.suite.dataset import mine_suite_data, resolve_suite_data
from qaembed.suite.grid import RunSpec, SuiteConfig, check_entries, expand_runs

STATUS_FILE = "status.json"
TRAIN_SUBDIR = "train"  # the training run folder (qaembed.train layout)
EVAL_SUBDIR = "eval"  # the test-split EvalResult
SPEC_FILE = "spec.json"
RUN_LOG = "run.log"  # the run's stderr when the suite runs under the CLI
SUITE_FILE = "suite.json"


class RunStatus(BaseModel):
    """What ``status.json`` holds: the outcome of one run (the suite's done marker)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    label: str  # grid entry name or "baseline"
    kind: Literal["train", "baseline"]
    seed: int
    config_hash: str
    status: Literal["ok", "failed"]
    error: str | None = None
    traceback: str | None = None
    summary: dict[str, float] = {}  # test-split metrics (EvalResult.summary)
    wall_time_s: float  # whole run: training + evaluation
    cpu_time_s: float | None = None  # CPU time of this process during the run (all threads)
    train_time_s: float | None = None
    eval_time_s: float | None = None
    texts_per_s: float | None = None  # training throughput: texts encoded per second
    finished_at: str


@dataclass
class RunOutcome:
    """What a run function returns (timings are measured by the function itself)."""

    summary: dict[str, float]
    train_time_s: float | None = None
    eval_time_s: float | None = None
    texts_per_s: float | None = None


class SuiteProgress(Protocol):
    """Progress display hooks (the CLI shows rich bars; tests and libraries use :class:`NoProgress`)."""

    def suite_started(self, total_runs: int) -> None: ...
    def run_started(self, spec: RunSpec, total_steps: int | None) -> None: ...
    def run_advanced(self, step: int) -> None: ...
    def run_finished(self, spec: RunSpec, status: str) -> None: ...


class NoProgress:
    def suite_started(self, total_runs: int) -> None:
        pass

    def run_started(self, spec: RunSpec, total_steps: int | None) -> None:
        pass

    def run_advanced(self, step: int) -> None:
        pass

    def run_finished(self, spec: RunSpec, status: str) -> None:
        pass


@dataclass
class RunContext:
    """What a run function needs besides its spec: the suite config, data and progress."""

    config: SuiteConfig
    dataset_dir: Path
    progress: SuiteProgress = field(default_factory=NoProgress)
    log_to_file: bool = False  # send each run's stderr (progress bars, warnings) to run_dir/run.log


RunFunction = Callable[[RunSpec, RunContext, Path, bool], RunOutcome]
"""``run(spec, context, run_dir, resume) -> RunOutcome``; raises on failure."""


@dataclass
class SuiteResult:
    statuses: list[RunStatus]
    skipped: list[str]  # run ids already finished before this invocation

    @property
    def failed(self) -> list[RunStatus]:
        return [s for s in self.statuses if s.status == "failed"]


def read_status(run_dir: Path) -> RunStatus | None:
    path = run_dir / STATUS_FILE
    if not path.is_file():
        return None
    return RunStatus.model_validate_json(path.read_text(encoding="utf-8"))


def _read_spec_hash(run_dir: Path) -> str | None:
    path = run_dir / SPEC_FILE
    if not path.is_file():
        return None
    return RunSpec.model_validate_json(path.read_text(encoding="utf-8")).config_hash


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _prepare_run_dir(spec: RunSpec, run_dir: Path) -> tuple[RunStatus | None, bool]:
    """Decide what to do with a run folder: (its status if finished, resume?); wipes stale or failed runs."""
    status = read_status(run_dir)
    if status is not None and status.status == "ok" and status.config_hash == spec.config_hash:
        return status, False
    if status is None and _read_spec_hash(run_dir) == spec.config_hash:
        return None, True  # interrupted with the same config: resume from its checkpoints
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return None, False


def run_suite(
    config: SuiteConfig,
    out_dir: str | Path,
    run_fn: RunFunction | None = None,
    progress: SuiteProgress | None = None,
    log_to_file: bool = False,
) -> SuiteResult:
    """Prepare (or reuse) the data, write ``suite.json``, then run every run not finished yet.

    ``run_fn`` defaults to :func:`train_and_evaluate`. Entries are validated against the
    loss and strategy registries before anything runs.
    """
    out_dir = Path(out_dir)
    check_entries(config.entries)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = resolve_suite_data(config.data, out_dir)
    if config.mine_negatives:
        data = mine_suite_data(data, out_dir, config.model)
    runs = expand_runs(config, data.hash)
    try:
        dataset_dir = str(data.dataset_dir.resolve().relative_to(out_dir.resolve()))
    except ValueError:
        dataset_dir = str(data.dataset_dir.resolve())
    write_json(out_dir / SUITE_FILE, {
        "config": config.model_dump(mode="json"),
        "data": {"dataset_dir": dataset_dir, "hash": data.hash, "description": data.description,
                 "counts": data.counts, "test_questions_cap": config.test_questions},
        "environment": environment(),
        "runs": [r.model_dump(mode="json") for r in runs],
        "written_at": _now(),
    })
    return execute_runs(config, out_dir, runs, data.dataset_dir, run_fn=run_fn, progress=progress,
                        log_to_file=log_to_file)


def execute_runs(
    config: SuiteConfig,
    out_dir: Path,
    runs: list[RunSpec],
    dataset_dir: Path,
    run_fn: RunFunction | None = None,
    progress: SuiteProgress | None = None,
    log_to_file: bool = False,
) -> SuiteResult:
    """Run every spec not finished yet, one after another; returns every run's status."""
    run_fn = run_fn or train_and_evaluate
    progress = progress or NoProgress()
    context = RunContext(config=config, dataset_dir=dataset_dir, progress=progress, log_to_file=log_to_file)
    statuses: list[RunStatus] = []
    skipped: list[str] = []
    progress.suite_started(len(runs))
    for spec in runs:
        run_dir = out_dir / "runs" / spec.run_id
        finished, resume = _prepare_run_dir(spec, run_dir)
        if finished is not None:
            statuses.append(finished)
            skipped.append(spec.run_id)
            progress.run_finished(spec, "skipped")
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / SPEC_FILE, spec.model_dump(mode="json"))
        progress.run_started(spec, config.steps if spec.kind == "train" else None)
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            outcome = run_fn(spec, context, run_dir, resume)
        except Exception as exc:  # a failing run is recorded and the suite goes on
            status = RunStatus(
                run_id=spec.run_id, label=spec.label, kind=spec.kind, seed=spec.seed,
                config_hash=spec.config_hash, status="failed", error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(limit=20), wall_time_s=time.perf_counter() - start,
                cpu_time_s=time.process_time() - cpu_start, finished_at=_now(),
            )
        else:
            status = RunStatus(
                run_id=spec.run_id, label=spec.label, kind=spec.kind, seed=spec.seed,
                config_hash=spec.config_hash, status="ok", summary=outcome.summary,
                wall_time_s=time.perf_counter() - start, cpu_time_s=time.process_time() - cpu_start,
                train_time_s=outcome.train_time_s,
                eval_time_s=outcome.eval_time_s, texts_per_s=outcome.texts_per_s, finished_at=_now(),
            )
        write_json(run_dir / STATUS_FILE, status.model_dump(mode="json"))
        statuses.append(status)
        progress.run_finished(spec, status.status)
    return SuiteResult(statuses=statuses, skipped=skipped)


@contextlib.contextmanager
def _stderr_to(path: Path | None) -> Iterator[None]:
    """Redirect ``sys.stderr`` to ``path`` (appending) for the block; no-op for None."""
    if path is None:
        yield
        return
    with path.open("a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
        yield


def train_config_for(spec: RunSpec, config: SuiteConfig, dataset_dir: Path):
    """The :class:`qaembed.train.TrainConfig` of one training run: the entry under the shared budget."""
    from qaembed.train.config import parse_config

    if spec.entry is None:
        raise ValueError("the baseline run has no training config")
    entry = spec.entry
    raw = {
        "model": {"base": config.model, "max_seq_length": config.max_seq_length},
        "data": {"dataset": str(dataset_dir), "query_text": config.query_text, "max_train_questions": config.train_questions,
                 "max_dev_questions": config.dev_questions},
        "strategy": {"name": entry.strategy, "options": entry.strategy_options},
        "loss": {"name": entry.loss, "options": entry.loss_options},
        "training": {
            "batch_size": config.batch_size, "max_steps": config.steps, "lr": config.learning_rate,
            "warmup_ratio": config.warmup_ratio, "seed": spec.seed, "eval_every": config.eval_every,
            "save_every": config.save_every, "log_every": max(1, config.steps // 100),
        },
    }
    return parse_config(raw, source=f"suite entry {entry.name!r}")


def test_records(config: SuiteConfig, dataset_dir: Path) -> list:
    """The test questions every run is evaluated on (the first ``test_questions`` of the split)."""
    from qaembed.data.dataset import read_split

    records = read_split(dataset_dir, "test")
    return records[: config.test_questions] if config.test_questions is not None else records


def train_and_evaluate(spec: RunSpec, context: RunContext, run_dir: Path, resume: bool) -> RunOutcome:
    """The default run: train (unless baseline) into ``run_dir/train``, evaluate on test into ``run_dir/eval``."""
    with _stderr_to(run_dir / RUN_LOG if context.log_to_file else None):
        return _train_and_evaluate(spec, context, run_dir, resume)


def _train_and_evaluate(spec: RunSpec, context: RunContext, run_dir: Path, resume: bool) -> RunOutcome:
    from qaembed.evaluate import EvalConfig, evaluate_model
    from qaembed.model import load_encoder

    config = context.config
    train_time = texts_per_s = None
    if spec.kind == "train":
        from qaembed.train import train

        train_config = train_config_for(spec, config, context.dataset_dir)
        started = time.perf_counter()
        result = train(train_config, run_dir / TRAIN_SUBDIR, resume=resume, step_callback=context.progress.run_advanced,
                       progress_bar=False)
        train_time, texts_per_s = time.perf_counter() - started, result.texts_per_s
        model_path = result.model_dir
    else:
        model_path = config.model
    started = time.perf_counter()
    model = load_encoder(model_path, device=None)
    model.max_seq_length = config.max_seq_length
    evaluation = evaluate_model(model, test_records(config, context.dataset_dir),
                                config=EvalConfig(query_mode=config.query_text, seed=0))
    evaluation.save(run_dir / EVAL_SUBDIR)
    eval_time = time.perf_counter() - started
    if spec.kind == "train" and not config.keep_models:
        for name in ("model", "best_model", "checkpoints"):
            shutil.rmtree(run_dir / TRAIN_SUBDIR / name, ignore_errors=True)
    return RunOutcome(summary=evaluation.summary, train_time_s=train_time, eval_time_s=eval_time,
                      texts_per_s=texts_per_s)
