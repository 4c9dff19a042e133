"""The CI gate's verdict on a locked program: bounds, a paired regression check, early stopping.

Library code (no pytest). A plain ``pytest`` run re-scores the locked program on the
examples its lock entry was scored on and asks up to two questions:

- **threshold** (when one is set): do one-sided 95% bounds ``[L, U]`` on the true score
  clear it? FAIL when ``U < threshold``, PASS when ``L >= threshold``, else INCONCLUSIVE.
  Wilson bounds for one 0/1 score per example, example-clustered ones otherwise
  (:func:`stats.threshold_verdict`).
- **regression** (when the entry locks per-example scores): is today's score lower than the
  locked one on the same examples, significantly (one-sided p < 0.05, exact McNemar for 0/1
  scores, else a paired t-test) *and* by more than ``min_drop``?

The verdict is FAIL when either part fails, else the threshold's verdict (PASS without a
threshold).

Early stopping (curtailment): examples are scored in a seeded random order, a chunk at a
time. With one 0/1 score per example, the verdict is monotone in every unknown score: a
success can only raise the Wilson bounds, and can only lower McNemar's discordant count
``b`` or raise ``c`` (a smaller drop, a larger p-value). So if the worst completion (every
unscored example fails) and the best one (every one passes) give the same verdict, every
completion does, and the rest need not be scored. Graded scores and repeated samples are
always scored in full: the clustered bounds and the t-test are not monotone in one score.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from . import config, plain
from .declaration import Target
from .errors import BudgetExceeded, LockfileError
from .example import Example
from .lm.budget import Budget
from .lockfile import Counts, LockEntry
from .optimizer.evaluate import ExampleResult, ProviderErrors
from .plain import Plain
from .program import Module
from .scoring import Evaluation, RunConfig, evaluate_program, gate_examples, locked_program
from .stats import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    RegressionResult,
    Verdict,
    binary_threshold_verdict,
    mcnemar_regression,
    regression_test,
    threshold_verdict,
)

CONFIDENCE = 0.95  # one-sided, for the threshold bounds
ALPHA = 0.05  # one-sided significance of the regression check
MIN_CHUNK = 8  # examples scored between two curtailment checks (at least)


@dataclass(frozen=True)
class GatePolicy:
    """What the gate checks: the threshold (None: none), the regression margin, samples per example."""

    threshold: float | None
    threshold_source: str = "marker"
    min_drop: float = 0.02
    repeats: int = 1
    seed: int = 0  # orders the examples, so an early stop skips a random subset


@dataclass(frozen=True)
class Judgement:
    """The gate's verdict with its evidence.

    ``lower``/``upper`` are one-sided 95% bounds on the true score (computed with or without
    a threshold); ``needed_n`` is about how many examples at this score and spread would
    move the bounds off the threshold. When the run stopped early (``curtailed``), the
    bounds are the widest any completion could give, and ``regression`` is the check on the
    completion least favourable to the verdict: ``regression_bound`` is ``"worst"`` (every
    unscored example failing) or ``"best"`` (every one passing).
    """

    verdict: Verdict
    score: float
    evaluated: int
    total: int
    threshold: float | None
    lower: float
    upper: float
    needed_n: int | None = None
    regression: RegressionResult | None = None
    curtailed: bool = False
    regression_bound: str | None = None

    @property
    def regressed(self) -> bool:
        return self.regression is not None and self.regression.regressed

    @property
    def bounds(self) -> tuple[float, float]:
        return self.lower, self.upper

    @property
    def threshold_verdict(self) -> Verdict | None:
        """The threshold check's own verdict (None without a threshold)."""
        if self.threshold is None:
            return None
        if self.upper < self.threshold:
            return FAIL
        return PASS if self.lower >= self.threshold else INCONCLUSIVE

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Plain) -> Judgement:
        return plain.load(cls, data)


def combine(threshold: Verdict | None, regression: RegressionResult | None) -> Verdict:
    """FAIL when either check fails, else the threshold's verdict (PASS without one)."""
    if threshold == FAIL or (regression is not None and regression.regressed):
        return FAIL
    return threshold or PASS


def judge(
    after: Sequence[Sequence[float]],
    *,
    threshold: float | None,
    before: Sequence[float] | None,
    min_drop: float,
) -> Judgement:
    """The verdict on complete data: ``after`` holds each example's samples, ``before`` its locked score."""
    bounds = threshold_verdict([list(s) for s in after], 0.0 if threshold is None else threshold, CONFIDENCE)
    means = [math.fsum(samples) / len(samples) for samples in after]
    regression = regression_test(list(before), means, min_drop, ALPHA) if before is not None else None
    verdict = combine(None if threshold is None else bounds.verdict, regression)
    needed = bounds.needed_n if threshold is not None else None
    n = len(after)
    return Judgement(verdict, bounds.score, n, n, threshold, bounds.lower, bounds.upper, needed, regression)


def score_bounds(scores: Sequence[float]) -> tuple[float, float]:
    """One-sided 95% bounds on the mean of one score per example (Wilson for 0/1 scores)."""
    result = threshold_verdict(list(scores), 0.0, CONFIDENCE)
    return result.lower, result.upper


