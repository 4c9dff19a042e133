"""``auto`` presets, the trial-count formula and the train/validation split (as in dspy.MIPROv2),
and the racing confidence each preset uses."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

MIN_MINIBATCH_VALSET = 50  # with auto, valsets this small get a full eval every trial
DEFAULT_MINIBATCH_SIZE = 35  # compile()'s default, as in dspy.MIPROv2
MAX_VALSET = 1000
DEFAULT_RACE_CONFIDENCE = 0.95  # racing with auto=None


@dataclass(frozen=True)
class AutoPreset:
    num_candidates: int
    val_size: int
    # Ours, not dspy's. How readily racing stops an evaluation: light trades a little of
    # the pick for about a quarter fewer search calls (bench/racing_replay.py).
    race_confidence: float = DEFAULT_RACE_CONFIDENCE


AUTO_PRESETS = {
    "light": AutoPreset(num_candidates=6, val_size=100, race_confidence=0.85),
    "medium": AutoPreset(num_candidates=12, val_size=300),
    "heavy": AutoPreset(num_candidates=18, val_size=1000),
}


def race_confidence_for(auto: str | None, requested: float | str | None) -> float | None:
    """``race_confidence="auto"`` means the preset's, or 0.95 without one; anything else stands."""
    if isinstance(requested, str):  # "auto", the only string MIPROv2 accepts
        return AUTO_PRESETS[auto].race_confidence if auto is not None else DEFAULT_RACE_CONFIDENCE
    return requested


def num_trials_for(num_predictors: int, num_candidates: int, *, zero_shot: bool) -> int:
    """``max(2 * V * log2(n), 1.5 * n)`` with V = predictors, doubled when demos are searched too."""
    variables = num_predictors if zero_shot else 2 * num_predictors
    return int(max(2 * variables * math.log2(num_candidates), 1.5 * num_candidates))


def default_val_split(trainset: Sequence[T]) -> tuple[list[T], list[T]]:
    """No valset given: the last 80% (at most 1000) of the trainset validates, the rest trains."""
    size = min(MAX_VALSET, max(1, int(0.8 * len(trainset))))
    return list(trainset[:-size]), list(trainset[-size:])


def subsample(items: Sequence[T], size: int, rng: random.Random) -> list[T]:
    """A seeded random sample of ``size`` items, or all of them when there are fewer."""
    if len(items) <= size:
        return list(items)
    return rng.sample(list(items), size)
