"""An ordered, bounded process pool for ingestion: ``ordered_map(fn, items, workers)``.

The streaming parsers stay in the main process (they own the file, the line numbers and
the bad-record policy); the per-row work that dominates ingestion (HTML cleaning and field
validation, see ``benchmarks/RESULTS.md``) runs in worker processes on batches of rows.
Results come back **in input order**, so errors are reported and records stored exactly
as a sequential run would do them, and at most ``window`` batches are in flight, so memory
stays bounded however fast the parser reads (``multiprocessing.Pool.imap`` would queue the
whole input). ``workers <= 1`` runs ``fn`` in this process: one code path for both.

Workers are forked where the platform can (Linux): ``spawn`` and ``forkserver`` re-run the
caller's main script in each worker, which breaks every script that calls the library
without an ``if __name__ == "__main__":`` guard. The workers run plain Python and lxml (no
threads, no locks shared with the parent), which is what makes forking safe here. Elsewhere
(macOS, Windows) ``spawn`` is used and Python's main-guard rule applies. ``fn`` must be a
module-level function and its arguments and results picklable.

>>> list(ordered_map(len, [[1, 2], [3], []], workers=1))
[2, 1, 0]
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

from qaembed.subprocesses import available_cpus, die_with_parent

_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"
T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Worker processes for ingestion: the CPUs this process may use, at most 8 (then the
    parser in the main process is the bottleneck)."""
    return max(1, min(8, available_cpus()))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int, window: int | None = None) -> Iterator[R]:
    """``fn(item)`` for each item, in order; in ``workers`` processes with at most ``window`` in flight.

    An exception raised by ``fn`` is raised here when its item's turn comes; closing the
    iterator early (or an exception in the consumer) cancels what has not started.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    window = window or 2 * workers
    # a worker ends with this process, even when it is SIGKILLed (Linux): no orphaned workers holding memory
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(_START_METHOD),
                                   initializer=die_with_parent, initargs=(os.getpid(),))
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(executor.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
