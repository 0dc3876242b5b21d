"""Encoding off the event loop: a bounded queue per index, drained by one worker that batches.

A request's queries are a *job*. :meth:`Batcher.submit` puts the job on a bounded
``asyncio.Queue`` (full → :class:`Busy`, which the server answers with 503 and ``Retry-After``)
and awaits its future, so the event loop keeps serving other requests (health checks, the page,
other indexes) while the model works. The worker takes the first waiting job plus every job
queued behind it up to ``max_batch`` texts, encodes all their texts in **one** forward pass in a
worker thread, then searches FAISS per job. Under load, 16 clients with
one question each cost one batch of 16 instead of 16 passes; with one client there is no waiting
(a job never waits for a batch to fill). One job's failure is that job's alone: when the shared
pass raises (a text the encoder refuses), each job of the batch is encoded on its own. The server
refuses text it knows the encoder cannot take (not valid UTF-8) before it is queued.

One worker per index, and **one dedicated thread** per worker: its model is used by one thread at a
time (tokenizers are not safe to share across threads; a forward pass already uses every core).
The thread is always the same one, not any thread of the default pool, because each new thread
that runs torch gets its own OpenMP team, and idle teams spin on the cores: with
``asyncio.to_thread`` one question took 12.6 ms to encode instead of 7.5 ms (measured).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from qaembed.index import SearchIndex

Kind = Literal["search", "query", "document"]


class Busy(Exception):
    """The index's queue is full: the client should retry later."""


@dataclass
class Job:
    kind: Kind  # search: queries → hits; query / document: texts → embeddings
    texts: list[str]
    k: int = 0
    future: asyncio.Future = field(default=None, repr=False)

    def encodes_like(self, other: "Job") -> bool:
        """Whether two jobs' texts can share one forward pass (same encode method)."""
        return (self.kind == "document") == (other.kind == "document")


class Batcher:
    """The queue and worker of one index (start with :meth:`start` inside the running loop)."""

    def __init__(self, index: SearchIndex, *, max_pending: int, max_batch: int):
        self.index = index
        self.max_pending = max_pending
        self.max_batch = max_batch
        self._queue: asyncio.Queue[Job] | None = None
        self._held: Job | None = None  # a job taken from the queue that did not fit the last batch
        self._task: asyncio.Task | None = None
        self._thread: ThreadPoolExecutor | None = None
        self.batches = 0  # forward passes run (for /health and the load test)
        self.jobs = 0

    def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_pending)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qaembed-encode")
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher:{self.index.path}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._thread is not None:
            self._thread.shutdown(wait=True)

    @property
    def pending(self) -> int:
        return (self._queue.qsize() if self._queue is not None else 0) + (self._held is not None)

    async def submit(self, kind: Kind, texts: list[str], k: int = 0):
        """The job's result: a list of :class:`~qaembed.index.SearchResult` (search) or an embeddings array."""
        job = Job(kind=kind, texts=texts, k=k, future=asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Busy(f"{self.max_pending} requests are already waiting for this index") from None
        return await job.future

    async def _next_batch(self) -> list[Job]:
        first = self._held or await self._queue.get()
        self._held = None
        batch, size = [first], len(first.texts)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.encodes_like(first) or size + len(job.texts) > self.max_batch:
                self._held = job  # first in the next batch: order is kept
                break
            batch.append(job)
            size += len(job.texts)
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            batch = [job for job in batch if not job.future.done()]  # the client went away
            if not batch:
                continue
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(self._thread, self._work, batch)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request, the worker stays up
                outcomes = [exc] * len(batch)
            self.batches += 1
            self.jobs += len(batch)
            for job, outcome in zip(batch, outcomes):
                if job.future.done():
                    continue
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    def _work(self, batch: list[Job]) -> list:
        """In a worker thread: one forward pass for every text of the batch, then each job's answer.

        When the shared pass fails, each job is encoded alone, so a text that breaks the encoder fails
        its own request only (the others get their results) and every request gets its own error.
        """
        texts = [text for job in batch for text in job.texts]
        encode = self.index.embed_documents if batch[0].kind == "document" else self.index.embed
        try:
            embeddings = encode(texts)  # (n_texts, dim)
        except Exception:
            if len(batch) == 1:
                raise
            return [self._work_alone(job) for job in batch]
        outcomes, start = [], 0
        for job in batch:
            part = embeddings[start : start + len(job.texts)]
            start += len(job.texts)
            try:
                outcomes.append(self.index.results(job.texts, part, job.k) if job.kind == "search" else np.array(part))
            except Exception as exc:  # noqa: BLE001 - one job's failure is that job's answer
                outcomes.append(exc)
        return outcomes

    def _work_alone(self, job: Job):
        """One job's answer from its own forward pass, or the exception that pass raised."""
        try:
            return self._work([job])[0]
        except Exception as exc:  # noqa: BLE001 - that job's answer
            return exc
