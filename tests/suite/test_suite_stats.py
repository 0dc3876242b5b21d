"""Statistics used by the suite report: seed-aware tests and intervals, permutation test, Holm correction.

The calibration tests simulate whole suites (no model): a per-question metric with a run-level
seed shift, and check the false-positive rate and the power the report relies on.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from qaembed.suite.stats import (
    BOOTSTRAP_METHOD,
    PERMUTATION_TEST,
    SEED_TEST,
    hierarchical_bootstrap_ci,
    holm_bonferroni,
    minimum_detectable_effect,
    paired_permutation_test,
    seed_aware_test,
)


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


def test_noise_only_differences_are_rejected_at_about_alpha_and_p_is_symmetric():
    rng = np.random.default_rng(4)
    p_values = []
    for trial in range(300):
        a, b = rng.uniform(0, 1, 150), rng.uniform(0, 1, 150)
        p_values.append(paired_permutation_test(a, b, n_resamples=999, seed=trial).p_value)
    rate = np.mean(np.array(p_values) < 0.05)
    assert 0.02 <= rate <= 0.09  # nominal 0.05; binomial sd over 300 suites is 0.013
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


def _simulated_suite(rng, n_seeds, seed_sd, effect=0.0, question_sd=0.0, n_questions=182, noise_sd=0.15):
    """Per-question values of a trained loss (n_seeds, Q) and of the baseline (1, Q)."""
    baseline = rng.uniform(0.3, 0.9, n_questions)
    question_effect = rng.normal(0, question_sd, n_questions)  # questions that gain more than others
    seed_shift = rng.normal(0, seed_sd, (n_seeds, 1))  # some seeds train better: a run-level shift
    trained = baseline + effect + question_effect + seed_shift + rng.normal(0, noise_sd, (n_seeds, n_questions))
    return trained, baseline[None, :]


@pytest.mark.parametrize("seed_sd", [0.01, 0.02])
@pytest.mark.parametrize("question_sd", [0.0, 0.05, 0.18])
def test_seed_aware_test_false_positive_rate_is_at_most_alpha(seed_sd: float, question_sd: float):
    # The calibration: 3 seeds, 182 questions, per-question sd 0.15, no true effect; also with
    # question effects (0.18 is what the cpu preset measured: per-question gains vary far more than seeds)
    rng = np.random.default_rng(int(seed_sd * 1000) + int(question_sd * 100))
    suites = 1500
    rejected = sum(
        seed_aware_test(*_simulated_suite(rng, 3, seed_sd, question_sd=question_sd)).p_value < 0.05
        for _ in range(suites)
    )
    assert rejected / suites <= 0.06


def test_seed_averaged_permutation_test_is_what_over_rejects():
    # The old method (average seeds per question, then permute questions) ignores the seed shift.
    rng = np.random.default_rng(7)
    suites = 600
    rejected = 0
    for _ in range(suites):
        trained, baseline = _simulated_suite(rng, 3, 0.02)
        rejected += paired_permutation_test(trained.mean(axis=0), baseline[0], n_resamples=499, seed=0).p_value < 0.05
    assert rejected / suites > 0.2


def test_seed_aware_test_keeps_power_when_questions_vary_more_than_seeds():
    # 3 seeds, a consistent +0.05 with large per-question variation: a fixed S-1 df detects it < 20 %
    rng = np.random.default_rng(12)
    suites = 600
    detected = sum(seed_aware_test(*_simulated_suite(rng, 3, 0.01, effect=0.05, question_sd=0.18)).p_value < 0.05
                   for _ in range(suites))
    assert detected / suites >= 0.7


def test_seed_aware_test_detects_a_real_effect_with_five_seeds():
    rng = np.random.default_rng(11)
    suites = 1000
    detected = 0
    for _ in range(suites):
        test = seed_aware_test(*_simulated_suite(rng, 5, 0.01, effect=0.03, question_sd=0.05))
        detected += test.p_value < 0.05 and test.mean_difference > 0
    assert detected / suites >= 0.8


def test_seed_aware_test_formula_on_a_hand_example():
    a = np.array([[0.6, 0.7, 0.8, 0.5], [0.62, 0.69, 0.85, 0.52], [0.58, 0.75, 0.79, 0.55]])
    b = np.array([[0.5, 0.7, 0.7, 0.5]])
    test = seed_aware_test(a, b)
    d = a - b
    S, Q = d.shape
    ms_seed = Q * d.mean(axis=1).var(ddof=1)
    ms_question = S * d.mean(axis=0).var(ddof=1)
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    ms_resid = (resid**2).sum() / ((S - 1) * (Q - 1))
    seed_term, question_term = max(ms_seed, ms_resid), max(ms_question - ms_resid, 0)
    se = np.sqrt((seed_term + question_term) / (S * Q))
    df = max(S - 1, (seed_term + question_term) ** 2 / (
        seed_term**2 / ((S - 1) / 2)
        + ((ms_question**2 / (Q - 1) + ms_resid**2 / ((S - 1) * (Q - 1))) if question_term > 0 else 0)))
    assert test.method == SEED_TEST and test.df == pytest.approx(df) and test.df >= S - 1
    assert test.mean_difference == pytest.approx(d.mean())
    assert test.std_error == pytest.approx(se)
    assert test.p_value == pytest.approx(2 * scipy_stats.t.sf(d.mean() / se, df))
    assert test.mde == pytest.approx((scipy_stats.t.ppf(0.975, df) + scipy_stats.t.ppf(0.8, df)) * se)
    assert test.ci_low < d.mean() < test.ci_high


def test_one_seed_is_a_permutation_test_of_this_run():
    rng = np.random.default_rng(3)
    trained, baseline = _simulated_suite(rng, 1, 0.02, effect=0.05)
    test = seed_aware_test(trained, baseline)
    assert test.method == PERMUTATION_TEST and test.n_seeds == 1 and np.isnan(test.seed_sd)
    assert test.p_value == paired_permutation_test(trained[0], baseline[0], seed=0).p_value
    assert test.std_error == pytest.approx((trained[0] - baseline[0]).std(ddof=1) / np.sqrt(182))


def test_seed_aware_test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same seeds and questions"):
        seed_aware_test(np.zeros((3, 5)), np.zeros((2, 5)))


def test_minimum_detectable_effect_gives_80_percent_power():
    # Simulate the z-like case (many df): at the MDE, a level-0.05 test rejects ~80% of the time.
    se, df = 0.01, 1000
    mde = minimum_detectable_effect(se, df)
    rng = np.random.default_rng(5)
    estimates = rng.normal(mde, se, 20000)
    power = np.mean(np.abs(estimates / se) > scipy_stats.t.ppf(0.975, df))
    assert power == pytest.approx(0.8, abs=0.01)


def test_one_seed_bootstrap_covers_true_mean_at_about_nominal_rate():
    rng = np.random.default_rng(0)
    trials = 200
    covered = sum(
        lo <= 0.5 <= hi
        for lo, hi in (hierarchical_bootstrap_ci(rng.beta(2, 2, 150), n_resamples=1000, seed=t)[1:3]
                       for t in range(trials))
    )
    assert 0.9 <= covered / trials <= 0.99


def test_hierarchical_bootstrap_widens_with_seed_variance():
    rng = np.random.default_rng(6)
    noise = rng.normal(0, 0.15, (5, 182))
    calm = hierarchical_bootstrap_ci(0.5 + noise, n_resamples=2000)
    shifted = hierarchical_bootstrap_ci(0.5 + noise + np.array([[-0.04], [-0.02], [0.0], [0.02], [0.04]]),
                                        n_resamples=2000)
    assert calm.method == shifted.method == BOOTSTRAP_METHOD
    assert (shifted.n_seeds, shifted.n_questions) == (5, 182)
    assert shifted.high - shifted.low > 1.5 * (calm.high - calm.low)


def test_hierarchical_bootstrap_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(9).uniform(0, 1, (3, 80))
    first, second = hierarchical_bootstrap_ci(x, seed=11), hierarchical_bootstrap_ci(x, seed=11)
    assert first == second
    assert first.low < first.mean < first.high
    assert first.mean == pytest.approx(x.mean())


def test_non_finite_values_are_rejected():
    with pytest.raises(ValueError, match="non-finite"):
        hierarchical_bootstrap_ci([0.1, float("nan")])


def test_seed_t_test_on_equal_values_up_to_rounding_is_not_significant():
    # (0.1 + 0.2) - 0.3 = 5.6e-17 on every question of every seed: no difference, not "p = 0"
    test = seed_aware_test(np.full((3, 50), 0.1) + 0.2, np.full((1, 50), 0.3))
    assert test.method == SEED_TEST and test.p_value == 1.0
    assert seed_aware_test(np.full((3, 50), 0.5), np.full((1, 50), 0.5)).p_value == 1.0
    assert seed_aware_test(np.full((3, 50), 0.6), np.full((1, 50), 0.5)).p_value == 0.0  # a constant real shift


def test_two_seeds_hold_alpha_only_while_seeds_vary_less_than_questions():
    # docs/suite.md "Two seeds": one degree of freedom for the seed variance; the report says so (test_suite_report)
    def rate(seed_sd: float, rng_seed: int) -> float:
        rng = np.random.default_rng(rng_seed)
        return np.mean([seed_aware_test(*_simulated_suite(rng, 2, seed_sd, question_sd=0.18)).p_value < 0.05
                        for _ in range(1500)])

    assert rate(0.01, 21) <= 0.06  # seed sd below the question-sampling standard error (about 0.013 here)
    assert rate(0.05, 22) > 0.065  # seeds dominate: over-rejects (about 0.08)
