"""Read a suite folder back: its description, every run's status, per-question values and curves.

The report is generated from these files alone (see :mod:`qaembed.suite.runner` for the
layout), so it can be rebuilt at any time, e.g. after more seeds finished.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from qaembed.errors import DataError, first_problem, format_validation_error
from qaembed.jsonfiles import read_json
from qaembed.suite.grid import BASELINE_NAME, RunSpec, SuiteConfig
from qaembed.suite.runner import EVAL_SUBDIR, SPEC_FILE, STATUS_FILE, SUITE_FILE, TRAIN_SUBDIR, RunStatus, read_status
from qaembed.train.loop import METRICS_FILE


@dataclass
class RunData:
    run_id: str
    label: str  # entry name or BASELINE_NAME
    kind: str  # "train" or "baseline"
    seed: int
    status: RunStatus | None  # None: not run (or interrupted)
    per_question: pd.DataFrame | None  # test-split per-question metrics (index: question id)
    curve: pd.DataFrame | None  # one row per logged training step ("step", "loss", dev metrics ...)

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status.status == "ok"


@dataclass
class SuiteData:
    suite_dir: Path
    config: SuiteConfig  # the suite's configuration, as it was run
    data: dict[str, Any]  # data description (dataset folder, hash, counts, sites)
    environment: dict[str, Any]
    runs: list[RunData]
    base_model_notes: list[str] = field(default_factory=list)  # what the base model saw (contamination)

    def labels(self) -> list[str]:
        """Row labels in grid order: the baseline first, then every entry."""
        seen: list[str] = []
        for run in self.runs:
            if run.label not in seen:
                seen.append(run.label)
        return seen

    def runs_of(self, label: str) -> list[RunData]:
        return [r for r in self.runs if r.label == label]

    def description(self, label: str) -> str:
        for entry in self.config.entries:
            if entry.name == label:
                return entry.description
        return "zero-shot base model (no fine-tuning)" if label == BASELINE_NAME else ""


def read_curve(path: Path) -> pd.DataFrame | None:
    """A training run's ``metrics.jsonl`` as a table (None when absent)."""
    if not path.is_file():
        return None
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON: {exc.msg}", path=str(path), line=line_no) from exc
            _check_curve_record(row, path, line_no)
            rows.append(row)
    return pd.DataFrame(rows) if rows else None


def _check_curve_record(row: Any, path: Path, line_no: int) -> None:
    """A ``metrics.jsonl`` line is an object with a ``step`` whose values are numbers (NaN allowed: a diverged loss)
    or null; anything else is a DataError naming the line and field (the plots would fail on it)."""
    if not isinstance(row, dict):
        raise DataError(f"a training log record must be a JSON object, got {type(row).__name__}", path=str(path),
                        line=line_no)
    if "step" not in row:
        raise DataError("a training log record without a step", path=str(path), line=line_no, field="step")
    for key, value in row.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise DataError(f"must be a number, got {type(value).__name__} {value!r}"[:200], path=str(path),
                            line=line_no, field=key)


def _check_status_numbers(status: RunStatus, path: Path) -> None:
    """The metrics and timings of a ``status.json`` are finite (qaembed writes no other): a NaN or infinity there is a
    DataError naming the file and field, not a bare ``NaN`` in results.json or an ``inf`` in the compute table."""
    values = {f"summary.{name}": value for name, value in status.summary.items()}
    values.update((name, getattr(status, name)) for name in ("wall_time_s", "cpu_time_s", "train_time_s",
                                                             "eval_time_s", "texts_per_s"))
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise DataError(f"must be a finite number, got {value}; rerun that run", path=str(path), field=name)


def _check_per_question(table: pd.DataFrame, path: Path) -> None:
    """A run's per-question table holds one row per question and numbers (NaN: undefined for that question); a
    column of text or an infinite value is a DataError naming the file and column (the statistics would fail)."""
    if table.index.has_duplicates:
        duplicated = table.index[table.index.duplicated()].unique()
        raise DataError(f"{len(duplicated)} question id(s) appear more than once (first: {duplicated[0]!r}); rerun "
                        "that run", path=str(path))
    for column in table.columns:
        values = table[column]
        if not pd.api.types.is_numeric_dtype(values):
            raise DataError(f"holds {values.dtype} values, not numbers; rerun that run", path=str(path),
                            field=str(column))
        infinite = np.isinf(values.to_numpy(dtype=np.float64))
        if infinite.any():
            raise DataError(f"{int(infinite.sum())} infinite value(s) (first at question "
                            f"{table.index[infinite.argmax()]!r}); rerun that run", path=str(path), field=str(column))


