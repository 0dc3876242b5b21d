"""Statistics for comparing losses: confidence intervals and paired significance tests.

Everything here is vectorized numpy and seeded, so a report regenerated from the same run
folders gives the same numbers.

* :func:`seed_ci` — mean and Student-t 95% interval over seeds (used when a loss has >= 2 seeds).
* :func:`bootstrap_ci` — mean and percentile-bootstrap 95% interval over questions (one seed).
* :func:`paired_permutation_test` — two-sided sign-flip permutation test on per-question
  differences between two systems evaluated on the same questions.
* :func:`holm_bonferroni` — Holm's step-down adjustment of a family of p-values.

Example
-------
>>> import numpy as np
>>> a = np.array([0.9, 0.8, 0.7, 0.95, 0.85] * 20)
>>> b = a - 0.1
>>> paired_permutation_test(a, b, seed=0).p_value < 0.001
True
>>> paired_permutation_test(a, a, seed=0).p_value
1.0
>>> holm_bonferroni([0.01, 0.04, 0.03]).round(3).tolist()
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
_CHUNK_ELEMENTS = 4_000_000  # resamples x questions per vectorized chunk (bounded memory)


class Interval(NamedTuple):
    mean: float
    low: float
    high: float
    method: str  # "seeds (t)" or "bootstrap over questions"
    n: int  # number of seeds or questions the interval is over


class PairedTest(NamedTuple):
    mean_difference: float  # mean over questions of (a - b)
    p_value: float  # two-sided
    n_questions: int


def _as_1d(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values")
    return array


def seed_ci(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """Mean over seeds and its Student-t confidence interval (needs at least 2 seeds)."""
    x = _as_1d(values, "values")
    if x.size < 2:
        raise ValueError("seed_ci needs at least 2 seeds; use bootstrap_ci for a single run")
    mean = float(x.mean())
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, "seeds (t)", int(x.size))


def _resampled_means(x: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of ``x`` (with replacement), in bounded-memory chunks."""
    n = x.size
    chunk = max(1, _CHUNK_ELEMENTS // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))  # (chunk, n)
        means[start:stop] = x[idx].mean(axis=1)
    return means


def bootstrap_ci(
    per_question: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean over questions and its percentile-bootstrap confidence interval."""
    x = _as_1d(per_question, "per_question")
    means = _resampled_means(x, n_resamples, np.random.default_rng(seed))
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(x.mean()), float(low), float(high), "bootstrap over questions", int(x.size))


def paired_permutation_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> PairedTest:
    """Two-sided paired sign-flip permutation test of mean(a - b) = 0.

    ``a[i]`` and ``b[i]`` are the same question's metric under two systems. Under the null
    hypothesis each difference is equally likely to have either sign, so the p-value is the
    share of random sign assignments whose |mean| is at least the observed one, counting the
    observed assignment itself: ``(1 + hits) / (1 + n_resamples)``. Identical inputs give 1.
    """
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired test needs the same questions in both systems: {x.size} vs {y.size} values")
    diff = x - y
    observed = abs(diff.mean())
    tolerance = 1e-12 * max(1.0, float(np.abs(diff).max()))
    rng = np.random.default_rng(seed)
    n = diff.size
    chunk = max(1, _CHUNK_ELEMENTS // n)
    hits = 0
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        signs = rng.integers(0, 2, size=(rows, n)) * 2 - 1  # (rows, n) of +-1
        permuted = np.abs((signs * diff).mean(axis=1))
        hits += int(np.count_nonzero(permuted >= observed - tolerance))
    return PairedTest(float(diff.mean()), (1 + hits) / (1 + n_resamples), int(n))


def holm_bonferroni(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order (monotone, capped at 1).

    Reject hypothesis i at family-wise level alpha when ``adjusted[i] <= alpha``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("p_values must be 1-d")
    if p.size == 0:
        return p.copy()
    if np.any((p < 0) | (p > 1) | ~np.isfinite(p)):
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted
