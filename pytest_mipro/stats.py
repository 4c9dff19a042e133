"""Statistics behind the CI gate: telling a real change from evaluation noise.

Pure standard library. Every score is assumed to lie in ``[0, 1]``:
0/1 for pass/fail metrics, anything in between for graded metrics.

Contents
--------
* Distributions: :func:`norm_ppf`, :func:`student_t_cdf`, :func:`student_t_ppf`,
  :func:`regularized_incomplete_beta`.
* Intervals: :func:`wilson_interval`, :func:`clustered_mean_interval`.
* Paired tests: :func:`mcnemar_exact_p`, :func:`paired_t_p`,
  :func:`paired_bootstrap_p`, :func:`regression_test`.
* Threshold gate: :func:`threshold_verdict`, with early stopping
  (curtailment) in :func:`settled_verdict`, :class:`ThresholdCurtailer` and
  :func:`curtailed_threshold_verdict`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "PASS",
    "RegressionResult",
    "ThresholdResult",
    "Verdict",
    "binary_threshold_verdict",
    "clustered_mean_interval",
    "mcnemar_exact_p",
    "mcnemar_regression",
    "norm_ppf",
    "paired_t_p",
    "regression_test",
    "regularized_incomplete_beta",
    "student_t_cdf",
    "student_t_ppf",
    "threshold_verdict",
    "wilson_interval",
]

PASS: Literal["PASS"] = "PASS"
FAIL: Literal["FAIL"] = "FAIL"
INCONCLUSIVE: Literal["INCONCLUSIVE"] = "INCONCLUSIVE"
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]

#: One example's score(s): a single float, or the list of its repeated samples.
ExampleScores = float | Sequence[float]

_MAX_NEEDED_N = 10**9


# --------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------

# Acklam's rational approximation of the inverse normal CDF.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00)
_P_LOW = 0.02425


def _acklam(p: float) -> float:
    """Acklam's approximation (relative error ~1e-9) of the normal quantile."""
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        num = ((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]
        return num / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    if p > 1.0 - _P_LOW:
        return -_acklam(1.0 - p)
    q = p - 0.5
    r = q * q
    num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    return num / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)


def norm_ppf(p: float) -> float:
    """Inverse standard normal CDF (Acklam + one Halley refinement step)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    x = _acklam(p)
    err = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = err * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result


def _incomplete_beta(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b) with ``y == 1 - x`` supplied separately for precision."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log(y)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2);
    # otherwise use the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, y) / b


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0."""
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be positive")
    return _incomplete_beta(a, b, x, 1.0 - x)


def student_t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("df must be positive")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    t2 = t * t
    # P(|T| > |t|) = I_x(df/2, 1/2) with x = df / (df + t^2).
    both_tails = _incomplete_beta(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))
    return 1.0 - 0.5 * both_tails if t > 0 else 0.5 * both_tails


def student_t_ppf(p: float, df: float) -> float:
    """Inverse CDF of Student's t (bisection on :func:`student_t_cdf`)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p < 0.5:
        return -student_t_ppf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


# --------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------


def _tail_probability(confidence: float, one_sided: bool) -> float:
    """Upper quantile level for a (one- or two-sided) interval."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return confidence if one_sided else 1.0 - (1.0 - confidence) / 2.0


