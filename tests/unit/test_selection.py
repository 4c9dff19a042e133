from __future__ import annotations

from dataclasses import dataclass

import pytest

from pytest_mipro.selection import holdout_decision, paired_standard_error, prefer_shorter


@dataclass(frozen=True)
class Scored:
    score: float
    scores: list[float] | None
    prompt_chars: int


def test_paired_standard_error_of_known_differences() -> None:
    mean, se = paired_standard_error([1, 1, 0, 1], [0, 1, 0, 0])
    assert mean == pytest.approx(0.5)
    assert se == pytest.approx(0.288675, rel=1e-4)  # sd of [1, 0, 0, 1] is 0.57735, over sqrt(4)


def test_unequal_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_standard_error([1, 0], [1])


def test_one_se_rule_prefers_the_shorter_prompt_when_the_gap_is_noise() -> None:
    best = Scored(0.8, [1, 1, 1, 1, 0], 900)
    short = Scored(0.6, [1, 1, 1, 0, 0], 100)
    assert prefer_shorter([best, short]) is short


def test_one_se_rule_keeps_the_best_when_the_gap_is_real() -> None:
    best = Scored(1.0, [1] * 40, 900)
    worse = Scored(0.5, [1, 0] * 20, 100)
    assert prefer_shorter([worse, best]) is best


def test_candidates_without_example_scores_only_win_as_the_best() -> None:
    best = Scored(0.9, [1] * 9 + [0], 500)
    elsewhere = Scored(0.85, None, 1)
    assert prefer_shorter([best, elsewhere]) is best


def test_holdout_adopts_a_real_improvement() -> None:
    decision = holdout_decision([1] * 30 + [0] * 10, [1] * 20 + [0] * 20)
    assert decision.adopt
    assert decision.lower_bound > 0
    assert decision.improvement == pytest.approx(0.25)


def test_holdout_keeps_the_old_prompt_when_the_new_one_is_not_better() -> None:
    decision = holdout_decision([1] * 21 + [0] * 19, [1] * 20 + [0] * 20)
    assert not decision.adopt
    assert "kept the current prompt" in decision.reason
    assert decision.lower_bound <= 0


def test_holdout_keeps_the_old_prompt_when_the_new_one_is_worse() -> None:
    assert not holdout_decision([0] * 10, [1] * 10).adopt


def test_holdout_too_small_is_not_adopted() -> None:
    decision = holdout_decision([1], [0])
    assert not decision.adopt and "too small" in decision.reason
