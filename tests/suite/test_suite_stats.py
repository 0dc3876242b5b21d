"""Statistics used by the suite report: intervals, paired permutation test, Holm correction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from qaembed.suite.stats import bootstrap_ci, holm_bonferroni, paired_permutation_test, seed_ci


def test_known_different_pair_is_significant():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 200)
    better = np.clip(base + rng.normal(0.08, 0.05, 200), 0, 1)
    test = paired_permutation_test(better, base, seed=0)
    assert test.p_value < 0.001
    assert test.mean_difference == pytest.approx((better - base).mean())
    assert test.n_questions == 200


def test_identical_vectors_give_p_one():
    values = np.random.default_rng(2).uniform(0, 1, 50)
    assert paired_permutation_test(values, values.copy(), seed=3).p_value == 1.0


def test_noise_only_difference_is_not_significant_and_p_is_symmetric():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(0, 1, 300), rng.uniform(0, 1, 300)
    ab, ba = paired_permutation_test(a, b, seed=5), paired_permutation_test(b, a, seed=5)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.mean_difference == pytest.approx(-ba.mean_difference)


def test_permutation_p_value_agrees_with_exact_enumeration():
    # Small n: enumerate all 2^n sign assignments to get the exact two-sided p-value.
    diff = np.array([0.3, 0.1, -0.05, 0.2, 0.15, 0.25, -0.1, 0.05])
    signs = np.array(np.meshgrid(*[[-1, 1]] * diff.size)).reshape(diff.size, -1).T  # (256, 8)
    exact = np.mean(np.abs((signs * diff).mean(axis=1)) >= abs(diff.mean()) - 1e-12)
    estimate = paired_permutation_test(diff, np.zeros_like(diff), n_resamples=40_000, seed=0).p_value
    assert estimate == pytest.approx(exact, abs=0.01)


def test_paired_test_rejects_unpaired_lengths():
    with pytest.raises(ValueError, match="same questions"):
        paired_permutation_test([1.0, 2.0], [1.0])


def test_holm_on_hand_example():
    # sorted: 0.01*4=0.04, 0.02*3=0.06, 0.03*2=0.06 (monotone), 0.5*1=0.5
    adjusted = holm_bonferroni([0.03, 0.5, 0.01, 0.02])
    np.testing.assert_allclose(adjusted, [0.06, 0.5, 0.04, 0.06])
    assert holm_bonferroni([0.6, 0.9]).tolist() == [1.0, 1.0]  # capped at 1
    assert holm_bonferroni([]).size == 0


def test_seed_ci_matches_student_t():
    values = [0.50, 0.52, 0.55]
    interval = seed_ci(values)
    half = scipy_stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
    assert interval.mean == pytest.approx(np.mean(values))
    assert interval.high - interval.mean == pytest.approx(half)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_ci([0.5])


def test_bootstrap_ci_covers_true_mean_at_about_nominal_rate():
    rng = np.random.default_rng(7)
    true_mean = 0.5  # Beta(2, 2)
    trials = 200
    covered = sum(
        lo <= true_mean <= hi
        for _, lo, hi, _, _ in (bootstrap_ci(rng.beta(2, 2, 150), n_resamples=1000, seed=t) for t in range(trials))
    )
    assert 0.89 <= covered / trials <= 0.99


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(8).uniform(0, 1, 80)
    first, second = bootstrap_ci(x, seed=11), bootstrap_ci(x, seed=11)
    assert first == second
    assert first.low < x.mean() < first.high
    assert first.method == "bootstrap over questions" and first.n == 80


def test_non_finite_values_are_rejected():
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_ci([0.1, float("nan")])
