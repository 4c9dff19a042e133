"""Tests for pytest_mipro.stats (the CI gate's statistics)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mipro.stats import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    RegressionResult,
    ThresholdResult,
    clustered_mean_interval,
    mcnemar_exact_p,
    norm_ppf,
    paired_t_p,
    rate_bounds,
    regression_test,
    regularized_incomplete_beta,
    student_t_cdf,
    student_t_ppf,
    threshold_verdict,
    wilson_interval,
)

# ---------------------------------------------------------------- distributions


@pytest.mark.parametrize(
    ("p", "z"),
    [(0.5, 0.0), (0.95, 1.6448536269514722), (0.975, 1.959963984540054),
     (0.999, 3.090232306167813), (0.01, -2.3263478740408408), (1e-9, -5.997807015007686)],
)
def test_norm_ppf_known_values(p: float, z: float) -> None:
    assert norm_ppf(p) == pytest.approx(z, abs=1e-9)


@given(st.floats(min_value=-8.0, max_value=6.0))
def test_norm_ppf_inverts_erf(x: float) -> None:
    p = 0.5 * math.erfc(-x / math.sqrt(2.0))
    if 0.0 < p < 1.0:
        assert norm_ppf(p) == pytest.approx(x, abs=1e-7)


def test_norm_ppf_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        norm_ppf(1.0)


def test_incomplete_beta_against_binomial_sum() -> None:
    # I_x(a, n - a + 1) = P(Binomial(n, x) >= a)
    n, a, x = 4, 2, 0.4
    expected = sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a, n + 1))
    assert regularized_incomplete_beta(a, n - a + 1, x) == pytest.approx(expected, abs=1e-12)
    assert regularized_incomplete_beta(2.5, 0.5, 0.0) == 0.0
    assert regularized_incomplete_beta(2.5, 0.5, 1.0) == 1.0


@given(st.floats(min_value=-50.0, max_value=50.0))
def test_student_t_cdf_closed_forms(t: float) -> None:
    cauchy = 0.5 + math.atan(t) / math.pi
    df2 = 0.5 + t / (2.0 * math.sqrt(2.0 + t * t))
    assert student_t_cdf(t, 1) == pytest.approx(cauchy, abs=1e-10)
    assert student_t_cdf(t, 2) == pytest.approx(df2, abs=1e-10)


@pytest.mark.parametrize(("p", "df", "t"), [(0.95, 1, 6.313751514675), (0.95, 10, 1.812461122811),
                                             (0.975, 30, 2.042272456301)])
def test_student_t_ppf_table(p: float, df: int, t: float) -> None:
    assert student_t_ppf(p, df) == pytest.approx(t, abs=1e-8)
    assert student_t_ppf(1 - p, df) == pytest.approx(-t, abs=1e-8)


# ---------------------------------------------------------------- intervals


def test_wilson_known_value() -> None:
    lower, upper = wilson_interval(42, 50)
    assert (round(lower, 3), round(upper, 3)) == (0.738, 0.907)


def test_wilson_two_sided_is_wider() -> None:
    lo1, hi1 = wilson_interval(42, 50, one_sided=True)
    lo2, hi2 = wilson_interval(42, 50, one_sided=False)
    assert lo2 < lo1 and hi2 > hi1


def test_wilson_empty() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_extremes_stay_in_unit_interval() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


@given(st.integers(min_value=1, max_value=500), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_monotone_in_successes(n: int, confidence: float) -> None:
    bounds = [wilson_interval(s, n, confidence) for s in range(n + 1)]
    for (lo_a, hi_a), (lo_b, hi_b) in zip(bounds, bounds[1:], strict=False):
        assert lo_b >= lo_a - 1e-15
        assert hi_b >= hi_a - 1e-15
    for s, (lo, hi) in enumerate(bounds):
        assert lo <= s / n <= hi


def test_clustered_matches_wilson_for_single_binary_scores() -> None:
    scores = [[1.0]] * 42 + [[0.0]] * 8
    mean, lower, upper = clustered_mean_interval(scores)
    assert mean == pytest.approx(0.84)
    assert (lower, upper) == pytest.approx(wilson_interval(42, 50))


def test_clustered_repeats_do_not_inflate_evidence() -> None:
    # Ten identical repeats of each example carry no more information
    # than one score per example.
    single = [[0.9], [0.6], [0.8], [0.7], [0.75], [0.85]]
    repeated = [s * 10 for s in single]
    assert clustered_mean_interval(repeated) == pytest.approx(clustered_mean_interval(single))


def test_clustered_zero_variance_is_not_certain() -> None:
    mean, lower, upper = clustered_mean_interval([[1.0, 1.0, 1.0]] * 3)
    assert mean == 1.0 and upper == 1.0
    assert lower < 0.8  # same as Wilson on 3 examples, not [1, 1]
    assert clustered_mean_interval([[0.8]] * 5)[1] < 0.8


def test_clustered_bounds_bracket_mean_and_stay_in_range() -> None:
    mean, lower, upper = clustered_mean_interval([[0.0, 0.1], [0.05], [0.0, 0.0, 0.2]])
    assert 0.0 <= lower <= mean <= upper <= 1.0
    assert clustered_mean_interval([]) == (0.0, 0.0, 1.0)


def test_clustered_rejects_bad_scores() -> None:
    with pytest.raises(ValueError):
        clustered_mean_interval([[1.2]])
    with pytest.raises(ValueError):
        clustered_mean_interval([[]])


# ---------------------------------------------------------------- paired tests


def test_mcnemar_known_values() -> None:
    assert round(mcnemar_exact_p(10, 4), 3) == 0.090
    assert round(mcnemar_exact_p(12, 3), 3) == 0.018
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(0, 5) == 1.0


def test_paired_t_against_hand_computation() -> None:
    before = [1.0, 2.0, 3.0, 4.0, 5.0]
    after = [0.5, 1.9, 2.5, 3.9, 4.2]
    d = [x - y for x, y in zip(before, after, strict=True)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    # Closed-form CDF of Student's t with 4 degrees of freedom.
    k = t * t / (4.0 + t * t)
    cdf = 0.5 + 0.375 * (t / math.sqrt(1 + t * t / 4.0)) * (1 - k / 3.0)
    assert paired_t_p(before, after) == pytest.approx(1.0 - cdf, rel=1e-9)
    assert round(paired_t_p(before, after), 4) == 0.0203


def test_paired_t_degenerate_cases() -> None:
    assert paired_t_p([0.3, 0.5, 0.7], [0.3, 0.5, 0.7]) == 1.0
    assert paired_t_p([0.5, 0.6, 0.7], [0.4, 0.5, 0.6]) == 0.0
    assert paired_t_p([0.4, 0.5, 0.6], [0.5, 0.6, 0.7]) == 1.0
    assert paired_t_p([0.9], [0.1]) == 1.0
    with pytest.raises(ValueError):
        paired_t_p([1.0, 0.0], [1.0])


def test_paired_t_direction() -> None:
    worse = paired_t_p([0.9, 0.8, 0.85, 0.95], [0.5, 0.6, 0.4, 0.55])
    better = paired_t_p([0.5, 0.6, 0.4, 0.55], [0.9, 0.8, 0.85, 0.95])
    assert worse < 0.01 and better > 0.99


def _pairs(b: int, c: int, both_pass: int, both_fail: int) -> tuple[list[float], list[float]]:
    before = [1.0] * b + [0.0] * c + [1.0] * both_pass + [0.0] * both_fail
    after = [0.0] * b + [1.0] * c + [1.0] * both_pass + [0.0] * both_fail
    return before, after


def test_regression_real_drop() -> None:
    before, after = _pairs(b=20, c=2, both_pass=60, both_fail=18)
    result = regression_test(before, after)
    assert isinstance(result, RegressionResult)
    assert result.method == "mcnemar" and (result.b, result.c) == (20, 2)
    assert result.drop == pytest.approx(0.18)
    assert result.significant and result.regressed
    assert result.n == 100


def test_regression_noise_sized_drop() -> None:
    before, after = _pairs(b=10, c=4, both_pass=70, both_fail=16)
    result = regression_test(before, after)
    assert result.drop == pytest.approx(0.06)
    assert round(result.p_value, 3) == 0.090
    assert not result.significant and not result.regressed


def test_regression_significant_but_below_min_drop() -> None:
    before, after = _pairs(b=12, c=0, both_pass=900, both_fail=88)
    result = regression_test(before, after, min_drop=0.02)
    assert result.significant and not result.regressed


def test_regression_graded_uses_paired_t() -> None:
    before = [0.9, 0.8, 0.85, 0.95, 0.7, 0.88]
    after = [0.5, 0.6, 0.4, 0.55, 0.6, 0.5]
    result = regression_test(before, after)
    assert result.method == "paired_t" and result.b is None and result.c is None
    assert result.regressed
    improved = regression_test(after, before)
    assert improved.drop < 0 and not improved.regressed


def test_regression_empty() -> None:
    result = regression_test([], [])
    assert result.p_value == 1.0 and not result.regressed


# ---------------------------------------------------------------- threshold verdicts


def test_threshold_pass_fail_inconclusive() -> None:
    scores = [1.0] * 42 + [0.0] * 8  # bounds (0.738, 0.907)
    passed = threshold_verdict(scores, 0.7)
    assert isinstance(passed, ThresholdResult)
    assert passed.verdict == PASS and passed.n == 50 and passed.score == pytest.approx(0.84)
    assert threshold_verdict(scores, 0.95).verdict == FAIL
    unsure = threshold_verdict(scores, 0.8)
    assert unsure.verdict == INCONCLUSIVE
    assert unsure.needed_n is not None and unsure.needed_n > 50
    assert threshold_verdict(scores, 0.84).needed_n is None


def test_threshold_needed_n_is_sufficient() -> None:
    unsure = threshold_verdict([1.0] * 42 + [0.0] * 8, 0.8)
    assert unsure.needed_n is not None
    n = unsure.needed_n
    assert wilson_interval(round(0.84 * n), n)[0] >= 0.8 - 0.01
    assert wilson_interval(round(0.84 * (n // 2)), n // 2)[0] < 0.8


def test_threshold_graded_uses_clustered_interval() -> None:
    scores = [[0.8, 0.7], [0.9, 0.85], [0.6, 0.7], [0.75, 0.8]] * 10
    result = threshold_verdict(scores, 0.7)
    mean, lower, upper = clustered_mean_interval(scores)
    assert (result.score, result.lower, result.upper) == (mean, lower, upper)
    assert result.verdict == PASS
    assert threshold_verdict(scores, 0.9).verdict == FAIL


def test_threshold_empty_is_inconclusive() -> None:
    result = threshold_verdict([], 0.5)
    assert result.verdict == INCONCLUSIVE and result.n == 0 and result.needed_n is None


# ---------------------------------------------------------------- curtailment


@given(st.integers(0, 60), st.integers(1, 60))
def test_rate_bounds_are_the_one_sided_wilson_bounds(successes: int, n: int) -> None:
    successes = min(successes, n)
    assert rate_bounds(successes / n, n) == pytest.approx(wilson_interval(successes, n))


@given(st.floats(0.0, 1.0), st.integers(1, 200), st.sampled_from([0.8, 0.95, 0.99]))
def test_rate_bounds_bracket_a_partial_credit_mean_and_widen_with_confidence(rate: float, n: int, confidence: float) -> None:
    low, high = rate_bounds(rate, n, confidence)
    assert 0.0 <= low <= rate <= high <= 1.0
    wider = rate_bounds(rate, n, 0.999)
    assert wider[0] <= low + 1e-12 and high <= wider[1] + 1e-12
