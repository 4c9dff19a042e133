"""The gate's judgement: threshold bounds, the paired regression check, and early stopping."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mipro.errors import LockfileError
from pytest_mipro.fingerprint import Fingerprint
from pytest_mipro.gate import GateJudge, combine, judge, locked_scores
from pytest_mipro.lockfile import ExampleScores, LockEntry, PredictorLock
from pytest_mipro.stats import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    regression_test,
    threshold_verdict,
)


def single(scores: list[float]) -> list[list[float]]:
    return [[s] for s in scores]


def test_threshold_verdicts_follow_the_bounds() -> None:
    passing = judge(single([1.0] * 9), threshold=0.75, before=None, min_drop=0.02)
    unsure = judge(single([1.0] * 9), threshold=0.9, before=None, min_drop=0.02)
    failing = judge(single([1.0] * 7 + [0.0] * 2), threshold=0.95, before=None, min_drop=0.02)

    assert (passing.verdict, unsure.verdict, failing.verdict) == (PASS, INCONCLUSIVE, FAIL)
    assert (round(unsure.lower, 3), unsure.upper) == (0.769, 1.0)
    assert unsure.needed_n is not None and unsure.needed_n > 9
    assert failing.upper < 0.95 <= passing.lower + 0.2


def test_the_readme_worked_example() -> None:
    result = judge(single([1.0] * 42 + [0.0] * 8), threshold=0.75, before=None, min_drop=0.02)

    assert result.verdict == INCONCLUSIVE
    assert (round(result.lower, 3), round(result.upper, 3)) == (0.738, 0.907)
    assert result.needed_n == 63


def test_without_a_threshold_only_a_regression_fails() -> None:
    before = [1.0] * 40
    noise = judge(single([1.0] * 38 + [0.0] * 2), threshold=None, before=before, min_drop=0.02)
    real = judge(single([1.0] * 30 + [0.0] * 10), threshold=None, before=before, min_drop=0.02)

    assert noise.verdict == PASS and noise.regression is not None and not noise.regression.significant
    assert real.verdict == FAIL and real.regressed and real.regression is not None and real.regression.method == "mcnemar"
    assert real.threshold is None and real.needed_n is None and 0.0 < real.lower < real.upper < 1.0


def test_a_significant_drop_smaller_than_min_drop_passes() -> None:
    before, after = [1.0] * 1000, [1.0] * 990 + [0.0] * 10

    assert judge(single(after), threshold=None, before=before, min_drop=0.02).verdict == PASS
    assert judge(single(after), threshold=None, before=before, min_drop=0.005).verdict == FAIL


def test_a_regression_fails_even_when_the_threshold_passes() -> None:
    before, after = [1.0] * 200, [1.0] * 170 + [0.0] * 30

    result = judge(single(after), threshold=0.5, before=before, min_drop=0.02)

    assert result.threshold_verdict == PASS and result.regressed and result.verdict == FAIL


def test_combine() -> None:
    regressed = regression_test([1.0] * 20, [0.0] * 20)
    fine = regression_test([1.0] * 20, [1.0] * 20)

    assert combine(None, None) == PASS
    assert combine(INCONCLUSIVE, fine) == INCONCLUSIVE
    assert combine(PASS, regressed) == FAIL and combine(INCONCLUSIVE, regressed) == FAIL
    assert combine(FAIL, fine) == FAIL


def test_repeated_samples_use_the_clustered_bounds_and_are_never_curtailed() -> None:
    after = [[1.0, 1.0, 0.0]] * 10 + [[1.0, 1.0, 1.0]] * 30
    judge_ = GateJudge(len(after), threshold=0.5, before=None, min_drop=0.02)
    for i, samples in enumerate(after[:30]):
        judge_.add(i, samples)

    assert judge_.settled() is None
    assert judge(after, threshold=0.5, before=None, min_drop=0.02) == _full(after, threshold=0.5)
    assert judge(after, threshold=0.5, before=None, min_drop=0.02).score == threshold_verdict(after, 0.5).score


def test_graded_scores_are_never_curtailed() -> None:
    judge_ = GateJudge(100, threshold=0.1, before=None, min_drop=0.02)
    for i in range(90):
        judge_.add(i, [0.9])

    assert not judge_.curtailable() and judge_.settled() is None


def test_nothing_to_judge_is_never_curtailed() -> None:
    judge_ = GateJudge(10, threshold=None, before=None, min_drop=0.02)
    judge_.add(0, [1.0])

    assert judge_.settled() is None
    with pytest.raises(ValueError, match="not settled"):
        judge_.final()


def test_a_clear_failure_settles_early_with_bounds_that_hold() -> None:
    judge_ = GateJudge(100, threshold=0.9, before=None, min_drop=0.02)
    for i in range(20):
        judge_.add(i, [0.0])

    early = judge_.settled()

    assert early is not None and early.verdict == FAIL and early.curtailed and early.evaluated == 20
    assert early.upper < 0.9 and early.score == 0.0


def test_locked_scores_need_one_score_per_id() -> None:
    def entry(results: ExampleScores) -> LockEntry:
        return LockEntry("t", {"self": PredictorLock("a -> b", "Do it.")}, 1.0, Fingerprint({}), results=results)

    assert locked_scores(entry(ExampleScores(("a", "b"), (1.0, 0.5))), 2) == [1.0, 0.5]
    assert locked_scores(entry(ExampleScores()), 2) is None
    with pytest.raises(LockfileError, match="one score in \\[0, 1\\] per example id"):
        locked_scores(entry(ExampleScores(("a", "b"), (1.0, 0.5))), 3)  # the gate has another number of examples
    # A file's broken results are refused when it is read.
    for broken in ({"ids": ["a", "b"], "scores": [1.0]}, {"ids": ["a"], "scores": ["x"]}, {"ids": ["a"], "scores": [2.0]}):
        with pytest.raises(ValueError, match="one score in \\[0, 1\\] per example id"):
            ExampleScores.from_dict(broken)


def _full(after: list[list[float]], **kwargs: object) -> object:
    judge_ = GateJudge(len(after), before=None, min_drop=0.02, **kwargs)  # type: ignore[arg-type]
    for i, samples in enumerate(after):
        judge_.add(i, samples)
    return judge_.final()


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    n=st.integers(min_value=1, max_value=80),
    threshold=st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)),
    paired=st.booleans(),
    min_drop=st.sampled_from([0.0, 0.02, 0.1, 1.0]),
    chunk=st.integers(min_value=1, max_value=12),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_stopping_early_never_changes_the_verdict(
    data: st.DataObject, n: int, threshold: float | None, paired: bool, min_drop: float, chunk: int, seed: int
) -> None:
    binary = st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)
    after = data.draw(binary)
    before = data.draw(binary) if paired else None
    full = judge(single(after), threshold=threshold, before=before, min_drop=min_drop)
    order = list(range(n))
    random.Random(seed).shuffle(order)

    judge_ = GateJudge(n, threshold=threshold, before=before, min_drop=min_drop)
    for start in range(0, n, chunk):
        for index in order[start : start + chunk]:
            judge_.add(index, [after[index]])
        early = judge_.settled()
        if early is not None and judge_.evaluated < n:
            break
    result = judge_.final()

    assert result.verdict == full.verdict
    assert result.lower <= full.lower + 1e-12 and result.upper >= full.upper - 1e-12
    if result.curtailed:
        assert threshold is not None or before is not None
        assert result.evaluated < n


def test_an_unchanged_gate_rerun_makes_no_lm_call_after_an_early_stop(fake_model: Callable[..., Any]) -> None:
    """The first run stops once the verdict is settled; reruns score what is cached and stop
    at the first chunk that would need a call, instead of paying for one more chunk each time."""
    from pytest_mipro import Example, Predict
    from pytest_mipro.declaration import Target
    from pytest_mipro.gate import GatePolicy, run_gate
    from pytest_mipro.scoring import RunConfig, target_fingerprint

    model = fake_model("Answer: yes")
    examples = [Example(q=f"question {i}", answer="yes").with_inputs("q") for i in range(80)]
    target = Target(name="t", program=Predict("q -> answer"), examples=examples, metric=lambda ex, pred, trace=None: pred.answer == "yes")
    entry = LockEntry(
        name="t",
        predictors={"self": PredictorLock("q -> answer", "", [])},
        score=1.0,
        fingerprint=target_fingerprint(target, model.lm()),
    )  # no per-example results: the threshold alone decides, and it settles early
    run = RunConfig(task_lm=model.lm())

    first = run_gate(target, entry, run, GatePolicy(threshold=0.5))
    calls = model.calls
    again = [run_gate(target, entry, run, GatePolicy(threshold=0.5)) for _ in range(3)]

    assert first.judgement.verdict == PASS and first.judgement.evaluated < 80  # stopped early
    assert calls == first.judgement.evaluated and model.calls == calls
    assert all(r.judgement.verdict == PASS and r.evaluation.calls == 0 for r in again)
    assert all(r.judgement.evaluated == first.judgement.evaluated for r in again)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    n=st.integers(min_value=1, max_value=60),
    threshold=st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)),
    paired=st.booleans(),
    min_drop=st.sampled_from([0.0, 0.02, 0.1]),
)
def test_the_completions_judged_from_counts_equal_those_judged_from_the_lists(
    data: st.DataObject, n: int, threshold: float | None, paired: bool, min_drop: float
) -> None:
    binary = st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)
    after, before = data.draw(binary), data.draw(binary) if paired else None
    scored = data.draw(st.sets(st.integers(min_value=0, max_value=n - 1)))
    judge_ = GateJudge(n, threshold=threshold, before=before, min_drop=min_drop)
    for index in scored:
        judge_.add(index, [after[index]])

    for fill in (0.0, 1.0):
        completed = [[after[i]] if i in scored else [fill] for i in range(n)]
        assert judge_._completed(fill) == judge(completed, threshold=threshold, before=before, min_drop=min_drop)


def test_asking_whether_the_verdict_is_settled_does_not_rejudge_every_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate asks after every chunk: with one 0/1 score per example the answer comes from
    running counts, not from judging all N examples again (which made a gate O(N^2/chunk))."""
    import pytest_mipro.gate as gate_module
    import pytest_mipro.stats as stats_module

    calls = {"judge": 0, "as_example": 0}
    real_judge, real_as_example = gate_module.judge, stats_module._as_example

    def counting_judge(*args: Any, **kwargs: Any) -> Any:
        calls["judge"] += 1
        return real_judge(*args, **kwargs)

    def counting_as_example(*args: Any) -> Any:
        calls["as_example"] += 1
        return real_as_example(*args)

    monkeypatch.setattr(gate_module, "judge", counting_judge)
    monkeypatch.setattr(stats_module, "_as_example", counting_as_example)
    n = 1000
    judge_ = GateJudge(n, threshold=0.5, before=[1.0] * n, min_drop=0.02)
    for i in range(n - 1):
        judge_.add(i, [1.0])
        judge_.settled()

    assert calls == {"judge": 0, "as_example": 0}
    judge_.add(n - 1, [1.0])
    assert judge_.settled() is not None and calls["judge"] == 1  # complete: judged once, from the lists