class GateJudge:
    """Collects per-example scores in any order and says when the verdict is settled.

    While every example has one 0/1 score, it keeps running counts (successes, and the
    discordant pairs against the locked scores), so :meth:`settled` judges the two extreme
    completions from the counts, in constant time, however many examples there are.
    """

    def __init__(self, total: int, *, threshold: float | None, before: Sequence[float] | None, min_drop: float) -> None:
        if before is not None and len(before) != total:
            raise ValueError(f"{len(before)} locked scores for {total} examples")
        self.total = total
        self.threshold = threshold
        self.before = None if before is None else [float(s) for s in before]
        self.min_drop = min_drop
        self.scores: dict[int, list[float]] = {}
        self._binary_before = self.before is None or _binary(self.before)
        self._one_binary = True  # every example scored so far has one 0/1 score
        self._successes = 0  # scored examples with score 1 (while _one_binary)
        self._b = self._c = 0  # scored: locked 1 now 0, locked 0 now 1 (binary locked scores)
        self._before_successes = 0 if self.before is None else sum(s == 1.0 for s in self.before)
        self._unscored_before_successes = self._before_successes  # locked 1s among the unscored

    def add(self, index: int, samples: Sequence[float]) -> None:
        if not 0 <= index < self.total or index in self.scores:
            raise ValueError(f"example {index} is out of range or already scored")
        values = self.scores[index] = [float(s) for s in samples]
        if not self._one_binary:
            return
        if len(values) != 1 or values[0] not in (0.0, 1.0):
            self._one_binary = False
            return
        after = values[0] == 1.0
        self._successes += after
        if self.before is not None and self._binary_before:
            before = self.before[index] == 1.0
            self._unscored_before_successes -= before
            self._b += before and not after
            self._c += after and not before

    @property
    def evaluated(self) -> int:
        return len(self.scores)

    def curtailable(self) -> bool:
        """One 0/1 score per example so far (and 0/1 locked scores), and something to judge."""
        if self.threshold is None and self.before is None:
            return False  # nothing can fail: score everything, the test may assert on the score
        return self._one_binary and self._binary_before

    def settled(self) -> Judgement | None:
        """The verdict when every completion of the unscored examples gives the same one."""
        if self.evaluated == self.total:
            return self.final()
        if not self.curtailable():
            return None
        worst, best = self._completed(0.0), self._completed(1.0)
        if worst.verdict != best.verdict:
            return None
        # Report evidence that holds however the rest would have scored: the widest bounds,
        # and the regression check on the completion least favourable to the verdict.
        strict = best if worst.verdict == FAIL else worst
        bound = "best" if strict is best else "worst"
        return Judgement(
            verdict=worst.verdict,
            score=self._successes / self.evaluated if self.evaluated else 0.0,
            evaluated=self.evaluated,
            total=self.total,
            threshold=self.threshold,
            lower=worst.lower,
            upper=best.upper,
            regression=strict.regression,
            curtailed=True,
            regression_bound=bound if self.before is not None else None,
        )

    def final(self) -> Judgement:
        """The verdict on everything scored: complete data, or a settled early stop."""
        if self.evaluated < self.total:
            early = self.settled()
            if early is None:
                raise ValueError(f"only {self.evaluated} of {self.total} examples scored and the verdict is not settled")
            return early
        after = [self.scores[i] for i in range(self.total)]
        return judge(after, threshold=self.threshold, before=self.before, min_drop=self.min_drop)

    def _completed(self, fill: float) -> Judgement:
        """:func:`judge` of the scores so far with every unscored example scoring ``fill`` (0 or
        1), from the counts (only while :meth:`curtailable`)."""
        unscored = self.total - self.evaluated
        successes = self._successes + (unscored if fill else 0)
        bounds = binary_threshold_verdict(successes, self.total, 0.0 if self.threshold is None else self.threshold, CONFIDENCE)
        regression = None
        if self.before is not None:
            pending = self._unscored_before_successes  # locked 1s among the unscored
            b = self._b + (0 if fill else pending)
            c = self._c + (unscored - pending if fill else 0)
            regression = mcnemar_regression(self.total, self._before_successes, successes, b, c, self.min_drop, ALPHA)
        verdict = combine(None if self.threshold is None else bounds.verdict, regression)
        needed = bounds.needed_n if self.threshold is not None else None
        return Judgement(verdict, bounds.score, self.total, self.total, self.threshold, bounds.lower, bounds.upper, needed, regression)


def _binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


# ---------------------------------------------------------------- running the gate


@dataclass(frozen=True)
class GateStats:
    """How a gate run went beyond its verdict: samples per example, what stopping early saved."""

    repeats: int = 1
    min_drop: float = 0.02
    pass_rate: float | None = None  # with repeats: fraction of all samples with full marks
    pass_all: float | None = None  # with repeats: fraction of examples whose every sample has full marks
    saved_calls: int = 0  # estimated: unscored examples times the LM calls per scored example

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Plain) -> GateStats:
        return plain.load(cls, data)


