"""Helpers for index tests: a tiny prepared Q&A dataset with attribution, written in the test."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

from qaembed.data.dataset import write_jsonl_records
from qaembed.records import Answer, Author, Provenance, QARecord

TOPICS = ["hops", "yeast", "malt", "lager", "stout", "barrel", "cork", "foam", "carbonation", "bottle"]


def make_records(prefix: str, count: int, start: int = 0) -> list[QARecord]:
    """``count`` questions with two answers each; answer texts are distinct and carry attribution."""
    records = []
    for i in range(start, start + count):
        topic = TOPICS[i % len(TOPICS)]
        answers = [
            Answer(
                id=f"{prefix}:{i}:{j}",
                text=f"answer {j} to question {i}: {topic} number {i * 13 + j} matters for {TOPICS[(i + j + 3) % 10]}",
                score=10 - j * 7 + i % 3,
                accepted=j == 0,
                provenance=Provenance(
                    source="test", site="beer.stackexchange.com", url=f"https://beer.stackexchange.com/a/{prefix}{i}{j}",
                    author=Author(id=str(100 + i), name=f"brewer{i}", url=f"https://beer.stackexchange.com/users/{100 + i}"),
                    created="2019-03-01T10:00:00", license="CC BY-SA 4.0",
                ),
            )
            for j in range(2)
        ]
        records.append(QARecord(
            id=f"{prefix}:{i}", title=f"How does {topic} affect beer {i}?", body="Asking for a friend.", answers=answers,
            provenance=Provenance(source="test", site="beer.stackexchange.com",
                                  url=f"https://beer.stackexchange.com/questions/{prefix}{i}", license="CC BY-SA 4.0"),
        ))
    return records


def write_dataset(folder: Path, records: list[QARecord]) -> Path:
    """Train/dev/test thirds of ``records`` as a prepared dataset folder."""
    third = max(1, len(records) // 3)
    parts = {"train": records[:third], "dev": records[third : 2 * third], "test": records[2 * third :]}
    for split, part in parts.items():
        write_jsonl_records(folder / f"{split}.jsonl", part)
    return folder


@contextmanager
def running_server(app):
    """Serve the ASGI ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import time

    import uvicorn

    from qaembed.serve import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