def _z(confidence: float, one_sided: bool) -> float:
    return norm_ppf(_tail_probability(confidence, one_sided))


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def _wilson_from_rate(rate: float, n: float, z: float) -> tuple[float, float]:
    """Wilson bounds for an observed rate over a (possibly fractional) ``n``."""
    if n <= 0:
        return 0.0, 1.0
    z2n = z * z / n
    center = (rate + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(rate * (1.0 - rate) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    # The exact bounds always bracket the rate; guard against rounding.
    return _clip01(min(center - half, rate)), _clip01(max(center + half, rate))


def rate_bounds(rate: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """One-sided Wilson bounds at ``confidence`` for a mean of ``n`` scores in [0, 1].

    The scores need not be 0 or 1: a [0, 1] variable with mean p has variance at most
    p(1 - p), so the binomial bounds hold for partial credit too (conservatively).
    """
    return _wilson_from_rate(_clip01(rate), n, _z(confidence, True))


def wilson_interval(
    successes: int, n: int, confidence: float = 0.95, one_sided: bool = True
) -> tuple[float, float]:
    """Wilson score bounds for a binomial proportion.

    With ``one_sided=True`` each bound is a one-sided bound at ``confidence``
    (z = 1.645 at 0.95); otherwise the pair is a two-sided interval.
    ``n == 0`` gives ``(0.0, 1.0)``.
    """
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    return _wilson_from_rate(successes / n, n, _z(confidence, one_sided))


def _as_example(scores: ExampleScores) -> list[float]:
    """Normalise one example's scores into a non-empty list of floats in [0, 1]."""
    values = [float(scores)] if isinstance(scores, (int, float)) else [float(s) for s in scores]
    if not values:
        raise ValueError("an example has no scores")
    for v in values:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"scores must lie in [0, 1], got {v!r}")
    return values


def _example_means(scores_per_example: Sequence[ExampleScores]) -> list[float]:
    return [math.fsum(ex) / len(ex) for ex in map(_as_example, scores_per_example)]


def _effective_n(means: Sequence[float], confidence: float, one_sided: bool) -> float:
    """Korn-Graubard effective sample size of the mean of example means.

    ``mean(1 - mean) / SE^2``, shrunk by ``(z / t_{n-1})^2`` for small ``n``
    and never below ``n``: example means are independent values in [0, 1],
    whose variance cannot exceed ``mean(1 - mean)``, so the Wilson interval
    on ``n`` examples is always a valid fallback (it is exactly Wilson when
    every example is a single 0/1 score).
    """
    n = len(means)
    mean = math.fsum(means) / n
    if n < 2 or mean <= 0.0 or mean >= 1.0:
        return float(n)
    ss = math.fsum((m - mean) ** 2 for m in means)
    if ss <= 0.0:
        return float(n)
    se2 = ss / (n * (n - 1))
    level = _tail_probability(confidence, one_sided)
    shrink = (norm_ppf(level) / student_t_ppf(level, n - 1)) ** 2
    return max(float(n), mean * (1.0 - mean) / se2 * shrink)


def clustered_mean_interval(
    scores_per_example: Sequence[ExampleScores],
    confidence: float = 0.95,
    one_sided: bool = True,
) -> tuple[float, float, float]:
    """Mean score and bounds, with uncertainty clustered by example.

    Each entry is one example's repeated scores (or a single float). The mean
    weights examples equally. The standard error is computed from the spread
    of example means (so repeats of one example are not counted as
    independent evidence), turned into a Korn-Graubard effective sample size
    (see :func:`_effective_n`) and fed to the Wilson formula; bounds thus stay
    in [0, 1] and never claim certainty from zero observed variance.
    Returns ``(mean, lower, upper)``; no examples gives ``(0.0, 0.0, 1.0)``.
    """
    means = _example_means(scores_per_example)
    if not means:
        return 0.0, 0.0, 1.0
    mean = math.fsum(means) / len(means)
    n_eff = _effective_n(means, confidence, one_sided)
    lower, upper = _wilson_from_rate(mean, n_eff, _z(confidence, one_sided))
    return mean, lower, upper


# --------------------------------------------------------------------------
# Paired tests (is the new version worse?)
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # the gate asks again for the same counts, chunk after chunk
def mcnemar_exact_p(b: int, c: int) -> float:
    """One-sided exact McNemar p-value that the new version is worse.

    ``b``: examples that passed before and fail now; ``c``: failed before and
    pass now. Returns ``P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)``.
    """
    if b < 0 or c < 0:
        raise ValueError("b and c must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(b, n + 1))
    return float(Fraction(tail, 2**n))


def _differences(before: Sequence[float], after: Sequence[float]) -> list[float]:
    if len(before) != len(after):
        raise ValueError(f"paired samples differ in length: {len(before)} != {len(after)}")
    return [float(x) - float(y) for x, y in zip(before, after, strict=True)]


def paired_t_p(before: Sequence[float], after: Sequence[float]) -> float:
    """One-sided paired t-test p-value for ``mean(before - after) > 0``.

    Zero variance gives 1.0 when the mean difference is <= 0 and 0.0 when it
    is positive; fewer than two pairs gives 1.0.
    """
    diffs = _differences(before, after)
    n = len(diffs)
    if n < 2:
        return 1.0
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var <= 1e-300:
        return 0.0 if mean > 0 else 1.0
    t = mean / math.sqrt(var / n)
    return 1.0 - student_t_cdf(t, n - 1)


@dataclass(frozen=True)
class RegressionResult:
    """Outcome of :func:`regression_test`.

    ``drop`` is ``mean(before) - mean(after)`` (positive = worse now).
    ``b``/``c`` are the discordant counts when ``method == "mcnemar"``.
    """

    drop: float
    p_value: float
    method: Literal["mcnemar", "paired_t"]
    significant: bool
    regressed: bool
    n: int
    before_mean: float
    after_mean: float
    b: int | None = None
    c: int | None = None


def _is_binary(values: Iterable[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def regression_test(
    before: Sequence[float],
    after: Sequence[float],
    min_drop: float = 0.02,
    alpha: float = 0.05,
) -> RegressionResult:
    """Paired test of whether per-example scores got worse.

    Uses exact McNemar when every score is 0/1, otherwise a paired t-test.
    ``regressed`` requires both significance (``p < alpha``) and a drop
    larger than ``min_drop``.
    """
    _differences(before, after)  # validates lengths
    if _is_binary(before) and _is_binary(after):
        b = sum(1 for x, y in zip(before, after, strict=True) if x == 1.0 and y == 0.0)
        c = sum(1 for x, y in zip(before, after, strict=True) if x == 0.0 and y == 1.0)
        return mcnemar_regression(len(before), sum(x == 1.0 for x in before), sum(y == 1.0 for y in after), b, c, min_drop, alpha)
    return _regression(len(before), _mean(before), _mean(after), paired_t_p(before, after), "paired_t", min_drop, alpha)


def mcnemar_regression(
    n: int, before_successes: int, after_successes: int, b: int, c: int, min_drop: float = 0.02, alpha: float = 0.05
) -> RegressionResult:
    """:func:`regression_test` of ``n`` paired 0/1 scores from their counts: the successes
    before and after, ``b`` (passed before, fail now) and ``c`` (failed before, pass now).

    The same result as from the lists, in constant time (the gate asks after every chunk).
    """
    before_mean = before_successes / n if n else 0.0
    after_mean = after_successes / n if n else 0.0
    return _regression(n, before_mean, after_mean, mcnemar_exact_p(b, c), "mcnemar", min_drop, alpha, b=b, c=c)


def _regression(
    n: int,
    before_mean: float,
    after_mean: float,
    p_value: float,
    method: Literal["mcnemar", "paired_t"],
    min_drop: float,
    alpha: float,
    b: int | None = None,
    c: int | None = None,
) -> RegressionResult:
    """The verdict of either test: a regression is significant *and* a drop larger than ``min_drop``."""
    drop = before_mean - after_mean
    significant = p_value < alpha
    return RegressionResult(
        drop=drop,
        p_value=p_value,
        method=method,
        significant=significant,
        regressed=significant and drop > min_drop,
        n=n,
        before_mean=before_mean,
        after_mean=after_mean,
        b=b,
        c=c,
    )


# --------------------------------------------------------------------------
# Threshold gate
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdResult:
    """Outcome of :func:`threshold_verdict`.

    ``lower``/``upper`` are one-sided bounds at the requested confidence.
    ``needed_n`` estimates how many examples (at the same mean and spread)
    would make the interval exclude the threshold; ``None`` when the mean
    equals the threshold (or no examples were scored).
    """

    verdict: Verdict
    score: float
    lower: float
    upper: float
    n: int
    needed_n: int | None


def _verdict(lower: float, upper: float, threshold: float) -> Verdict:
    if upper < threshold:
        return FAIL
    if lower >= threshold:
        return PASS
    return INCONCLUSIVE


def _excludes(mean: float, n_eff: float, threshold: float, z: float) -> bool:
    lower, upper = _wilson_from_rate(mean, n_eff, z)
    return lower >= threshold if mean > threshold else upper < threshold


def _needed_n(mean: float, eff_per_example: float, threshold: float, z: float) -> int | None:
    """Smallest example count whose interval excludes ``threshold``."""
    if mean == threshold:
        return None
    hi = 1
    while not _excludes(mean, eff_per_example * hi, threshold, z):
        if hi > _MAX_NEEDED_N:
            return None
        hi *= 2
    lo = hi // 2  # lo == 0 or does not exclude
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _excludes(mean, eff_per_example * mid, threshold, z):
            hi = mid
        else:
            lo = mid
    return hi


def threshold_verdict(
    scores_per_example: Sequence[ExampleScores],
    threshold: float,
    confidence: float = 0.95,
) -> ThresholdResult:
    """PASS / FAIL / INCONCLUSIVE for "the true mean score is >= threshold".

    Uses the Wilson interval when every example has exactly one 0/1 score,
    otherwise :func:`clustered_mean_interval`. FAIL when the upper bound is
    below the threshold, PASS when the lower bound reaches it.
    """
    examples = [_as_example(s) for s in scores_per_example]
    n = len(examples)
    if n == 0:
        return ThresholdResult(_verdict(0.0, 1.0, threshold), 0.0, 0.0, 1.0, 0, None)
    if all(len(ex) == 1 for ex in examples) and _is_binary(ex[0] for ex in examples):
        return binary_threshold_verdict(sum(int(ex[0]) for ex in examples), n, threshold, confidence)
    z = _z(confidence, one_sided=True)
    means = _example_means(examples)
    mean, lower, upper = clustered_mean_interval(examples, confidence, one_sided=True)
    n_eff = _effective_n(means, confidence, one_sided=True)
    return ThresholdResult(
        verdict=_verdict(lower, upper, threshold),
        score=mean,
        lower=lower,
        upper=upper,
        n=n,
        needed_n=_needed_n(mean, n_eff / n, threshold, z),
    )


@functools.lru_cache(maxsize=4096)  # the gate asks for the same counts in every target
def binary_threshold_verdict(successes: int, n: int, threshold: float, confidence: float = 0.95) -> ThresholdResult:
    """:func:`threshold_verdict` of ``n`` single 0/1 scores, ``successes`` of them 1, from the
    counts (Wilson bounds), in constant time."""
    if n == 0:
        return ThresholdResult(_verdict(0.0, 1.0, threshold), 0.0, 0.0, 1.0, 0, None)
    mean = successes / n
    lower, upper = wilson_interval(successes, n, confidence, one_sided=True)
    return ThresholdResult(
        verdict=_verdict(lower, upper, threshold),
        score=mean,
        lower=lower,
        upper=upper,
        n=n,
        needed_n=_needed_n(mean, 1.0, threshold, _z(confidence, one_sided=True)),
    )
