"""Statistics for comparing losses: the training seed is a random effect, questions are sampled.

A loss is judged by the runs it produced: ``S`` seeds (training runs), each evaluated on the
same ``Q`` test questions, i.e. an (S, Q) matrix of per-question metric values. Two sources
of variation matter: which seeds were drawn (a run-level shift: some seeds train better) and
which questions were drawn. Everything here accounts for both, is vectorized numpy, and is
seeded, so a report regenerated from the same run folders gives the same numbers.

* :func:`hierarchical_bootstrap_ci` — the interval of every row of the report (baseline
  included): percentile bootstrap that resamples seeds and, independently, questions (the
  design is crossed: every seed is evaluated on the same questions, so one resampled question
  set is used for all resampled seeds). With one seed it is the bootstrap over questions.
* :func:`seed_aware_test` — paired test of a loss against the baseline or a reference loss
  on per-question differences ``D[s, q]``: with ``S >= 2`` seeds a t-test whose variance adds
  the question-sampling variance to the seed-level variance, with Satterthwaite degrees of
  freedom (formula in the function and in ``docs/suite.md``); with one seed a paired sign-flip
  permutation test over questions (the test of *this run*: seed variance is not measured).
  Each result carries the minimum detectable effect at 80 % power.
* :func:`paired_permutation_test` — two-sided sign-flip permutation test on paired values.
* :func:`holm_bonferroni` — Holm's step-down adjustment of a family of p-values.
* :func:`pair_classification_bootstrap` — pair classification on duplicate-question data:
  average precision, and F1 / accuracy at thresholds chosen on dev, are corpus-level (one
  number for the whole test split, not a mean over questions), so their interval is a crossed
  bootstrap that resamples seeds and then test pairs (one resampled pair set for all seeds),
  with the difference from a reference (the baseline) on the same resampled pairs.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> base = rng.uniform(0.3, 0.9, 200)
>>> runs = base + 0.05 + rng.normal(0, 0.01, (3, 1)) + rng.normal(0, 0.1, (3, 200))
>>> test = seed_aware_test(runs, base[None, :])
>>> test.method, test.n_seeds, 2 <= test.df, test.p_value < 0.05
('seed t-test', 3, True, True)
>>> paired_permutation_test(base, base, seed=0).p_value
1.0
>>> holm_bonferroni([0.01, 0.04, 0.03]).round(3).tolist()
[0.03, 0.06, 0.06]
>>> scores = np.array([[0.9, 0.8, 0.7, 0.2]])
>>> labels = np.array([1, 0, 1, 0])
>>> result = pair_classification_bootstrap(scores, labels, scores >= 0.75, scores >= 0.75, n_resamples=200)
>>> round(result["average_precision"].mean, 4)  # (1/1 + 2/3) / 2
0.8333
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8  # for the minimum detectable effect
N_RESAMPLES = 10_000
_CHUNK_ELEMENTS = 4_000_000  # resamples x questions per vectorized chunk (bounded memory)

BOOTSTRAP_METHOD = "hierarchical bootstrap (seeds, then questions)"
PAIR_BOOTSTRAP_METHOD = "hierarchical bootstrap (seeds, then test pairs)"
PAIR_METRICS = ("average_precision", "f1", "accuracy")
SEED_TEST = "seed t-test"
PERMUTATION_TEST = "permutation over questions (one seed)"


class Interval(NamedTuple):
    mean: float
    low: float
    high: float
    method: str
    n_seeds: int
    n_questions: int


class PairedTest(NamedTuple):
    mean_difference: float  # mean over questions of (a - b)
    p_value: float  # two-sided
    n_questions: int


class SeedAwareTest(NamedTuple):
    mean_difference: float  # mean over seeds and questions of D = a - b
    std_error: float  # of mean_difference, seed and question sampling included
    df: float  # degrees of freedom of the t reference (conservative Satterthwaite, >= S - 1; Q - 1 with one seed)
    p_value: float  # two-sided
    mde: float  # minimum detectable |difference| at ALPHA, POWER for this design and these variances
    ci_low: float  # CONFIDENCE interval of the difference (t with df)
    ci_high: float
    method: str  # SEED_TEST or PERMUTATION_TEST
    n_seeds: int
    n_questions: int
    seed_sd: float  # estimated sd of the run-level (seed) shift of D; nan with one seed


def _as_1d(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values")
    return array


def _as_matrix(values: Sequence[Sequence[float]] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty (seeds, questions) matrix, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values")
    return array


def hierarchical_bootstrap_ci(
    values: Sequence[Sequence[float]] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean of an (S seeds, Q questions) matrix and its crossed (seeds x questions) bootstrap interval.

    Each resample draws S seeds and Q questions with replacement, independently; its mean is
    ``c @ X @ w / (S Q)`` with ``c`` and ``w`` the multiplicities of seeds and questions.
    With one seed this is the percentile bootstrap over questions.
    """
    x = _as_matrix(values, "values")
    n_seeds, n_questions = x.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n_questions)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=rows)  # (rows, S)
        question_counts = rng.multinomial(n_questions, np.full(n_questions, 1 / n_questions), size=rows)  # (rows, Q)
        means[start:start + rows] = ((seed_counts @ x) * question_counts).sum(axis=1) / (n_seeds * n_questions)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(x.mean()), float(low), float(high), BOOTSTRAP_METHOD, n_seeds, n_questions)


