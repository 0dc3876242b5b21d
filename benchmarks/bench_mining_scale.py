"""Benchmark: the mining search at growing corpus sizes, to extrapolate to Stack Overflow.

Mining = encode every answer and question, then top-k search of the questions against the
answers (``qaembed.search``). Encoding is measured elsewhere (``bench_eval.py``,
``gpu_check.sh``); this script measures the search: FAISS ``IndexIVFFlat`` as qaembed builds
it (``nlist = 4·sqrt(n)``, trained on ``256·nlist`` sampled vectors, ``nprobe`` 32) on
synthetic clustered unit vectors (384 dims, MiniLM's size), at several corpus sizes, with
queries = 10 % of the corpus drawn near corpus vectors (as a question is near its answers).

Reported per size: build seconds (train + add), search seconds per 1,000 queries, index
bytes, recall@10 of IVF against exact search on a sample of queries, and CPU-seconds (the
box is shared: CPU time is what extrapolates). The scaling rule used in ``docs/scale.md``:
build ∝ n (training on a fixed multiple of nlist ∝ sqrt(n) vectors, plus adding n), search
per query ∝ nprobe · n / nlist ∝ sqrt(n).

Run::

    python benchmarks/bench_mining_scale.py --sizes 50000 200000 800000 --results benchmarks/results/mining_scale.md
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qaembed.search import exact_top_k, faiss_top_k

DIM = 384


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = _unit(rng.standard_normal((max(16, n // 200), DIM), dtype=np.float32))
    corpus = _unit(centers[rng.integers(0, len(centers), n)] + 0.03 * rng.standard_normal((n, DIM), dtype=np.float32))
    picks = rng.integers(0, n, max(1, n // 10))
    queries = _unit(corpus[picks] + 0.02 * rng.standard_normal((len(picks), DIM), dtype=np.float32))
    return queries, corpus


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(n: int, k: int = 10, nprobe: int = 32, recall_sample: int = 500) -> dict:
    """Build the IVF index as ``qaembed.search.faiss_top_k`` does, then search, timed apart."""
    import faiss

    queries, corpus = _data(n)
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss_top_k's recipe
    start, cpu = time.perf_counter(), _cpu()
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    index.train(corpus[np.sort(rng.choice(n, size=min(n, 256 * nlist), replace=False))])
    index.add(corpus)
    index.nprobe = min(nprobe, nlist)
    build_s, build_cpu = time.perf_counter() - start, _cpu() - cpu
    start, cpu = time.perf_counter(), _cpu()
    _, ids = index.search(queries, k)
    search_s, search_cpu = time.perf_counter() - start, _cpu() - cpu
    index_bytes = faiss.serialize_index(index).nbytes
    sample = np.random.default_rng(1).choice(len(queries), size=min(recall_sample, len(queries)), replace=False)
    _, exact = exact_top_k(queries[sample], corpus, k, device="cpu")
    recall = float(np.mean([len(set(a.tolist()) & set(e.tolist())) / k for a, e in zip(ids[sample], exact)]))
    # the library function itself on a slice, so the recipe above cannot drift from it unnoticed
    _, lib_ids = faiss_top_k(queries[:200], corpus, k, "ivf", device="cpu", nprobe=nprobe, seed=0)
    agreement = float(np.mean(lib_ids.numpy() == ids[:200]))
    return {"n": n, "queries": len(queries), "nlist": nlist, "build_s": build_s, "build_cpu": build_cpu,
            "search_s_per_1k": 1000 * search_s / len(queries), "search_cpu_per_1k": 1000 * search_cpu / len(queries),
            "index_mb": index_bytes / 1e6, "recall_at_10": recall, "same_as_library": agreement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 800_000])
    parser.add_argument("--results", type=Path, default=None, help="Append a markdown table here.")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        row = measure(n)
        rows.append(row)
        print(row, flush=True)
    lines = [
        f"### Mining search at scale ({datetime.now(timezone.utc):%Y-%m-%d}, 2-core CPU, shared box)",
        "", "Command: `python benchmarks/bench_mining_scale.py --sizes " + " ".join(map(str, args.sizes)) + "`", "",
        "| answers | queries | nlist | build s (CPU-s) | search s per 1k queries (CPU-s) | index MB "
        "| IVF recall@10 vs exact (synthetic) | ids equal to faiss_top_k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['queries']:,} | {r['nlist']:,} | {r['build_s']:.1f} ({r['build_cpu']:.1f}) "
                     f"| {r['search_s_per_1k']:.2f} ({r['search_cpu_per_1k']:.2f}) | {r['index_mb']:.0f} "
                     f"| {r['recall_at_10']:.3f} | {r['same_as_library']:.3f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.results:
        with args.results.open("a", encoding="utf-8") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
