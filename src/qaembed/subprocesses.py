"""Processes: the CPUs this one may use, and children that do not outlive their parent (Linux).

A suite run on several processes is ``torchrun`` under the run's own process (a Ray worker,
say). If that process is killed, a retry resumes the run from its checkpoints; a training left
running would write into the same folder. So the launcher (:mod:`qaembed.train.launch`) asks
the kernel to kill ``torchrun`` when its parent dies (``PR_SET_PDEATHSIG``), and sets
:data:`DIE_WITH_PARENT` for the training processes, which ask the same when they start
(:func:`qaembed.cli.main`). Elsewhere than Linux this is a no-op: the launcher still stops the
processes when it is interrupted, but not when it is killed outright.
"""

from __future__ import annotations

import os
import signal
import sys

DIE_WITH_PARENT = "QAEMBED_DIE_WITH_PARENT"  # set for processes that should end with their parent
_PR_SET_PDEATHSIG = 1
# `python -c` code that runs a module as __main__ (its arguments after it) once it dies with its parent
RUN_MODULE_DYING_WITH_PARENT = (
    "import runpy, sys\n"
    "from qaembed.subprocesses import die_with_parent\n"
    "die_with_parent()\n"
    "module = sys.argv.pop(1)\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel send this process SIGKILL when its parent process dies (Linux; elsewhere nothing).

    ``parent``: the parent's pid, when known (a pool's initializer is given it): if the process was
    already adopted by another before the call, it ends at once; without it, adoption by init is the sign.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    adopted = os.getppid() != parent if parent is not None else os.getppid() == 1
    if adopted:  # the parent was already gone before the call
        os._exit(1)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (this one counts): the owner of a temporary folder named by pid."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or not a possible pid
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
