"""``Evaluate``: run a program over examples in a thread pool and score it with a metric."""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, SupportsFloat, cast

from ..errors import BudgetExceeded, MiproError
from ..example import Example, Prediction
from ..program import Module
from ._threads import submit_in_context

log = logging.getLogger("pytest_mipro")
Metric = Callable[..., object]


@dataclass(frozen=True)
class ExampleResult:
    """One example's outcome. ``error`` is set when the program raised; ``parse_error`` when the reply did not parse."""

    example: Example
    prediction: Prediction | None
    score: float
    error: str | None = None

    @property
    def parse_error(self) -> str | None:
        return self.prediction.parse_error if self.prediction is not None else None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.parse_error is not None


@dataclass(frozen=True)
class EvaluationResult:
    """Score in [0, 1] (mean of per-example scores) and every example's result, in devset order."""

    score: float
    results: list[ExampleResult] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.results)

    @property
    def parse_failures(self) -> int:
        return sum(r.parse_error is not None for r in self.results)

    def worst(self, k: int = 5) -> list[ExampleResult]:
        return sorted(self.results, key=lambda r: r.score)[:k]


class TooManyErrors(MiproError):
    """More examples raised than ``max_errors`` allows."""


def metric_score(metric: Metric, example: Example, prediction: Prediction, trace: object = None) -> float:
    """The metric's value as a float in [0, 1]; bools become 0/1. Failed parses score 0."""
    if prediction.parse_error is not None:
        return 0.0
    value = metric(example, prediction, trace)
    # bool, int and float first: the runtime Protocol check costs microseconds, per example scored.
    if type(value) in (bool, int, float):
        score = float(cast("float", value))
    else:
        score = float(value) if isinstance(value, SupportsFloat) else math.nan  # a string is not a score
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"metric returned {value!r}; metrics must return a bool or a number in [0, 1]")
    return score


class Evaluate:
    """``Evaluate(devset=..., metric=..., num_threads=8)(program)`` -> :class:`EvaluationResult`.

    Exceptions in the program or metric score 0 and count as errors; past ``max_errors``
    the evaluation stops with :class:`TooManyErrors`. Running out of budget propagates.
    """

    def __init__(
        self,
        *,
        devset: Sequence[Example],
        metric: Metric,
        num_threads: int | None = None,
        max_errors: int | None = None,
        display_progress: bool = False,
        provide_traceback: bool = False,
    ) -> None:
        self.devset = list(devset)
        self.metric = metric
        self.num_threads = num_threads or 1
        self.max_errors = 10 if max_errors is None else max_errors
        self.display_progress = display_progress
        self.provide_traceback = provide_traceback

    def __call__(self, program: Module, devset: Sequence[Example] | None = None) -> EvaluationResult:
        examples = list(self.devset if devset is None else devset)
        if self.num_threads <= 1 or len(examples) <= 1:
            results = list(self.iterate(program, examples))
        else:
            with ThreadPoolExecutor(self.num_threads) as pool:
                # Nothing stops early here: every example is queued, so no call waits for a slow one before it.
                results = list(self._counting_failures(self._in_order(program, examples, pool, None, ahead=len(examples))))
        score = sum(r.score for r in results) / len(results) if results else 0.0
        if self.display_progress:
            log.info("Evaluated %d examples: score %.3f", len(results), score)
        return EvaluationResult(score, results)

    def iterate(
        self,
        program: Module,
        examples: Sequence[Example],
        pool: Executor | None = None,
        on_dropped: Callable[[ExampleResult], None] | None = None,
    ) -> Generator[ExampleResult, None, None]:
        """The results one by one, in ``examples`` order, for a caller that judges each and may stop.

        On one thread (or without ``pool``) an example is scored when the caller asks for the
        next result. With ``pool`` (``num_threads`` workers), the next ``num_threads``
        examples are always on their way: a new one starts as each result is given, so no
        round of calls waits for its slowest one. Closing the iterator early cancels the
        examples not started yet; ``on_dropped`` gets those that finish anyway.
        ``max_errors`` counts the failures given so far, in order, so threads raise
        :class:`TooManyErrors` at the same result as one thread.
        """
        return self._counting_failures(self._in_order(program, examples, pool, on_dropped, ahead=self.num_threads))

    def _counting_failures(self, results: Generator[ExampleResult, None, None]) -> Generator[ExampleResult, None, None]:
        """``results`` passed on, until one more than ``max_errors`` of them have failed."""
        failures = 0
        try:
            for result in results:
                if result.error is not None:
                    failures += 1
                    if failures > self.max_errors:
                        raise TooManyErrors(f"{failures} examples raised errors (max_errors={self.max_errors}); last: {result.error}")
                yield result
        finally:
            results.close()  # cancels what has not started

    def _in_order(
        self,
        program: Module,
        examples: Sequence[Example],
        pool: Executor | None,
        on_dropped: Callable[[ExampleResult], None] | None,
        ahead: int,
    ) -> Generator[ExampleResult, None, None]:
        """Each example's result in order, with up to ``ahead`` examples queued on ``pool`` past the last one given."""
        if self.num_threads <= 1 or pool is None:
            for example in examples:
                yield self._run_one(program, example)
            return
        window: deque[Future[ExampleResult]] = deque()
        upcoming = iter(examples)
        try:
            for example in itertools.islice(upcoming, ahead):
                window.append(submit_in_context(pool, self._run_one, program, example))
            while window:
                result = window.popleft().result()
                for example in itertools.islice(upcoming, 1):
                    window.append(submit_in_context(pool, self._run_one, program, example))
                yield result
        finally:
            for future in window:
                if not future.cancel() and on_dropped is not None:
                    future.add_done_callback(_passing_result_to(on_dropped))

    def _run_one(self, program: Module, example: Example) -> ExampleResult:
        try:
            prediction = program(**example.inputs())
            return ExampleResult(example, prediction, metric_score(self.metric, example, prediction))
        except (BudgetExceeded, TooManyErrors):
            raise
        except Exception as exc:  # noqa: BLE001 - a failing example scores 0, up to max_errors
            log.warning("example failed: %s: %s", type(exc).__name__, exc, exc_info=exc if self.provide_traceback else None)
            return ExampleResult(example, None, 0.0, error=f"{type(exc).__name__}: {exc}")


def _passing_result_to(receive: Callable[[ExampleResult], None]) -> Callable[[Any], None]:
    """A done-callback that hands a future's result on (a failed or cancelled one has none to give)."""

    def callback(future: Any) -> None:
        if not future.cancelled() and future.exception() is None:
            receive(future.result())

    return callback
