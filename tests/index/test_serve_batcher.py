"""The server's batching queue (``qaembed.serve.batcher.Batcher``) with a recording stand-in index: waiting
requests share one forward pass, query and document encodes never mix, order is kept, a full queue
refuses, and one request's failure is only that request's."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from qaembed.errors import DataError
from qaembed.serve.batcher import Batcher, Busy


class RecordingIndex:
    """Embeds text i as [len(text), i]; records every forward pass; the first pass waits for ``gate``."""

    path = "recording"

    def __init__(self):
        self.passes: list[tuple[str, list[str]]] = []
        self.gate, self.entered = threading.Event(), threading.Event()

    def _encode(self, kind, texts):
        if not self.gate.is_set():
            self.entered.set()
            assert self.gate.wait(120)
        self.passes.append((kind, list(texts)))
        return np.array([[len(text), i] for i, text in enumerate(texts)], dtype=np.float32)

    def embed(self, texts):
        return self._encode("query", texts)

    def embed_documents(self, texts):
        return self._encode("document", texts)

    def results(self, queries, embeddings, k):
        if "bad" in queries:
            raise DataError("bad query")
        return [f"{query}@{k}:{int(row[0])}" for query, row in zip(queries, embeddings)]


async def _hold_worker(batcher, index) -> asyncio.Task:
    """Start ``batcher`` and keep its worker busy with a "warm" search held at the index's gate."""
    batcher.start()
    warm = asyncio.create_task(batcher.submit("search", ["warm"], 1))
    while not index.entered.is_set():
        await asyncio.sleep(0.01)
    return warm


async def _gather(batcher, index, jobs):
    """Queue ``jobs`` while the worker is held, then release it; the outcome of each job."""
    warm = await _hold_worker(batcher, index)
    tasks = [asyncio.create_task(batcher.submit(*job)) for job in jobs]
    while batcher.pending < len(jobs):  # every job waits before the worker can take any
        await asyncio.sleep(0.01)
    index.gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert await warm == ["warm@1:4"]
    index.passes.pop(0)  # the warm-up pass
    await batcher.stop()
    return outcomes


def test_waiting_requests_share_one_pass_in_order():
    index = RecordingIndex()
    batcher = Batcher(index, max_pending=10, max_batch=5)
    jobs = [("search", ["a"], 3), ("search", ["bb", "ccc"], 2), ("search", ["dddd"], 1), ("search", ["e", "f"], 4)]
    outcomes = asyncio.run(_gather(batcher, index, jobs))
    assert outcomes == [["a@3:1"], ["bb@2:2", "ccc@2:3"], ["dddd@1:4"], ["e@4:1", "f@4:1"]]
    # max_batch 5: a, bb, ccc, dddd in one pass (4 texts); e, f would make 6, so they are the next pass
    assert index.passes == [("query", ["a", "bb", "ccc", "dddd"]), ("query", ["e", "f"])]
    assert batcher.batches == 3 and batcher.jobs == 5  # with the warm-up


def test_query_and_document_encodes_do_not_mix():
    index = RecordingIndex()
    batcher = Batcher(index, max_pending=10, max_batch=50)
    jobs = [("search", ["q1"], 1), ("query", ["q2"]), ("document", ["d1"]), ("document", ["d2"]), ("search", ["q3"], 1)]
    outcomes = asyncio.run(_gather(batcher, index, jobs))
    assert index.passes == [("query", ["q1", "q2"]), ("document", ["d1", "d2"]), ("query", ["q3"])]
    assert outcomes[0] == ["q1@1:2"] and outcomes[4] == ["q3@1:2"]
    # each job gets its own rows of the shared pass (row 1: the second text of that pass)
    assert np.array_equal(outcomes[1], [[2, 1]]) and np.array_equal(outcomes[2], [[2, 0]]) and np.array_equal(outcomes[3], [[2, 1]])


def test_one_failing_request_does_not_fail_its_batch():
    index = RecordingIndex()
    batcher = Batcher(index, max_pending=10, max_batch=50)
    outcomes = asyncio.run(_gather(batcher, index, [("search", ["ok"], 1), ("search", ["bad"], 1), ("search", ["fine"], 1)]))
    assert outcomes[0] == ["ok@1:2"] and outcomes[2] == ["fine@1:4"]
    assert isinstance(outcomes[1], DataError)
    assert len(index.passes) == 1


class RefusingIndex(RecordingIndex):
    """A RecordingIndex whose encoder refuses a whole pass when any text of it is "poison" (as a tokenizer does)."""

    def _encode(self, kind, texts):
        if not self.gate.is_set():
            return super()._encode(kind, texts)
        if "poison" in texts:
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")
        return super()._encode(kind, texts)


@pytest.mark.parametrize("kind", ["search", "query", "document"])
def test_a_text_the_encoder_refuses_fails_only_its_own_request(kind):
    index = RefusingIndex()
    batcher = Batcher(index, max_pending=10, max_batch=50)
    k = (1,) if kind == "search" else ()
    jobs = [(kind, ["ok"], *k), (kind, ["poison"], *k), (kind, ["fine", "good"], *k)]
    outcomes = asyncio.run(_gather(batcher, index, jobs))
    assert isinstance(outcomes[1], TypeError)
    if kind == "search":
        assert outcomes[0] == ["ok@1:2"] and outcomes[2] == ["fine@1:4", "good@1:4"]
    else:
        assert np.array_equal(outcomes[0], [[2, 0]]) and np.array_equal(outcomes[2], [[4, 0], [4, 1]])
    # the shared pass failed; then each job had its own (the poisoned one failed again, alone)
    encoded = "document" if kind == "document" else "query"
    assert index.passes == [(encoded, ["ok"]), (encoded, ["fine", "good"])]


def test_a_full_queue_refuses_at_once():
    index = RecordingIndex()
    batcher = Batcher(index, max_pending=2, max_batch=50)

    async def scenario():
        first = await _hold_worker(batcher, index)
        waiting = [asyncio.create_task(batcher.submit("search", [t], 1)) for t in ("b", "c")]
        while batcher.pending < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(Busy, match="2 requests are already waiting"):
            await batcher.submit("search", ["d"], 1)
        index.gate.set()
        results = await asyncio.gather(first, *waiting)
        await batcher.stop()
        return results

    assert asyncio.run(scenario()) == [["warm@1:4"], ["b@1:1"], ["c@1:1"]]


def test_an_encoder_error_reaches_every_waiting_request_and_the_worker_goes_on():
    index = RecordingIndex()
    index.gate.set()
    calls = {"n": 0}
    original = index.embed

    def flaky(texts):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory")
        return original(texts)

    index.embed = flaky
    batcher = Batcher(index, max_pending=10, max_batch=50)

    async def scenario():
        batcher.start()
        with pytest.raises(RuntimeError, match="out of memory"):
            await batcher.submit("search", ["a"], 1)
        again = await batcher.submit("search", ["a"], 1)
        await batcher.stop()
        return again

    assert asyncio.run(scenario()) == ["a@1:1"]