def _check_same_questions(suite_dir: Path, runs: list[RunData]) -> None:
    """Every finished run was evaluated on the same test questions (the tests pair them question by question); a run
    whose questions differ (from another dataset, or an edited result) is a DataError naming both files, where the
    analysis would silently compare only the questions they share, or drop the run's metrics."""
    from qaembed.evaluate.result import PER_QUESTION_FILE

    finished = [run for run in runs if run.per_question is not None]
    if not finished:
        return
    first = finished[0]
    expected = set(first.per_question.index)
    for run in finished[1:]:
        questions = set(run.per_question.index)
        if questions != expected:
            missing, extra = len(expected - questions), len(questions - expected)
            path = suite_dir / "runs" / run.run_id / EVAL_SUBDIR / PER_QUESTION_FILE
            raise DataError(f"its {len(questions)} test questions are not those of run {first.run_id} "
                            f"({len(expected)}; {missing} of them missing here, {extra} here not among them): the runs "
                            f"were evaluated on different test questions; remove the folder runs/{run.run_id} and run "
                            "the suite again to redo that run", path=str(path))


def _run_spec(spec: Any, number: int, suite_file: Path) -> RunSpec:
    """One entry of ``suite.json``'s ``runs``; an invalid one (a run id leaving the suite folder) is a DataError
    naming the file and the field (``runs.N.run_id``)."""
    try:
        return RunSpec.model_validate(spec)
    except ValidationError as exc:
        problem = first_problem(exc, spec)
        raise DataError(f"{problem.message} (suite record written by an incompatible qaembed, or edited: re-run the "
                        "suite, finished runs are kept)", path=str(suite_file),
                        field=f"runs.{number}" + (f".{problem.field}" if problem.field else "")) from exc


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Split(_Open):
    test_after: StrictStr | None = None
    dev_after: StrictStr | None = None


class _TrainQuestions(_Open):
    description: StrictStr | None = None


class _DataRecord(_Open):
    dataset_dir: StrictStr | None = None
    hash: StrictStr | None = None
    description: StrictStr | None = None
    kind: Literal["qa", "pairs"] = "qa"
    counts: dict[str, StrictInt] = {}
    train_questions: _TrainQuestions | None = None
    split: _Split | None = None


class _Environment(_Open):
    git: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    hardware: dict[str, Any] = {}


class _RecordParts(BaseModel):
    """The parts of ``suite.json`` besides ``config`` and ``runs`` that the report reads, as the runner writes them."""

    data: _DataRecord = _DataRecord()
    environment: _Environment = _Environment()
    base_model_notes: list[StrictStr] = []


def load_suite(suite_dir: str | Path) -> SuiteData:
    """Read ``suite.json`` and every run folder it lists."""
    from qaembed.evaluate.result import PER_QUESTION_FILE, EvalResult

    suite_dir = Path(suite_dir)
    suite_file = suite_dir / SUITE_FILE
    if not suite_file.is_file():
        raise DataError("no suite.json here (not a suite folder?)", path=str(suite_file))
    record = read_json(suite_file)
    try:
        config = SuiteConfig.model_validate(record["config"])
        specs = [_run_spec(spec, number, suite_file) for number, spec in enumerate(record["runs"])]
        parts = {key: record[key] for key in ("data", "environment", "base_model_notes") if key in record}
        _RecordParts.model_validate(parts)
    except (KeyError, TypeError) as exc:
        raise DataError(f"not a suite record (missing {exc})", path=str(suite_file)) from exc
    except ValidationError as exc:
        raise DataError(format_validation_error(exc, "suite record written by an incompatible qaembed "
                                                "(re-run the suite, finished runs are kept)", record),
                        path=str(suite_file)) from exc
    runs: list[RunData] = []
    for spec in specs:
        run_dir = suite_dir / "runs" / spec.run_id
        status = read_status(run_dir)
        if status is not None:
            _check_status_numbers(status, run_dir / STATUS_FILE)
        if status is not None and status.config_hash != spec.config_hash:
            status = None  # left over from a different configuration
        per_question = None
        if status is not None and status.status == "ok":
            per_question = EvalResult.load(run_dir / EVAL_SUBDIR).per_question
            _check_per_question(per_question, run_dir / EVAL_SUBDIR / PER_QUESTION_FILE)
        curve = read_curve(run_dir / TRAIN_SUBDIR / METRICS_FILE) if (run_dir / SPEC_FILE).is_file() else None
        runs.append(RunData(run_id=spec.run_id, label=spec.label, kind=spec.kind, seed=spec.seed,
                            status=status, per_question=per_question, curve=curve))
    _check_same_questions(suite_dir, runs)
    return SuiteData(suite_dir=suite_dir, config=config, data=record.get("data", {}),
                     environment=record.get("environment", {}), runs=runs,
                     base_model_notes=list(record.get("base_model_notes", [])))
