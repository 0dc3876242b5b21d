"""The resumable suite runner: one folder per run, finished runs skipped, failures recorded.

Layout of a suite folder (everything the report reads)::

    OUT/suite.json                 resolved SuiteConfig, environment, data description, training
                                   question set, base-model notes, run list
    OUT/data/                      the prepared dataset (``qaembed data prepare`` output), unless
                                   ``--data`` names an existing prepared folder
    OUT/train_questions.txt        the training questions every run uses (``train_question_set: common``)
    OUT/runs/baseline/             the zero-shot base model (evaluation only)
    OUT/runs/<entry>/seed<k>/
        spec.json                  the RunSpec (with its config hash), written when the run starts
        train/                     the training run folder (metrics.jsonl, result.json, config, ...)
        eval/                      the test-split EvalResult (summary.json, per_question.parquet; pair data:
                                   per_pair.parquet too, with thresholds chosen on dev), and
                                   map_sample.npz: the run's embeddings of the maps' sample (map_points)
        status.json                written last and atomically: status ok|failed, error, timings

A run is *finished* when ``status.json`` says ``ok`` with the run's current config hash;
re-running the suite skips it. A run with a ``spec.json`` of the same hash but no
``status.json`` was interrupted and is resumed (``resume=True``); anything else (failed, a
stale hash, an unreadable ``spec.json``/``status.json``) is redone: the files qaembed wrote
there are removed (never anything else), and the progress display says why. A run that raises is recorded as ``failed`` with its
error and the suite goes on. ``KeyboardInterrupt`` propagates after closing the progress
display: the interrupted run has no ``status.json``, so nothing half-done is marked done.

The work of one run is an injectable function (:data:`RunFunction`); the default,
:func:`train_and_evaluate`, trains with :func:`qaembed.train.train` and evaluates with
:func:`qaembed.evaluate.evaluate_model`. Tests inject fakes.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from qaembed.errors import ConfigError, DataError, QaembedError, format_validation_error
from qaembed.jsonfiles import write_json
from qaembed.outputs import check_no_links, check_output_dir, open_append, replace_text, writing_alone
from qaembed.provenance import environment
from qaembed.suite.dataset import mine_suite_data, resolve_suite_data
from qaembed.suite.grid import RunSpec, SuiteConfig, check_entries, expand_runs

STATUS_FILE = "status.json"
TRAIN_SUBDIR = "train"  # the training run folder (qaembed.train layout)
EVAL_SUBDIR = "eval"  # the test-split EvalResult
SPEC_FILE = "spec.json"
RUN_LOG = "run.log"  # the run's stderr when the suite runs under the CLI
LAUNCH_CONFIG = "train_config.yaml"  # the training config of a run launched in several processes
SUITE_FILE = "suite.json"
TRAIN_QUESTIONS_FILE = "train_questions.txt"
RUN_FILES = (SPEC_FILE, STATUS_FILE, RUN_LOG, TRAIN_SUBDIR, EVAL_SUBDIR, LAUNCH_CONFIG)  # all a run folder holds


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
    # compute really spent by the training run (None for the baseline): see qaembed.train.budget
    steps: int | None = None
    texts: int | None = None
    tokens: int | None = None
    questions: int | None = None  # questions trained on (with repeats)
    question_order: str | None = None  # hash of the trained question-id sequence
    processes: int | None = None  # training processes (one per GPU; the same global batch whatever the number)
    corpus_documents: int | None = None  # documents the test questions were ranked against
    extra_documents: int | None = None  # of those, documents no question owns (the dataset's corpus.jsonl)
    finished_at: str


@dataclass
class RunOutcome:
    """What a run function returns (timings are measured by the function itself)."""

    summary: dict[str, float]
    train_time_s: float | None = None
    eval_time_s: float | None = None
    texts_per_s: float | None = None
    spent: dict[str, int | str] = field(default_factory=dict)  # steps, texts, tokens, questions, question_order


class SuiteProgress(Protocol):
    """Progress display hooks (the CLI shows rich bars; tests and libraries use :class:`NoProgress`)."""

    def message(self, text: str) -> None: ...
    def suite_started(self, total_runs: int) -> None: ...
    def run_started(self, spec: RunSpec) -> None: ...
    def run_planned(self, total_steps: int) -> None: ...
    def run_advanced(self, step: int) -> None: ...
    def run_finished(self, spec: RunSpec, status: str) -> None: ...


class NoProgress:
    def message(self, text: str) -> None:
        pass

    def suite_started(self, total_runs: int) -> None:
        pass

    def run_started(self, spec: RunSpec) -> None:
        pass

    def run_planned(self, total_steps: int) -> None:
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
    train_questions_file: Path | None = None  # the common training questions (None: each entry its own)
    progress: SuiteProgress = field(default_factory=NoProgress)
    log_to_file: bool = False  # send each run's stderr (progress bars, warnings) to run_dir/run.log
    processes: int = 1  # training processes per run: above 1, torchrun launches them (qaembed.train.launch)


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
    """The run's ``status.json`` (None when absent); an unreadable one is a DataError naming it."""
    path = run_dir / STATUS_FILE
    if not path.is_file():
        return None
    try:
        return RunStatus.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise DataError(f"unreadable run status ({format_validation_error(exc, 'invalid')})", path=str(path)) from exc


