"""One training run in several processes from Python: ``torchrun`` around ``qaembed train``.

What the suite uses to give a run several GPUs (``qaembed suite --processes-per-run N``, or
``--gpus-per-run N`` on Ray). The run is the same ranking problem and the same compute as in
one process (:func:`split_config`): the global batch stays ``batch_size`` questions, each of
the ``N`` processes takes ``batch_size / N`` of them, and the embeddings of every process's
shard are gathered with gradient (``training.gather_across_devices``), so every process
computes the loss of the whole batch and DDP's averaged gradient is the single-process
gradient (``qaembed.train.distributed``). Only float rounding differs.

:func:`launch_train` runs ``python -m torch.distributed.run --standalone --nproc-per-node N
-m qaembed train --config FILE --out DIR [--resume]`` (torch's own launcher, not a home-made
one; ``--standalone`` picks a free rendezvous port, so several launched runs share a node) and
reads the run's ``result.json``. Each process takes GPU ``LOCAL_RANK`` of those visible (under
Ray, the task's); on a machine without CUDA the processes use gloo on the CPU. The launcher is
started in its own session and killed with its processes if the caller is interrupted; on Linux
the kernel also ends them when the caller is killed (:mod:`qaembed.subprocesses`).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from qaembed.errors import ConfigError
from qaembed.outputs import open_append
from qaembed.subprocesses import DIE_WITH_PARENT, RUN_MODULE_DYING_WITH_PARENT, available_cpus
from qaembed.train.trackers import METRICS_FILE

_POLL_SECONDS = 1.0  # how often a launched run's progress is read from its metrics.jsonl


def split_config(config, processes: int):
    """``config`` for ``processes`` processes with the same global batch and gathered negatives.

    Raises :class:`ConfigError` when the batch does not split evenly.
    """
    training = config.training
    if processes < 1:
        raise ConfigError(f"processes per run must be >= 1, got {processes}")
    if processes == 1:
        return config
    if training.batch_size % processes:
        raise ConfigError(f"training.batch_size {training.batch_size} does not split into {processes} processes "
                          f"(the global batch must stay the same for every run: choose a multiple of {processes})")
    training = training.model_copy(update={"batch_size": training.batch_size // processes,
                                           "gather_across_devices": True})
    return config.model_copy(update={"training": training})


def launch_train(config, run_dir: Path, *, processes: int, resume: bool, config_path: Path, log_path: Path,
                 step_callback: Callable[[int], None] | None = None,
                 plan_callback: Callable[[int], None] | None = None):
    """Train ``config`` (already split: :func:`split_config`) into ``run_dir`` in ``processes`` processes.

    The config the processes read is written to ``config_path``; their output is appended to
    ``log_path``. While they train, ``plan_callback(total_steps)`` and ``step_callback(step)`` follow
    the run's ``metrics.jsonl`` (every logged step; :class:`MetricsFollower`), as
    :func:`~qaembed.train.train` calls them in one process. Returns the run's
    :class:`~qaembed.train.loop.TrainResult`; raises
    ``RuntimeError`` with the end of the log when the launched training fails,
    :class:`ConfigError` when CUDA is there but has fewer GPUs than processes.
    """
    import torch

    from qaembed.train.config import save_config
    from qaembed.train.loop import finished_result

    if torch.cuda.is_available() and torch.cuda.device_count() < processes:
        raise ConfigError(f"{processes} training processes per run, but {torch.cuda.device_count()} GPU(s) are "
                          "visible here (one process per GPU)")
    run_dir = Path(run_dir)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    save_config(config, config_path)
    # torchrun (and, through the environment, each training process) dies with this process: a killed suite worker
    # leaves no training writing into the run folder that a retry resumes (qaembed.subprocesses)
    arguments = ["--standalone", "--nproc-per-node", str(processes), "-m", "qaembed", "train",
                 "--config", str(config_path), "--out", str(run_dir)] + (["--resume"] if resume else [])
    command = [sys.executable, "-c", RUN_MODULE_DYING_WITH_PARENT, "torch.distributed.run", *arguments]
    env = {**os.environ, DIE_WITH_PARENT: "1"}
    threads = env.get("OMP_NUM_THREADS", "")  # this run's CPU threads (Ray sets the task's CPUs), shared out
    env["OMP_NUM_THREADS"] = str(max(1, (int(threads) if threads.isdigit() else available_cpus()) // processes))
    with open_append(log_path) as log:  # never through a link planted at the log's name
        start = log.tell()  # this launch's part of the log
        log.write(f"$ {shlex.join(['torchrun', *arguments])}\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        follower = MetricsFollower(run_dir / METRICS_FILE, step_callback=step_callback, plan_callback=plan_callback)
        try:
            while True:
                try:
                    returncode = process.wait(timeout=_POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    follower.poll()
            follower.poll()
        finally:
            if process.poll() is None:  # interrupted here: the launcher and its processes go too
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    result = finished_result(run_dir) if returncode == 0 else None
    if result is None:
        reasons = _errors(log_path, since=start)
        said = "; ".join(reasons) if reasons else f"the end of the log:\n{_tail(log_path, since=start)}"
        raise RuntimeError(f"training in {processes} processes failed (exit {returncode}): {said} (log: {log_path})")
    return result


class MetricsFollower:
    """Reads the lines a training run appends to its ``metrics.jsonl`` and reports its progress.

    :meth:`poll` reads the complete lines added since the last call (a line being written is left
    for the next) and calls ``plan_callback(total_steps)`` when the run's length is first seen (or
    changes) and ``step_callback(step)`` with the newest logged step. On a resumed run the lines
    of the earlier attempt come first, so the progress starts where the checkpoint left it (at most
    a log interval further: the line after the checkpoint's step may already be there).
    """

    def __init__(self, path: Path, *, step_callback: Callable[[int], None] | None = None,
                 plan_callback: Callable[[int], None] | None = None):
        self.path, self.step_callback, self.plan_callback = path, step_callback, plan_callback
        self.offset, self.total_steps, self.step = 0, None, None

    def poll(self) -> None:
        if self.step_callback is None and self.plan_callback is None:
            return
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return
        complete = data.rfind(b"\n") + 1
        self.offset += complete
        step = total = None
        for line in data[:complete].splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # not a line the progress needs; the run's own readers report bad lines
                continue
            if isinstance(record, dict) and isinstance(record.get("total_steps"), int):
                total, step = record["total_steps"], record.get("step")
        if total is not None and total != self.total_steps and self.plan_callback is not None:
            self.total_steps = total
            self.plan_callback(total)
        if isinstance(step, int) and step != self.step and self.step_callback is not None:
            self.step = step
            self.step_callback(step)


def _lines(path: Path, since: int) -> list[str]:
    with path.open("rb") as fh:
        fh.seek(since)
        return fh.read().decode("utf-8", errors="replace").splitlines()


def _errors(path: Path, since: int) -> list[str]:
    """The ``error: ...`` lines the processes printed (qaembed's one-line errors), each once."""
    return list(dict.fromkeys(line for line in _lines(path, since) if line.startswith("error: ")))


def _tail(path: Path, since: int, lines: int = 15) -> str:
    return "\n".join(_lines(path, since)[-lines:])
