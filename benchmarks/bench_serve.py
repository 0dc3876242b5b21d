"""Load test of ``qaembed serve`` on loopback, next to the limit: bare ``model.encode`` + FAISS in one process.

Run from the repository root::

    qaembed data prepare --out benchmarks/_work/se5            # the 5 shared Stack Exchange sites
    python benchmarks/bench_serve.py --data benchmarks/_work/se5 --seconds 20 --results benchmarks/results/serve.md

Builds (once) an index of every answer with ``--model``, then:

1. **the limit**, in this process: for ``--seconds``, one real question at a time,
   ``model.encode_query`` + ``index.search`` (what a server can at best do per request); and the
   same with 16 questions per call (what batching can at best do);
2. **the server**: starts ``qaembed serve --port 0`` as a subprocess and, for each client count in
   ``--clients``, runs that many threads, each with its own HTTP connection, sending
   ``POST /search {"query": ..., "k": 10}`` back to back for ``--seconds``; records every latency,
   every non-200 answer, and the server's RSS before and after each level.

Questions are the test split's real question titles, in a seeded random order. Prints a Markdown
table (p50 / p99 latency, queries/s, errors, RSS) and saves it with ``--results``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _output import print_and_save  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def questions_of(data: Path) -> list[str]:
    from qaembed.data.dataset import read_split

    titles = [record.title for record in read_split(data, "test") if record.title.strip()]
    random.Random(0).shuffle(titles)
    return titles


def bare_limit(index_dir: Path, questions: list[str], seconds: float, batch: int) -> dict:
    """Queries/s and latency of encode + FAISS search in this process, ``batch`` questions per call."""
    from qaembed.index import load_index

    index = load_index(index_dir)
    index.search(questions[:batch], k=10)  # warm-up
    latencies, done, position = [], 0, 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        chunk = [questions[(position + i) % len(questions)] for i in range(batch)]
        position += batch
        started = time.perf_counter()
        index.search(chunk, k=10)
        latencies.append(time.perf_counter() - started)
        done += batch
    elapsed = sum(latencies)
    return {"qps": done / elapsed, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "n": done}


def start_server(index_dir: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "qaembed", "serve", "--index", str(index_dir), "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
            return process, found.group(1)
    process.kill()
    raise SystemExit("the server did not start within 300 s")


def load_level(url: str, questions: list[str], clients: int, seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    start_gate = threading.Barrier(clients + 1)
    end = [0.0]

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            http.get("/health")
            start_gate.wait()
            position = number * 7919
            while time.perf_counter() < end[0]:
                query = questions[position % len(questions)]
                position += 1
                started = time.perf_counter()
                try:
                    response = http.post("/search", json={"query": query, "k": 10})
                    ok = response.status_code == 200 and len(response.json()["results"][0]["hits"]) == 10
                except httpx.HTTPError as exc:
                    ok, response = False, exc
                latencies[number].append(time.perf_counter() - started)
                if not ok:
                    errors[number].append(str(getattr(response, "status_code", response)))

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    end[0] = began + seconds
    start_gate.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    flat = [value for per_client in latencies for value in per_client]
    return {"qps": len(flat) / wall, "p50": percentile(flat, 50), "p99": percentile(flat, 99), "n": len(flat),
            "errors": sum(len(e) for e in errors), "error_kinds": sorted({k for e in errors for k in e})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Prepared dataset folder (qaembed data prepare).")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--index", type=Path, default=Path("benchmarks/_work/serve_index"), help="Index folder (built if missing).")
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of each level.")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 16],
                        help="Client counts, one level each (16 twice: memory must not grow on the repeat).")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()

    from qaembed.index import build_index

    if not (args.index / "manifest.json").is_file():
        build_index(args.model, args.data, args.index, progress=False)
    questions = questions_of(args.data)
    load = os.getloadavg()
    limit_one = bare_limit(args.index, questions, args.seconds, 1)
    limit_batch = bare_limit(args.index, questions, args.seconds, 16)

    process, url = start_server(args.index)
    rows = []
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            documents = http.get("/health").json()["indexes"]
            [info] = documents.values()
            for query in questions[:32]:  # warm-up
                http.post("/search", json={"query": query, "k": 10})
        rss_start = rss_mb(process.pid)
        def counters() -> tuple[int, int]:
            with httpx.Client(base_url=url, timeout=60) as http:
                [state] = http.get("/health").json()["indexes"].values()
            return state["requests"], state["batches"]

        for clients in args.clients:
            before = rss_mb(process.pid)
            requests_before, batches_before = counters()
            level = load_level(url, questions, clients, args.seconds)
            level.update(clients=clients, rss_before=before, rss_after=rss_mb(process.pid))
            requests_after, batches_after = counters()
            level["requests_per_pass"] = (requests_after - requests_before) / max(batches_after - batches_before, 1)
            rows.append(level)
        rss_end = rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)

    ms = lambda seconds: f"{seconds * 1000:.1f}"  # noqa: E731
    lines = [
        f"# `qaembed serve` load test — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `python benchmarks/bench_serve.py --data {args.data} --seconds {args.seconds:g}`. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average at start {load[0]:.2f} / {load[1]:.2f}; "
        f"index: {info['documents']:,} answers, {info['kind']}, dimension {info['dimension']}, model {info['model']}; "
        f"{len(questions)} real test-split question titles, k = 10, {args.seconds:g} s per level.",
        "",
        "| what | clients | queries/s | p50 ms | p99 ms | requests | errors | server RSS MB (before → after) | requests per forward pass |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| bare encode + FAISS, 1 question per call (the limit) | 1 | {limit_one['qps']:.1f} | {ms(limit_one['p50'])} | {ms(limit_one['p99'])} | {limit_one['n']} | — | — | 1 |",
        f"| bare encode + FAISS, 16 questions per call | — | {limit_batch['qps']:.1f} | {ms(limit_batch['p50'])} (per call) | {ms(limit_batch['p99'])} | {limit_batch['n']} | — | — | 16 |",
    ]
    for row in rows:
        kinds = f" ({', '.join(row['error_kinds'])})" if row["errors"] else ""
        lines.append(
            f"| `qaembed serve`, HTTP on loopback | {row['clients']} | {row['qps']:.1f} | {ms(row['p50'])} | {ms(row['p99'])} | "
            f"{row['n']} | {row['errors']}{kinds} | {row['rss_before']:.0f} → {row['rss_after']:.0f} | {row['requests_per_pass']:.2f} |"
        )
    one = next((row for row in rows if row["clients"] == 1), None)
    lines += ["", f"Server RSS over the whole test: {rss_start:.0f} → {rss_end:.0f} MB."]
    if one:
        lines.append(f"One client reaches {one['qps'] / limit_one['qps']:.2f}× the in-process limit's queries/s "
                     f"(p50 {ms(one['p50'])} ms vs {ms(limit_one['p50'])} ms: HTTP, JSON and the queue hop).")
    print_and_save("\n".join(lines) + "\n", args.results)


if __name__ == "__main__":
    main()