@dataclass(frozen=True)
class GateRun:
    """A gate run: the judgement, what was evaluated, and how it went."""

    judgement: Judgement
    evaluation: Evaluation  # every sample scored, in the order they were scored
    stats: GateStats

    @property
    def verdict(self) -> Verdict:
        return self.judgement.verdict


def locked_scores(entry: LockEntry, count: int) -> list[float] | None:
    """The entry's per-example scores, aligned with :func:`scoring.gate_examples`; None without ids."""
    results = entry.results
    if not results.ids:
        return None
    if len(results.ids) != count:
        raise LockfileError(
            f"lock entry {entry.name!r}: 'results' needs one score in [0, 1] per example id; "
            "run `pytest --mipro-optimize` to rewrite it"
        )
    return list(results.scores)


def chunk_size(threads: int | None) -> int:
    """Examples per chunk: enough to keep every thread busy between two checks."""
    return max(MIN_CHUNK, 2 * (threads or 1))


def run_gate(target: Target, entry: LockEntry, run: RunConfig, policy: GatePolicy) -> GateRun:
    """Score the locked program on the entry's gate examples and judge it.

    Stops early once the verdict is settled, but only while scoring costs LM calls: chunks
    answered from the cache are free, so after the verdict is settled the next chunks are
    scored from the cache only, up to the first one that would need a call. (Scoring that
    chunk anyway would make every rerun of an unchanged gate pay for one more chunk.)
    """
    examples = gate_examples(target, entry)
    before = locked_scores(entry, len(examples))
    judge_ = GateJudge(len(examples), threshold=policy.threshold, before=before, min_drop=policy.min_drop)
    program = locked_program(target, entry)
    order = list(range(len(examples)))
    random.Random(f"{policy.seed}:{target.name}").shuffle(order)
    spent = Counts()
    per_example: dict[int, list[ExampleResult]] = {}
    size = chunk_size(run.threads)
    unanswered: list[ExampleResult] = []  # provider errors: not scores, so the judge never sees them
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        settled = judge_.settled() is not None
        try:
            with config.context(budget=_cache_only()) if settled else contextlib.nullcontext():
                samples, chunk_counts = _score_chunk(target, program, [examples[i] for i in chunk], run, policy.repeats)
        except BudgetExceeded:
            if not settled:
                raise
            break
        spent += chunk_counts
        for index, results in zip(chunk, samples, strict=True):
            per_example[index] = results
            failed = [r for r in results if r.provider_error]
            unanswered += failed
            if not failed:
                judge_.add(index, [r.score for r in results])
        if chunk_counts.calls and judge_.evaluated < judge_.total and judge_.settled() is not None:
            break
    if unanswered and judge_.settled() is None:
        raise ProviderErrors(
            f"mipro target {target.name!r}: {len(unanswered)} gate example(s) got no answer from the model "
            f"(provider errors after retries) and the verdict depends on them; last: {unanswered[-1].error}. "
            "Rerun when the provider is back"
        )
    judgement = judge_.final()
    scored = list(per_example.values())
    evaluation = Evaluation(judgement.score, tuple(r for results in scored for r in results), spent)
    return GateRun(judgement, evaluation, _stats(policy, scored, judgement, evaluation.calls))


def _cache_only() -> Budget:
    """A budget that refuses every uncached call (cached replies are never refused)."""
    return Budget(max_calls=1, calls=1)


def _stats(policy: GatePolicy, scored: list[list[ExampleResult]], judgement: Judgement, calls: int) -> GateStats:
    per_call = calls / judgement.evaluated if judgement.evaluated else 0.0
    saved = round(per_call * (judgement.total - judgement.evaluated))
    if policy.repeats <= 1:
        return GateStats(policy.repeats, policy.min_drop, saved_calls=saved)
    samples = [r.score for results in scored for r in results]
    pass_rate = sum(s == 1.0 for s in samples) / len(samples) if samples else 0.0
    pass_all = sum(all(r.score == 1.0 for r in results) for results in scored) / len(scored) if scored else 0.0
    return GateStats(policy.repeats, policy.min_drop, round(pass_rate, 6), round(pass_all, 6), saved)


def _score_chunk(
    target: Target, program: Module, examples: list[Example], run: RunConfig, repeats: int
) -> tuple[list[list[ExampleResult]], Counts]:
    """Each example's results, one per sample, and what scoring them spent. Sample 0 shares
    its cache entries with the optimization run; samples 1.. carry a sample id in the cache
    key (and as the provider's seed at temperature > 0), so each is a fresh reply that a
    rerun replays from the cache."""
    per_example: list[list[ExampleResult]] = [[] for _ in examples]
    spent = Counts()
    for sample in range(repeats):
        with config.context(sample_id=sample or None):
            evaluation = evaluate_program(target, program, examples, run)
        spent += evaluation.counts
        for results, result in zip(per_example, evaluation.results, strict=True):
            results.append(result)
    return per_example, spent
