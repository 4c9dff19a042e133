"""Honest final selection: do not trust the best-looking candidate on the data that chose it.

The best of many equally good candidates on one validation set looks better than it is.
Two guards, both on paired per-example scores:

- :func:`prefer_shorter`: among candidates within one paired standard error of the best on
  validation, take the one with the shortest prompt (the one-standard-error rule).
- :func:`holdout_decision`: adopt the new program over the current one only when its paired
  improvement on a holdout slice, unseen by the search, has a one-sided 95% lower bound
  above zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .stats import student_t_ppf


def paired_standard_error(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the per-example differences ``a - b``."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return 0.0, 0.0
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(diffs) / n
    if n == 1:
        return mean, 0.0
    variance = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean, math.sqrt(variance / n)


class Scored(Protocol):
    """What :func:`prefer_shorter` reads of a candidate (``optimizer.mipro.Candidate`` has it)."""

    @property
    def score(self) -> float: ...
    @property
    def scores(self) -> Sequence[float] | None: ...
    @property
    def prompt_chars(self) -> int: ...


C = TypeVar("C", bound=Scored)


def prefer_shorter(candidates: Sequence[C]) -> C:
    """The shortest-prompt candidate within one paired standard error of the best.

    Each candidate has a ``score``, its ``scores`` per valset example (None when another
    process scored it) and ``prompt_chars``. One without per-example scores is only
    eligible when it is the best.
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    best = max(candidates, key=lambda c: c.score)
    if best.scores is None:
        return best
    close = [best]
    for candidate in candidates:
        if candidate is best or candidate.scores is None:
            continue
        gap, se = paired_standard_error(best.scores, candidate.scores)
        if gap <= se:
            close.append(candidate)
    return min(close, key=lambda c: (c.prompt_chars, -c.score))


@dataclass(frozen=True)
class HoldoutDecision:
    """Whether the new program replaces the current one, with the evidence."""

    adopt: bool
    new_score: float
    old_score: float
    improvement: float
    lower_bound: float
    n: int
    reason: str


def holdout_decision(new: Sequence[float], old: Sequence[float], confidence: float = 0.95) -> HoldoutDecision:
    """Adopt ``new`` only when the one-sided lower bound of its paired improvement is above 0."""
    n = len(new)
    mean, se = paired_standard_error(new, old)
    new_score = sum(new) / n if n else 0.0
    old_score = sum(old) / n if n else 0.0
    if n < 2:
        return HoldoutDecision(False, new_score, old_score, mean, float("-inf"), n, "holdout too small to compare (n < 2)")
    lower = mean - student_t_ppf(confidence, n - 1) * se if se > 0 else mean
    adopt = lower > 0
    pct = round(confidence * 100)
    if adopt:
        reason = f"holdout improvement {mean:+.3f} (one-sided {pct}% lower bound {lower:+.3f} > 0, n={n})"
    else:
        reason = (
            f"kept the current prompt: holdout improvement {mean:+.3f} is not significant "
            f"(one-sided {pct}% lower bound {lower:+.3f} <= 0, n={n})"
        )
    return HoldoutDecision(adopt, new_score, old_score, mean, lower, n, reason)
