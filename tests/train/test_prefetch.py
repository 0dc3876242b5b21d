"""The next steps' inputs prepared in a thread (CUDA only in real runs): the same items in the same order,
errors in their turn, a bounded lead, a thread that stops when the consumer does, and the same trained weights."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from qaembed.train import StopTraining, train
from qaembed.train.config import parse_config
from qaembed.train.prefetch import prefetched


def _prefetch_threads() -> int:
    return sum(thread.name == "qaembed-prefetch" for thread in threading.enumerate())


def test_items_come_in_order_and_the_thread_ends_with_them():
    with prefetched(iter(range(50)), depth=3) as items:
        assert list(items) == list(range(50))
    assert _prefetch_threads() == 0
    assert list(prefetched(iter("abc"), depth=0)) == ["a", "b", "c"]  # depth 0: no thread


def test_the_producer_stays_at_most_depth_items_ahead():
    made = []

    def produce():
        for i in range(100):
            made.append(i)
            yield i

    items = prefetched(produce(), depth=2)
    assert next(items) == 0
    time.sleep(0.3)  # room for the thread to run ahead as far as it may
    assert len(made) <= 1 + 2 + 1  # the one taken, the queue, and one waiting for room
    items.close()
    assert _prefetch_threads() == 0 and len(made) < 10


def test_an_error_while_producing_is_raised_in_its_turn():
    def produce():
        yield 1
        yield 2
        raise ValueError("bad batch 3")

    items = prefetched(produce(), depth=2)
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(ValueError, match="bad batch 3"):
        next(items)
    assert _prefetch_threads() == 0
    with pytest.raises(StopIteration):
        next(items)


def _weights(run_dir):
    return load_file(str(next((run_dir / "model").rglob("model.safetensors"))))


def test_a_prefetched_run_trains_the_same_weights(tiny_config, tmp_path, monkeypatch):
    import qaembed.train.loop as loop

    tiny_config["training"].update(max_steps=4, eval_every=2, save_every=None)
    plain = train(parse_config(tiny_config), tmp_path / "plain", progress_bar=False)
    monkeypatch.setattr(loop, "_prefetch_depth", lambda device: 2)  # as on CUDA: a thread, its own tokenizer
    threads = []
    prefetched_run = train(parse_config(tiny_config), tmp_path / "prefetched", progress_bar=False,
                           step_callback=lambda step: threads.append(_prefetch_threads()))
    assert threads and all(count == 1 for count in threads) and _prefetch_threads() == 0
    assert (prefetched_run.steps, prefetched_run.tokens, prefetched_run.question_order) == (
        plain.steps, plain.tokens, plain.question_order)
    first, second = _weights(tmp_path / "plain"), _weights(tmp_path / "prefetched")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert prefetched_run.final_dev == plain.final_dev

    def stop_at_two(step):
        if step == 2:
            raise StopTraining

    stopped = train(parse_config(tiny_config), tmp_path / "stopped", progress_bar=False, step_callback=stop_at_two)
    assert stopped.status == "stopped" and _prefetch_threads() == 0  # the thread does not outlive its run