def _read_spec_hash(run_dir: Path) -> str | None:
    path = run_dir / SPEC_FILE
    if not path.is_file():
        return None
    try:
        return RunSpec.model_validate_json(path.read_bytes()).config_hash
    except ValidationError as exc:
        raise DataError(f"unreadable run spec ({format_validation_error(exc, 'invalid')})", path=str(path)) from exc


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _clear_run_dir(run_dir: Path) -> None:
    """Remove what qaembed wrote in a run folder (:data:`RUN_FILES`); anything else stays."""
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _prepare_run_dir(spec: RunSpec, run_dir: Path, progress: SuiteProgress) -> tuple[RunStatus | None, bool]:
    """Decide what to do with a run folder: (its status if finished, resume?); clears stale or failed runs."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, where the suite keeps run {spec.run_id}: move it away")
    try:
        status = read_status(run_dir)
        if status is not None and status.status == "ok" and status.config_hash == spec.config_hash:
            return status, False
        if status is None and _read_spec_hash(run_dir) == spec.config_hash:
            return None, True  # interrupted with the same config: resume from its checkpoints
    except DataError as exc:
        progress.message(f"{exc}: run {spec.run_id} is redone")
    if run_dir.exists():
        _clear_run_dir(run_dir)
    return None, False


def _check_out_dir(out_dir: Path) -> None:
    """Fail before any work when the suite folder cannot be used (the checks every command shares), then create it."""
    check_output_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot create the folder ({exc.strerror})") from exc


def train_question_ids(config: SuiteConfig, dataset_dir: Path) -> tuple[list[str] | None, str]:
    """The training questions of every run (None: each entry its own) and a one-line description.

    ``common``: the train questions that every entry's strategy can use (e.g. 2+ answers when
    the grid holds listwise or triplet with hard negatives), then the first ``train_questions``
    of them, in split order.
    """
    from qaembed.batching import build_strategy
    from qaembed.data.dataset import read_split
    from qaembed.data.pairs import is_pair_dataset, read_pair_split

    if is_pair_dataset(dataset_dir):  # every pair entry batches with the pairs strategy: the same train pairs
        pairs = read_pair_split(dataset_dir, "train")
        chosen = pairs[: config.train_questions] if config.train_questions else pairs
        text = f"{len(chosen)} train pairs of {len(pairs)} ({sum(p.label for p in chosen)} duplicates), the same for every entry"
        if config.train_questions is not None and len(pairs) > config.train_questions:
            text += f", first {config.train_questions} in split order"
        return [pair.id for pair in chosen], text
    records = read_split(dataset_dir, "train")
    if config.train_question_set == "each":
        cap = f" (the first {config.train_questions} of them)" if config.train_questions else ""
        return None, f"each entry trains on the train questions its own strategy can use{cap}"
    strategies = [build_strategy(entry.strategy, entry.strategy_options) for entry in config.entries]
    eligible = [record for record in records if all(strategy.eligible(record) for strategy in strategies)]
    if not eligible:
        raise DataError(f"no train question can be used by every entry of the grid ({len(records)} train questions); "
                        "set train_question_set: each", path=str(dataset_dir))
    rules = sorted({f"{e.strategy}" for e in config.entries})
    chosen = eligible[: config.train_questions] if config.train_questions else eligible
    text = (f"{len(chosen)} train questions, the same for every entry: those every strategy of the grid "
            f"({', '.join(rules)}) can use ({len(eligible)} of {len(records)})")
    if config.train_questions is not None and len(eligible) > config.train_questions:
        text += f", first {config.train_questions} in split order"
    return [record.id for record in chosen], text


def _base_model_notes(config: SuiteConfig, dataset_dir: Path) -> list[str]:
    """What the base model already saw of this kind of data, from its model card (contamination)."""
    from qaembed.data.pairs import is_pair_dataset
    from qaembed.suite.contamination import base_model_notes, pair_base_model_notes

    try:
        if is_pair_dataset(dataset_dir):
            return pair_base_model_notes(config.model, dataset_dir)
        return base_model_notes(config.model, dataset_dir)
    except QaembedError as exc:  # said in the report, not silently dropped
        return [f"The base model's training data could not be checked ({exc})."]


def run_suite(
    config: SuiteConfig,
    out_dir: str | Path,
    run_fn: RunFunction | None = None,
    progress: SuiteProgress | None = None,
    log_to_file: bool = False,
    executor: RunExecutor | None = None,
    processes_per_run: int = 1,
) -> SuiteResult:
    """Prepare (or reuse) the data, write ``suite.json``, then run every run not finished yet.

    ``run_fn`` defaults to :func:`train_and_evaluate`. Entries are validated against the
    loss and strategy registries before anything runs. ``executor`` (None: one run after
    another here) runs the pending runs elsewhere, e.g. on Ray (:mod:`qaembed.suite.ray_executor`).
    ``processes_per_run`` > 1 trains each run in that many processes (one per GPU) with the same
    global batch (:mod:`qaembed.train.launch`); it does not change what a run computes, so it is
    not part of the runs' config hashes.
    """
    # tasks on other machines start in another working folder: the paths they are given are absolute
    out_dir = Path(out_dir) if executor is None else Path(out_dir).resolve()
    progress = progress or NoProgress()
    _check_out_dir(out_dir)
    _check_processes(config, processes_per_run)
    with writing_alone(out_dir, "qaembed suite"):  # two suites in one folder would run the same runs into it
        return _run_suite(config, out_dir, run_fn=run_fn, progress=progress, log_to_file=log_to_file,
                          executor=executor, processes_per_run=processes_per_run)


def _run_suite(config: SuiteConfig, out_dir: Path, *, run_fn: RunFunction | None, progress: SuiteProgress,
               log_to_file: bool, executor: RunExecutor | None, processes_per_run: int) -> SuiteResult:
    if executor is None:
        data = resolve_suite_data(config.data, out_dir, prepare=_prepare_config(config))
    else:  # a task with a run's resources: the driver may be a small head node
        data = executor.call(resolve_suite_data, _absolute_sources(config.data), out_dir, _prepare_config(config))
    if data.notice:
        progress.message(data.notice)
    check_entries(config.entries, data.kind)  # pair data needs pair entries and vice versa, before any run
    if config.mine_negatives and data.kind == "pairs":
        raise ConfigError("mine_negatives: pair data brings its own labelled non-duplicates; mining is for Q&A data")
    if config.mine_negatives:  # once per suite, on the executor when there is one (a Ray task with a run's resources)
        mine = executor.call if executor is not None else _call_here
        data = mine(mine_suite_data, data, out_dir, config.model)
    train_ids, train_text = train_question_ids(config, data.dataset_dir)
    train_file = None
    if train_ids is not None:
        train_file = out_dir / TRAIN_QUESTIONS_FILE
        replace_text(train_file, "".join(f"{question_id}\n" for question_id in train_ids))
    train_set_hash = hashlib.sha256("\n".join(train_ids or ["each"]).encode()).hexdigest()[:16]
    runs = expand_runs(config, data.hash, train_set_hash)
    try:
        dataset_dir = str(data.dataset_dir.resolve().relative_to(out_dir.resolve()))
    except ValueError:
        dataset_dir = str(data.dataset_dir.resolve())
    write_json(out_dir / SUITE_FILE, {
        "config": config.model_dump(mode="json"),
        "data": {"dataset_dir": dataset_dir, "hash": data.hash, "description": data.description, "kind": data.kind,
                 "counts": data.counts, "test_questions_cap": config.test_questions,
                 "train_questions": {"count": len(train_ids) if train_ids is not None else None,
                                     "description": train_text, "hash": train_set_hash},
                 "split": {"test_after": str(config.test_after) if config.test_after else None,
                           "dev_after": str(config.dev_after) if config.dev_after else None}},
        "base_model_notes": _base_model_notes(config, data.dataset_dir),
        "environment": environment(),
        "runs": [r.model_dump(mode="json") for r in runs],
        "written_at": _now(),
    })
    return execute_runs(config, out_dir, runs, data.dataset_dir, run_fn=run_fn, progress=progress,
                        log_to_file=log_to_file, train_questions_file=train_file, executor=executor,
                        processes_per_run=processes_per_run)


def _absolute_sources(data: list[str] | None) -> list[str] | None:
    """The data sources with the paths that exist here made absolute (another process may have another working
    folder); anything else (a Hugging Face name, ...) as it is."""
    if data is None:
        return None
    return [str(Path(source).resolve()) if Path(source).exists() else source for source in data]


def _check_processes(config: SuiteConfig, processes: int) -> None:
    if processes < 1:
        raise ConfigError(f"processes per run must be >= 1, got {processes}")
    if config.batch_size % processes:
        raise ConfigError(f"batch_size {config.batch_size} does not split into {processes} processes per run "
                          f"(every run keeps the same global batch: choose a multiple of {processes})")


def _prepare_config(config: SuiteConfig):
    """How the suite prepares its data from sources (a date split when ``test_after`` is set)."""
    from qaembed.data.prepare import PrepareConfig

    if config.test_after is None:
        if config.dev_after is not None:
            raise ConfigError("dev_after needs test_after (a date split)")
        return PrepareConfig()
    return PrepareConfig(split_mode="by-date", test_after=config.test_after, dev_after=config.dev_after)


def execute_runs(
    config: SuiteConfig,
    out_dir: Path,
    runs: list[RunSpec],
    dataset_dir: Path,
    run_fn: RunFunction | None = None,
    progress: SuiteProgress | None = None,
    log_to_file: bool = False,
    train_questions_file: Path | None = None,
    executor: RunExecutor | None = None,
    processes_per_run: int = 1,
) -> SuiteResult:
    """Run every spec not finished yet; returns every run's status, in the order of ``runs``.

    Without ``executor`` the runs go one after another in this process; with one (e.g.
    :class:`qaembed.suite.ray_executor.RayExecutor`) the runs not finished yet are handed to it.
    """
    run_fn = run_fn or train_and_evaluate
    progress = progress or NoProgress()
    _check_processes(config, processes_per_run)
    context = RunContext(config=config, dataset_dir=dataset_dir, train_questions_file=train_questions_file,
                         progress=progress, log_to_file=log_to_file, processes=processes_per_run)
    statuses: dict[str, RunStatus] = {}
    skipped: list[str] = []
    pending: list[tuple[RunSpec, Path, bool]] = []
    progress.suite_started(len(runs))
    for spec in runs:
        run_dir = out_dir / "runs" / spec.run_id
        # a run folder is cleared and written: a link on the way (runs/, runs/ENTRY, the run, its train/ or eval/)
        # would send the deletes and writes elsewhere
        for name in (TRAIN_SUBDIR, EVAL_SUBDIR):
            check_no_links(out_dir, run_dir / name)
        finished, resume = _prepare_run_dir(spec, run_dir, progress)
        if finished is not None:
            statuses[spec.run_id] = finished
            skipped.append(spec.run_id)
            progress.run_finished(spec, "skipped")
        elif executor is not None:
            pending.append((spec, run_dir, resume))
        else:
            progress.run_started(spec)
            statuses[spec.run_id] = run_one(spec, context, run_dir, resume, run_fn)
            progress.run_finished(spec, statuses[spec.run_id].status)
    if pending:
        for spec, status in executor.run(pending, context, run_fn):
            statuses[spec.run_id] = status
            progress.run_finished(spec, status.status)
    return SuiteResult(statuses=[statuses[spec.run_id] for spec in runs], skipped=skipped)


class RunExecutor(Protocol):
    """Runs specs elsewhere (other processes or machines); yields ``(spec, status)`` as each finishes."""

    def run(self, pending: list[tuple[RunSpec, Path, bool]], context: RunContext,
            run_fn: RunFunction) -> Iterator[tuple[RunSpec, RunStatus]]: ...

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` run where the runs run (the suite's mining), its result returned here."""
        ...