def minimum_detectable_effect(std_error: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true |difference| a two-sided level-``alpha`` t-test detects with probability ``power``.

    ``(t_{1-alpha/2, df} + t_{power, df}) * std_error`` (the usual normal-approximation formula
    with t quantiles for the small-sample case).
    """
    if not np.isfinite(std_error) or df <= 0:
        return float("nan")
    return float((scipy_stats.t.ppf(1 - alpha / 2, df) + scipy_stats.t.ppf(power, df)) * std_error)


def seed_aware_test(
    a: Sequence[Sequence[float]] | np.ndarray,
    b: Sequence[Sequence[float]] | np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> SeedAwareTest:
    """Paired test of mean(a - b) = 0 where ``a`` is (S, Q) and ``b`` is (S, Q) or (1, Q).

    Rows are seeds (paired by position: pass the seeds both systems finished, in the same
    order), columns the same questions. ``b`` with one row (the zero-shot baseline, which
    has no training seed) is compared with every row of ``a``.

    With ``S >= 2`` the differences ``D[s, q]`` follow the crossed random-effects model
    ``D = delta + u_s + v_q + e_sq`` (seed shift, question effect, noise). From the two-way
    ANOVA mean squares ``MS_seed = Q var_s(mean_q D)``, ``MS_question = S var_q(mean_s D)`` and
    the residual ``MS_resid``, the variance of the grand mean is estimated by::

        A = max(MS_seed, MS_resid)            (E[MS_seed] = sigma_e^2 + Q sigma_u^2 >= sigma_e^2)
        B = max(MS_question - MS_resid, 0)    (Q-1 degrees of freedom: question sampling)
        SE^2 = (A + B) / (S Q)

    (for ``sigma_u^2 / S + sigma_v^2 / Q + sigma_e^2 / (S Q)``, each variance component
    truncated at zero) and ``mean(D) / SE`` is referred to Student's t with conservative
    Satterthwaite degrees of freedom::

        df = max(S - 1, (A + B)^2 / (A^2 / ((S-1)/2) + [B > 0] (MS_question^2 / (Q-1)
                                                            + MS_resid^2 / ((S-1)(Q-1)))))

    close to ``S - 1`` when seeds dominate, large when questions do. Two corrections keep the
    false-positive rate at or below alpha with 3 seeds (``tests/suite/test_suite_stats.py``
    simulates it): ``MS_seed`` is floored at ``MS_resid`` (its expectation is at least that),
    and the seed term counts with half its ``S - 1`` degrees of freedom, because a mean square
    from 2-4 seeds is so variable that plain Satterthwaite rejects 6-7 % of true nulls. A fixed
    ``S - 1`` df is valid too but loses most of its power when questions vary much more than
    seeds, as they do on real data. With one seed the seed
    variance cannot be estimated: the p-value is a paired sign-flip permutation test over
    questions and ``SE`` the paired standard error, which describe this run only.
    """
    x, y = _as_matrix(a, "a"), _as_matrix(b, "b")
    if y.shape[0] == 1 and x.shape[0] > 1:
        y = np.broadcast_to(y, x.shape)
    if x.shape != y.shape:
        raise ValueError(f"paired test needs the same seeds and questions in both systems: {x.shape} vs {y.shape}")
    diff = x - y
    n_seeds, n_questions = diff.shape
    mean = float(diff.mean())
    if n_seeds == 1:
        d = diff[0]
        std_error = float(d.std(ddof=1) / np.sqrt(n_questions)) if n_questions > 1 else float("nan")
        df = float(n_questions - 1)
        p_value = paired_permutation_test(x[0], y[0], n_resamples=n_resamples, seed=seed).p_value
        method, seed_sd = PERMUTATION_TEST, float("nan")
    else:
        seed_means, question_means = diff.mean(axis=1), diff.mean(axis=0)
        ms_seed = n_questions * seed_means.var(ddof=1)
        ms_question = n_seeds * question_means.var(ddof=1) if n_questions > 1 else 0.0
        residual = diff - seed_means[:, None] - question_means[None, :] + mean
        dof_resid = (n_seeds - 1) * max(n_questions - 1, 1)
        ms_resid = float((residual**2).sum() / dof_resid)
        seed_term = max(ms_seed, ms_resid)
        question_term = max(ms_question - ms_resid, 0.0)
        variance = (seed_term + question_term) / (n_seeds * n_questions)
        std_error = float(np.sqrt(variance))
        denominator = seed_term**2 / ((n_seeds - 1) / 2)
        if question_term > 0:
            denominator += ms_question**2 / (n_questions - 1) + ms_resid**2 / dof_resid
        satterthwaite = (seed_term + question_term) ** 2 / denominator if denominator > 0 else 0.0
        df = float(max(n_seeds - 1, satterthwaite))
        # every D equal: no variance to test against; a mean that is rounding error (0.1 + 0.2 - 0.3) is no difference
        tolerance = 1e-12 * max(1.0, float(np.abs(diff).max()))
        if std_error > tolerance:
            p_value = float(2 * scipy_stats.t.sf(abs(mean) / std_error, df))
        else:
            p_value = 1.0 if abs(mean) <= tolerance else 0.0
        method = SEED_TEST
        seed_sd = float(np.sqrt(max(ms_seed - ms_resid, 0.0) / n_questions))
    half = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df) * std_error) if df > 0 else float("nan")
    return SeedAwareTest(
        mean_difference=mean, std_error=std_error, df=df, p_value=p_value,
        mde=minimum_detectable_effect(std_error, df), ci_low=mean - half, ci_high=mean + half,
        method=method, n_seeds=n_seeds, n_questions=n_questions, seed_sd=seed_sd,
    )


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


class PairBootstrap(NamedTuple):
    mean: float  # the statistic averaged over the seeds (on all test pairs)
    low: float
    high: float
    method: str
    n_seeds: int
    n_pairs: int
    difference: float | None = None  # mean minus the reference's value (on all pairs)
    difference_low: float | None = None
    difference_high: float | None = None
    p_value: float | None = None  # two-sided bootstrap p of the difference: 2 (1 + min(#d <= 0, #d >= 0)) / (1 + R)


def weighted_average_precision(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision of one score vector under many pair weightings: ``weights`` (R, P) -> (R,).

    Equal to ``sklearn.metrics.average_precision_score(labels, scores, sample_weight=w)`` for each
    row ``w`` (a bootstrap resample is the weighting by multiplicities): tied scores form one
    threshold; ``AP = sum_t (R_t - R_{t-1}) P_t``. NaN for a row without positive weight.
    """
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    ends = np.flatnonzero(np.append(ranked[:-1] != ranked[1:], True))  # last index of each tie group
    w = weights[:, order]  # (R, P)
    y = labels[order].astype(np.float64)
    true_positives = np.cumsum(w * y, axis=1)[:, ends]  # (R, G)
    taken = np.cumsum(w, axis=1)[:, ends]
    positives = true_positives[:, -1:]  # (R, 1)
    precision = np.divide(true_positives, taken, out=np.zeros_like(taken), where=taken > 0)
    gained = np.diff(true_positives, axis=1, prepend=0.0)  # (R, G) positive weight in each group
    with np.errstate(invalid="ignore", divide="ignore"):
        return (gained * precision).sum(axis=1) / positives[:, 0]


def _pair_statistics(scores: np.ndarray, labels: np.ndarray, f1_predicted: np.ndarray, accuracy_predicted: np.ndarray,
                     weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per seed and resample: {metric: (S, R)} under pair weights (R, P)."""
    y = labels.astype(np.float64)
    positives = weights @ y  # (R,)
    out = {name: np.empty((scores.shape[0], weights.shape[0])) for name in PAIR_METRICS}
    for s in range(scores.shape[0]):
        out["average_precision"][s] = weighted_average_precision(scores[s], labels, weights)
        predicted = f1_predicted[s].astype(np.float64)
        true_positives = weights @ (predicted * y)
        denominator = weights @ predicted + positives
        out["f1"][s] = np.divide(2 * true_positives, denominator, out=np.zeros_like(denominator),
                                 where=denominator > 0)
        correct = (accuracy_predicted[s].astype(np.int64) == labels).astype(np.float64)
        out["accuracy"][s] = (weights @ correct) / weights.sum(axis=1)
    return out


def pair_classification_bootstrap(
    scores: np.ndarray, labels: np.ndarray, f1_predicted: np.ndarray, accuracy_predicted: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0,
) -> dict[str, PairBootstrap]:
    """Average precision, F1 and accuracy (at fixed thresholds) with crossed seed x pair bootstrap intervals.

    ``scores``, ``f1_predicted``, ``accuracy_predicted``: (S seeds, P pairs), the same test pairs in
    every row; ``labels``: (P,) 0/1. Each resample draws S seeds and P pairs with replacement
    (independently; the same pairs for every seed, as every seed is evaluated on them) and takes the
    multiplicity-weighted mean over seeds of each seed's statistic on the resampled pairs. With
    ``reference`` = (scores, f1_predicted, accuracy_predicted) of one system, shape (1, P) (the
    zero-shot baseline, which has no seed), the difference is computed on the same resampled pairs.
    """
    x = np.asarray(scores, dtype=np.float64)
    x = x[None, :] if x.ndim == 1 else x
    labels = np.asarray(labels, dtype=np.int64)
    f1_pred, acc_pred = np.atleast_2d(f1_predicted), np.atleast_2d(accuracy_predicted)
    n_seeds, n_pairs = x.shape
    if labels.shape != (n_pairs,) or f1_pred.shape != x.shape or acc_pred.shape != x.shape:
        raise ValueError(f"pair bootstrap: scores {x.shape}, labels {labels.shape}, predictions {f1_pred.shape} "
                         f"and {acc_pred.shape} must describe the same seeds and pairs")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores contain non-finite values")
    ones = np.ones((1, n_pairs))
    point = {k: float(v.mean()) for k, v in _pair_statistics(x, labels, f1_pred, acc_pred, ones).items()}
    ref_point = None
    if reference is not None:
        ref = [np.atleast_2d(np.asarray(r)) for r in reference]
        if any(r.shape != (1, n_pairs) for r in ref):
            raise ValueError(f"pair bootstrap: the reference must be one system on the same {n_pairs} pairs")
        ref_point = {k: float(v.mean()) for k, v in _pair_statistics(ref[0], labels, ref[1], ref[2], ones).items()}
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // (4 * n_pairs))
    draws = {k: np.empty(n_resamples) for k in PAIR_METRICS}
    differences = {k: np.empty(n_resamples) for k in PAIR_METRICS}
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=rows)  # (rows, S)
        pair_counts = rng.multinomial(n_pairs, np.full(n_pairs, 1 / n_pairs), size=rows).astype(np.float64)
        stats = _pair_statistics(x, labels, f1_pred, acc_pred, pair_counts)  # {metric: (S, rows)}
        ref_stats = _pair_statistics(ref[0], labels, ref[1], ref[2], pair_counts) if reference is not None else None
        for name in PAIR_METRICS:
            values = (seed_counts * stats[name].T).sum(axis=1) / n_seeds  # (rows,)
            draws[name][start:start + rows] = values
            if ref_stats is not None:
                differences[name][start:start + rows] = values - ref_stats[name][0]
    alpha = 1 - confidence
    result = {}
    for name in PAIR_METRICS:
        low, high = np.nanquantile(draws[name], [alpha / 2, 1 - alpha / 2])
        extra: dict[str, float | None] = {}
        if ref_point is not None:
            d = differences[name][np.isfinite(differences[name])]
            d_low, d_high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
            # counting the observed difference as one resample, as the permutation test does: never p = 0
            p_value = min(1.0, 2 * (1 + min(int((d <= 0).sum()), int((d >= 0).sum()))) / (1 + d.size))
            extra = {"difference": point[name] - ref_point[name], "difference_low": float(d_low),
                     "difference_high": float(d_high), "p_value": p_value}
        result[name] = PairBootstrap(point[name], float(low), float(high), PAIR_BOOTSTRAP_METHOD, n_seeds, n_pairs,
                                     **extra)
    return result
