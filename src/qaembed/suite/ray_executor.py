"""The suite's runs as Ray tasks: ``qaembed suite --executor ray [--ray-address auto]``.

Each run not finished yet (the baseline included) becomes one Ray task with declared resources
(``cpus_per_run``, ``gpus_per_run``); Ray places them on the cluster's nodes, as many at once as the
resources allow. A run given several GPUs trains in as many processes on them (``torchrun`` inside
the task, :mod:`qaembed.train.launch`), with the same global batch as on one. A task runs
:func:`qaembed.suite.runner.run_one` exactly as the local executor does, into the same run folder
under the suite folder, so on a cluster that folder must be on a filesystem every node sees (the
data, ``train_questions.txt`` and the base model path too).

* **Finished runs are never redone**: the driver skips them before submitting anything (the
  config-hash check of the local executor), and a task re-checks its folder when it starts.
* **A killed worker is retried** (``max_retries``, Ray's retry of tasks whose worker process
  died) and the retry **resumes** from the run's checkpoints (``save_every``): the folder holds
  the spec and no status, which is the local executor's "interrupted: resume" state. A run that
  raises is not retried: it is recorded as failed, as locally.
* **Data preparation and mining run as Ray tasks too** (once per suite, with a run's resources, before
  the runs): streaming the sources and the base model's corpus encoding (``mine_negatives: true``)
  happen on a worker (its cores, its GPU), not in the driver.
* **The report is the local report**: it is built from the run folders afterwards, which hold
  the same files whichever executor wrote them (test: same numbers, local vs a 2-CPU Ray cluster).

Ray is an optional dependency: ``pip install 'qaembed[ray]'``. Without ``address`` a local Ray
instance is started for the suite and stopped after it; ``address="auto"`` joins a running
cluster (``ray start --head`` on one node, ``ray start --address HEAD:6379`` on the others).
Progress is reported per finished run (live step bars stay with the local executor); each run's
stderr goes to its ``run.log``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from qaembed.errors import ConfigError
from qaembed.jsonfiles import write_json
from qaembed.suite.grid import RunSpec
from qaembed.suite.runner import (
    STATUS_FILE,
    NoProgress,
    RunContext,
    RunFunction,
    RunStatus,
    _prepare_run_dir,
    failed_status,
    run_one,
)

INSTALL_HINT = "the Ray executor needs Ray: pip install 'qaembed[ray]' (or pip install 'ray>=2.9')"


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return ray


def _run_task(spec: RunSpec, context: RunContext, run_dir: str, resume: bool, run_fn: RunFunction) -> RunStatus:
    """One run on a Ray worker. A retry (its worker died) finds the spec and no status: it resumes."""
    folder = Path(run_dir)
    finished, resume_now = _prepare_run_dir(spec, folder, NoProgress())
    if finished is not None:  # an earlier attempt finished and reported before its worker died
        return finished
    return run_one(spec, context, folder, resume or resume_now, run_fn)


@dataclasses.dataclass
class RayExecutor:
    """Runs the suite's pending runs as Ray tasks (see the module docstring)."""

    address: str | None = None  # None: start a local Ray for this suite; "auto" or HOST:PORT: join a cluster
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 2  # attempts after a worker process died
    init_options: dict = dataclasses.field(default_factory=dict)  # more ray.init() arguments (e.g. num_cpus)

    def __post_init__(self) -> None:
        if self.cpus_per_run <= 0 or self.gpus_per_run < 0 or self.max_retries < 0:
            raise ConfigError("ray executor: cpus per run must be > 0, gpus per run and retries >= 0")
        if self.gpus_per_run > 1 and self.gpus_per_run != int(self.gpus_per_run):
            raise ConfigError(f"ray executor: --gpus-per-run {self.gpus_per_run}: above 1 GPU a run takes whole GPUs "
                              "(one training process each); fractions below 1 share a GPU")
        _import_ray()  # fail before any work when Ray is missing

    def _start(self) -> bool:
        """Connect to (or start) Ray; True when this call started it (and must shut it down)."""
        ray = _import_ray()
        if ray.is_initialized():
            return False
        ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **self.init_options)
        return True

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as one Ray task with a run's resources (the suite's mining: it loads the base model and
        encodes the corpus, so it belongs on a worker with the runs' GPU); retried like a run when its worker dies."""
        ray = _import_ray()
        started_here = self._start()
        try:
            task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=self.max_retries,
                              retry_exceptions=False)(fn)
            return ray.get(task.remote(*args))
        except ray.exceptions.RayTaskError as exc:  # fn raised on the worker: the same error as locally
            raise exc.as_instanceof_cause() from None
        finally:
            if started_here:
                ray.shutdown()

    def run(self, pending: list[tuple[RunSpec, Path, bool]], context: RunContext,
            run_fn: RunFunction) -> Iterator[tuple[RunSpec, RunStatus]]:
        ray = _import_ray()
        started_here = self._start()
        try:
            task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run,
                              max_retries=self.max_retries, retry_exceptions=False)(_run_task)
            # what crosses to the workers: no live progress display; each run's stderr to its run.log
            worker_context = dataclasses.replace(context, progress=NoProgress(), log_to_file=True)
            started = time.perf_counter()
            run_dirs = {spec.run_id: run_dir for spec, run_dir, _ in pending}
            refs = {task.remote(spec, worker_context, str(run_dir.resolve()), resume, run_fn): spec
                    for spec, run_dir, resume in pending}
            for spec in refs.values():
                context.progress.run_started(spec)
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                spec = refs.pop(done[0])
                try:
                    status = ray.get(done[0])
                except ray.exceptions.RayError as exc:  # the worker died on every attempt
                    error = (f"{type(exc).__name__}: the run's Ray worker died {self.max_retries + 1} time(s): "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}")
                    status = failed_status(spec, error, time.perf_counter() - started)
                    write_json(Path(run_dirs[spec.run_id]) / STATUS_FILE, status.model_dump(mode="json"))
                yield spec, status
        finally:
            if started_here:
                ray.shutdown()