def _call_here(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def run_one(spec: RunSpec, context: RunContext, run_dir: Path, resume: bool, run_fn: RunFunction) -> RunStatus:
    """One run into ``run_dir``: its spec, then ``run_fn``, then its status (a failure is recorded, not raised)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / SPEC_FILE, spec.model_dump(mode="json"))
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
            **outcome.spent,
        )
    write_json(run_dir / STATUS_FILE, status.model_dump(mode="json"))
    return status


def failed_status(spec: RunSpec, error: str, wall_time_s: float) -> RunStatus:
    """The status of a run that could not report one itself (its worker died, every retry too)."""
    return RunStatus(run_id=spec.run_id, label=spec.label, kind=spec.kind, seed=spec.seed,
                     config_hash=spec.config_hash, status="failed", error=error, wall_time_s=wall_time_s,
                     finished_at=_now())


@contextlib.contextmanager
def _stderr_to(path: Path | None) -> Iterator[None]:
    """Redirect ``sys.stderr`` to ``path`` (appending) for the block; no-op for None."""
    if path is None:
        yield
        return
    with open_append(path) as log, contextlib.redirect_stderr(log):  # a link at the log's name is refused
        yield


def train_config_for(spec: RunSpec, config: SuiteConfig, dataset_dir: Path, train_questions_file: Path | None = None):
    """The :class:`qaembed.train.TrainConfig` of one training run: the entry under the shared budget."""
    from qaembed.train.config import parse_config

    if spec.entry is None:
        raise ValueError("the baseline run has no training config")
    entry = spec.entry
    data = {"dataset": str(dataset_dir), "query_text": config.query_text, "max_dev_questions": config.dev_questions}
    if train_questions_file is not None:
        data["train_questions_file"] = str(train_questions_file)  # already capped at train_questions
    else:
        data["max_train_questions"] = config.train_questions
    raw = {
        "model": {"base": config.model, "max_seq_length": config.max_seq_length},
        "data": data,
        **entry.training_sections(),
        "training": {
            "batch_size": config.batch_size, "budget": {"unit": config.budget_unit, "amount": config.budget},
            "lr": config.learning_rate, "warmup_ratio": config.warmup_ratio, "seed": spec.seed,
            "eval_every": config.eval_every, "save_every": config.save_every, "log_every": 1,
        },
    }
    return parse_config(raw, source=f"suite entry {entry.name!r}")


def evaluation_records(config: SuiteConfig, dataset_dir: Path) -> tuple[list, list]:
    """(the test questions every run is evaluated on, the distractor questions whose answers join the corpus).

    Test questions are the first ``test_questions`` of the test split. With ``corpus: all`` the
    retrieval corpus is every answer of the prepared data: the answers of the train, dev and
    remaining test questions are distractors (gain 0), the first ``distractor_questions`` of
    them in that order when capped.
    """
    from qaembed.data.dataset import read_split

    records = read_split(dataset_dir, "test")
    cap = config.test_questions if config.test_questions is not None else len(records)
    evaluated, rest = records[:cap], records[cap:]
    if config.corpus == "test":
        return evaluated, []
    distractors = read_split(dataset_dir, "train") + read_split(dataset_dir, "dev") + rest
    if config.distractor_questions is not None:
        distractors = distractors[: config.distractor_questions]
    return evaluated, distractors


def extra_documents(config: SuiteConfig, dataset_dir: Path) -> list:
    """The dataset's documents that no question owns (``corpus.jsonl``, e.g. chunked passages), with ``corpus: all``
    and no ``distractor_questions`` cap: then the retrieval corpus is every document of the prepared data."""
    from qaembed.data.dataset import read_corpus

    if config.corpus == "test" or config.distractor_questions is not None:
        return []
    return read_corpus(dataset_dir)


def evaluation_pairs(config: SuiteConfig, dataset_dir: Path) -> tuple[list, list]:
    """Pair data: (the test pairs every run is evaluated on: the first ``test_questions`` pairs, the dev pairs
    that choose the classification thresholds: the first ``dev_questions``, as in training)."""
    from qaembed.data.pairs import read_pair_split

    test = read_pair_split(dataset_dir, "test")
    dev = read_pair_split(dataset_dir, "dev")
    return test[: config.test_questions], dev[: config.dev_questions]


def map_sample(config: SuiteConfig, dataset_dir: Path):
    """The embedding maps' sample (None when ``map_points`` is None): seeded, from the evaluated test split."""
    from qaembed.data.pairs import is_pair_dataset
    from qaembed.embedding_maps import pair_sample, qa_sample

    if config.map_points is None:
        return None
    if is_pair_dataset(dataset_dir):
        return pair_sample(evaluation_pairs(config, dataset_dir)[0], config.map_points, seed=0)
    return qa_sample(evaluation_records(config, dataset_dir)[0], config.map_points, seed=0, query_text=config.query_text)


def train_and_evaluate(spec: RunSpec, context: RunContext, run_dir: Path, resume: bool) -> RunOutcome:
    """The default run: train (unless baseline) into ``run_dir/train``, evaluate on test into ``run_dir/eval``."""
    with _stderr_to(run_dir / RUN_LOG if context.log_to_file else None):
        return _train_and_evaluate(spec, context, run_dir, resume)


def _train_and_evaluate(spec: RunSpec, context: RunContext, run_dir: Path, resume: bool) -> RunOutcome:
    from qaembed.evaluate import EvalConfig, evaluate_model
    from qaembed.model import load_encoder

    config = context.config
    train_time = texts_per_s = None
    spent: dict[str, int | str] = {}
    if spec.kind == "train":
        from qaembed.train import train

        train_config = train_config_for(spec, config, context.dataset_dir, context.train_questions_file)
        started = time.perf_counter()
        if context.processes > 1:  # torchrun: the same global batch split between the processes
            from qaembed.train.launch import launch_train, split_config

            result = launch_train(split_config(train_config, context.processes), run_dir / TRAIN_SUBDIR,
                                  processes=context.processes, resume=resume, config_path=run_dir / LAUNCH_CONFIG,
                                  log_path=run_dir / RUN_LOG, step_callback=context.progress.run_advanced,
                                  plan_callback=context.progress.run_planned)
        else:
            result = train(train_config, run_dir / TRAIN_SUBDIR, resume=resume,
                           step_callback=context.progress.run_advanced, plan_callback=context.progress.run_planned,
                           progress_bar=False)
        train_time, texts_per_s = time.perf_counter() - started, result.texts_per_s
        spent = {"steps": result.steps, "texts": result.texts, "tokens": result.tokens, "questions": result.questions,
                 "question_order": result.question_order, "processes": context.processes}
        model_path = result.model_dir
    else:
        model_path = config.model
    started = time.perf_counter()
    eval_config = EvalConfig(query_mode=config.query_text)  # fixed in-batch groups, as in dev evaluation
    if spec.entry is not None and spec.entry.test_scorer == "maxsim":  # token embeddings (a MaxSim-only folder too)
        from qaembed.model import load_token_encoder

        model = load_token_encoder(model_path, device=None)
        from qaembed.late_interaction import ColbertTokens

        colbert = ColbertTokens.of_scorer(spec.entry.scorer)
        eval_config = eval_config.model_copy(update={
            "scorer": "maxsim", "query_length": spec.entry.scorer.query_length, "query_prefix": colbert.query_prefix,
            "document_prefix": colbert.document_prefix, "query_expansion": colbert.query_expansion})
    else:
        model = load_encoder(model_path, device=None)
    model.max_seq_length = config.max_seq_length
    from qaembed.data.pairs import is_pair_dataset

    if is_pair_dataset(context.dataset_dir):  # duplicate retrieval + classification at dev thresholds
        from qaembed.arrayfiles import write_parquet
        from qaembed.evaluate.pairs import PER_PAIR_FILE, evaluate_pairs

        pairs, threshold_pairs = evaluation_pairs(config, context.dataset_dir)
        evaluation, per_pair = evaluate_pairs(model, pairs, threshold_pairs=threshold_pairs, config=EvalConfig())
        evaluation.save(run_dir / EVAL_SUBDIR)
        write_parquet(per_pair, run_dir / EVAL_SUBDIR / PER_PAIR_FILE)
    else:
        evaluated, distractors = evaluation_records(config, context.dataset_dir)
        evaluation = evaluate_model(model, evaluated, distractors=distractors, config=eval_config,
                                    extra_documents=extra_documents(config, context.dataset_dir))
        evaluation.save(run_dir / EVAL_SUBDIR)
    spent["corpus_documents"] = int(evaluation.counts["retrieval/documents"])
    spent["extra_documents"] = int(evaluation.counts.get("retrieval/extra_documents", 0)) or None
    # maps are of pooled embeddings: a MaxSim-scored run has none to draw
    sample = map_sample(config, context.dataset_dir) if eval_config.scorer != "maxsim" else None
    if sample is not None:  # a few hundred texts: the report's base-vs-best maps need no kept model
        from qaembed.embedding_maps import SAMPLE_FILE, embed, save_sample_embeddings

        save_sample_embeddings(run_dir / EVAL_SUBDIR / SAMPLE_FILE, sample, embed(model, sample.texts))
    eval_time = time.perf_counter() - started
    if spec.kind == "train" and not config.keep_models:
        for name in ("model", "best_model", "checkpoints"):
            shutil.rmtree(run_dir / TRAIN_SUBDIR / name, ignore_errors=True)
    return RunOutcome(summary=evaluation.summary, train_time_s=train_time, eval_time_s=eval_time,
                      texts_per_s=texts_per_s, spent=spent)
