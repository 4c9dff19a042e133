"""A spending limit shared by every LM call made while it is active."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..errors import BudgetExceeded, ConfigError


@dataclass
class Budget:
    """Counts uncached LM calls and their cost; raises :class:`BudgetExceeded` past a limit.

    Cached replies are free and never refused, so a rerun of a finished run always completes.
    """

    max_calls: int | None = None
    max_cost: float | None = None
    calls: int = 0
    cost: float = 0.0
    # An enclosing budget (a whole target's, around its search's): a call is reserved in both.
    parent: Budget | None = field(default=None, repr=False, compare=False)
    # Calls a cost limit keeps room for (the final evaluations, at the mean cost of a call so
    # far) until release_hold(): prices are not known in advance, so a count has to do.
    held_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_calls is not None and self.max_calls < 1:
            raise ConfigError(f"max_lm_calls must be a positive integer, got {self.max_calls!r}")
        if self.max_cost is not None and self.max_cost <= 0:
            raise ConfigError(f"max_cost must be a positive number of dollars, got {self.max_cost!r}")

    def reserve(self) -> None:
        """Claim one request before it is sent, or raise when this budget or an enclosing one is spent."""
        with self._lock:
            if self.exhausted:
                raise BudgetExceeded(self.describe())
            if self.parent is not None:
                self.parent.reserve()
            self.calls += 1

    def add_cost(self, cost: float) -> None:
        with self._lock:
            self.cost += cost
        if self.parent is not None:
            self.parent.add_cost(cost)

    def affords(self, calls: int) -> bool:
        """Whether ``calls`` more requests (at the mean cost so far, for a cost limit) fit in this
        budget and the enclosing ones, held-back calls aside."""
        with self._lock:
            if self.max_calls is not None and self.calls + calls > self.max_calls:
                return False
            mean = self.cost / self.calls if self.calls else 0.0
            if self.max_cost is not None and self.cost + calls * mean > self.max_cost:
                return False
        return self.parent is None or self.parent.affords(calls)

    def release_hold(self) -> None:
        """Let the calls held back for the end spend what is left."""
        with self._lock:
            self.held_calls = 0

    @property
    def exhausted(self) -> bool:
        over_calls = self.max_calls is not None and self.calls >= self.max_calls
        held_cost = self.held_calls * self.cost / self.calls if self.calls else 0.0
        over_cost = self.max_cost is not None and self.cost + held_cost >= self.max_cost
        return over_calls or over_cost

    def describe(self) -> str:
        parts = []
        if self.max_calls is not None:
            parts.append(f"{self.calls}/{self.max_calls} LM calls")
        if self.max_cost is not None:
            parts.append(f"${self.cost:.4f}/${self.max_cost:.4f}")
        return "budget spent: " + ", ".join(parts)
