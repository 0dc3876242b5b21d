"""The next training batches tokenized in a background thread while the accelerator computes this one.

A training step ends with a host sync (the loss's finiteness check, ``loop._train_step``): the
CPU waits for the GPU, then tokenizes the next batch while the GPU waits for it. With
:func:`prefetched`, a thread prepares the next ``depth`` steps' inputs (the batch split into
shards, the tokenized features, the token count) during that wait; the fast tokenizers run in
Rust and release the GIL, so the two overlap. The items are exactly those of the plain
iterator, in the same order (nothing in their making is random or depends on timing), so a
prefetched run trains the same weights (test: ``tests/train/test_prefetch.py``). On a CPU the
thread would only compete with torch for the same cores, so the loop prefetches on CUDA only.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class prefetched(Iterator[T]):  # noqa: N801 - used like a function: prefetched(items, depth)
    """``items``, produced up to ``depth`` ahead in a daemon thread (``depth`` 0: in the caller's thread).

    An exception raised while producing an item is raised by :meth:`__next__` in its turn. :meth:`close`
    (also on ``with``) stops the thread and drops what it prepared; call it when the consumer stops early.
    """

    def __init__(self, items: Iterator[T], depth: int = 1):
        self._items, self._depth = items, depth
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = None
        if depth > 0:
            self._thread = threading.Thread(target=self._produce, name="qaembed-prefetch", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put((True, item)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised in its turn
            self._put((False, exc))
            return
        self._put((True, _DONE))

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> prefetched[T]:
        return self

    def __next__(self) -> T:
        if self._thread is None:
            return next(self._items)
        if self._stop.is_set():
            raise StopIteration
        ok, item = self._queue.get()
        if not ok:
            self.close()
            raise item
        if item is _DONE:
            self.close()
            raise StopIteration
        return item

    def close(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting for room
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self) -> prefetched[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
