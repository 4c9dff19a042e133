"""``Evaluate``: run a program over examples in a thread pool and score it with a metric."""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, SupportsFloat, cast

from ..errors import BudgetExceeded, LMError, MiproError
from ..example import Example, Prediction
from ..program import Module
from ._threads import submit_in_context

log = logging.getLogger("pytest_mipro")
Metric = Callable[..., object]

# Provider errors (LM calls that failed after their retries) an evaluation tolerates: a
# fraction of the examples run so far, counted over at least PROVIDER_ERROR_FLOOR examples,
# so the first unlucky example of a run does not stop it, but an outage stops it within a few.
PROVIDER_ERROR_RATE = 0.1
PROVIDER_ERROR_FLOOR = 20


@dataclass(frozen=True)
class ExampleResult:
    """One example's outcome. ``error`` is set when the program raised; ``parse_error`` when the reply did not parse.

    ``provider_error``: the error was an LM call that failed after its retries. Such an
    example has no score: it is left out of every mean and every locked score.
    """

    example: Example
    prediction: Prediction | None
    score: float
    error: str | None = None
    provider_error: bool = False

    @property
    def parse_error(self) -> str | None:
        return self.prediction.parse_error if self.prediction is not None else None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.parse_error is not None

    @property
    def scored(self) -> bool:
        """False for a provider error: the model never answered, so there is nothing to score."""
        return not self.provider_error


def mean_score(results: Sequence[ExampleResult]) -> float:
    """The mean score of the scored results (provider errors left out); 0.0 when none is scored."""
    scores = [r.score for r in results if r.scored]
    return sum(scores) / len(scores) if scores else 0.0


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
    def provider_errors(self) -> int:
        return sum(r.provider_error for r in self.results)

    @property
    def parse_failures(self) -> int:
        return sum(r.parse_error is not None for r in self.results)

    def worst(self, k: int = 5) -> list[ExampleResult]:
        return sorted(self.results, key=lambda r: r.score)[:k]


class TooManyErrors(MiproError):
    """More examples raised than ``max_errors`` allows."""


class ProviderErrors(MiproError):
    """Too many LM calls failed after their retries: no score from this run can be trusted.

    Not a kind of :class:`TooManyErrors`: the search stops a candidate on that one, while
    this one stops the whole target, leaving its lock entry alone and its study resumable.
    """


@dataclass
class ProviderGuard:
    """Counts examples and provider errors; raises :class:`ProviderErrors` past the tolerated rate."""

    rate: float = PROVIDER_ERROR_RATE
    floor: int = PROVIDER_ERROR_FLOOR
    seen: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, error: str | None) -> None:
        """One more example; ``error`` is its provider error's message, or None."""
        with self._lock:
            self.seen += 1
            self.errors += error is not None
            over = self.errors > self.rate * max(self.seen, self.floor)
            seen, errors = self.seen, self.errors
        if over:
            raise ProviderErrors(
                f"{errors} of {seen} examples failed with a provider error after retries "
                f"(more than {self.rate:.0%} tolerated); last: {error}. Nothing was scored or locked "
                "from this run: fix the model or provider and rerun (the study resumes)"
            )


class MetricError(MiproError):
    """The metric broke its contract: it raised, or returned something other than a bool or a
    number in [0, 1]. A bug in the test, never a score: it fails the target at once."""


def metric_score(metric: Metric, example: Example, prediction: Prediction, trace: object = None) -> float:
    """The metric's value as a float in [0, 1]; bools become 0/1. Failed parses score 0.

    Raises :class:`MetricError`, naming the example, when the metric raises (a wrong
    signature included) or returns None, NaN, a string or a number outside [0, 1].
    """
    if prediction.parse_error is not None:
        return 0.0
    name = getattr(metric, "__qualname__", None) or type(metric).__name__
    try:
        value = metric(example, prediction, trace)
    except (BudgetExceeded, LMError):
        raise  # an LM-judged metric: the budget or the provider, not the metric
    except Exception as exc:
        raise MetricError(
            f"metric {name} raised on example {example.uid}: {type(exc).__name__}: {exc} "
            "(metrics are called as metric(example, prediction, trace))"
        ) from exc
    # bool, int and float first: the runtime Protocol check costs microseconds, per example scored.
    if type(value) in (bool, int, float):
        score = float(cast("float", value))
    else:
        score = float(value) if isinstance(value, SupportsFloat) and not isinstance(value, complex) else math.nan
    if not 0.0 <= score <= 1.0:  # NaN too; a string or None is not a score
        raise MetricError(
            f"metric {name} returned {value!r} on example {example.uid}; metrics must return a bool or a number in [0, 1]"
        )
    return score


class Evaluate:
    """``Evaluate(devset=..., metric=..., num_threads=8)(program)`` -> :class:`EvaluationResult`.

    Exceptions in the program score 0 and count as errors; past ``max_errors`` the
    evaluation stops with :class:`TooManyErrors`. Provider errors are not scored, and past
    a small rate stop it (:class:`ProviderErrors`); a metric that breaks its contract stops
    it at once (:class:`MetricError`). Running out of budget propagates.
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
        self.guard = ProviderGuard()  # over every example this evaluator runs, across calls

    def __call__(self, program: Module, devset: Sequence[Example] | None = None) -> EvaluationResult:
        examples = list(self.devset if devset is None else devset)
        if self.num_threads <= 1 or len(examples) <= 1:
            results = list(self.iterate(program, examples))
        else:
            with ThreadPoolExecutor(self.num_threads) as pool:
                # Nothing stops early here: every example is queued, so no call waits for a slow one before it.
                results = list(self._counting_failures(self._in_order(program, examples, pool, None, ahead=len(examples))))
        score = mean_score(results)
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
        """``results`` passed on, until one more than ``max_errors`` of them have failed, or
        provider errors pass the tolerated rate (:class:`ProviderGuard`)."""
        failures = 0
        try:
            for result in results:
                self.guard.record(result.error if result.provider_error else None)
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
        except (BudgetExceeded, TooManyErrors, ProviderErrors, MetricError):
            raise
        except LMError as exc:
            if not exc.unavailable:  # a request the model refused: this program's failure
                return self._failed(example, exc)
            log.warning("example %s: provider error: %s", example.uid, exc)  # no answer: an error, never a score
            return ExampleResult(example, None, 0.0, error=str(exc), provider_error=True)
        except Exception as exc:  # noqa: BLE001 - a failing example scores 0, up to max_errors
            return self._failed(example, exc)

    def _failed(self, example: Example, exc: Exception) -> ExampleResult:
        log.warning("example failed: %s: %s", type(exc).__name__, exc, exc_info=exc if self.provide_traceback else None)
        return ExampleResult(example, None, 0.0, error=f"{type(exc).__name__}: {exc}")


def _passing_result_to(receive: Callable[[ExampleResult], None]) -> Callable[[Any], None]:
    """A done-callback that hands a future's result on (a failed or cancelled one has none to give)."""

    def callback(future: Any) -> None:
        if not future.cancelled() and future.exception() is None:
            receive(future.result())

    return callback
