"""Benchmark: the suite's vectorized paired permutation test vs a per-resample Python loop.

Run: python benchmarks/bench_suite_stats.py [--questions 300] [--resamples 10000]

Both compute the same two-sided sign-flip p-value with the same generator draws; the script
checks they agree, then prints the time of each and the ratio (measured in the same run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qaembed.suite.stats import paired_permutation_test


def loop_permutation_test(a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int) -> float:
    """The textbook loop: one sign vector and one mean per resample."""
    diff = a - b
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_resamples):
        signs = rng.integers(0, 2, size=diff.size) * 2 - 1
        if abs((signs * diff).mean()) >= observed - 1e-12 * max(1.0, float(np.abs(diff).max())):
            hits += 1
    return (1 + hits) / (1 + n_resamples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, args.questions)
    b = np.clip(a + rng.normal(0.01, 0.1, args.questions), 0, 1)

    def best_of(fn) -> tuple[float, float]:
        times, value = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - start)
        return min(times), value

    vector_s, vector_p = best_of(lambda: paired_permutation_test(a, b, n_resamples=args.resamples, seed=1).p_value)
    loop_s, loop_p = best_of(lambda: loop_permutation_test(a, b, args.resamples, seed=1))
    print(f"questions={args.questions} resamples={args.resamples}")
    print(f"vectorized: {vector_s * 1000:.1f} ms  p={vector_p:.4f}")
    print(f"loop:       {loop_s * 1000:.1f} ms  p={loop_p:.4f}")
    print(f"speed-up:   {loop_s / vector_s:.1f}x")


if __name__ == "__main__":
    main()
