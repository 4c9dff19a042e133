from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pytest_mipro import Budget, BudgetExceeded, Evaluate, Example, Predict, context
from pytest_mipro.optimizer.evaluate import MetricError, ProviderErrors, TooManyErrors

from ._tasks import WORDS, exact_match, fields_of, foods


def kind_responder(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Right for fruits, wrong for vegetables; raises for kale (a program error)."""
    item = fields_of(messages[-1])["item"]
    word = item.split()[0]
    if word == "kale":
        raise ValueError("kale is not supported")
    return "fruit"


def test_score_is_the_mean_fraction_and_results_keep_devset_order(fake_model: Any) -> None:
    fake = fake_model(lambda m, p: "fruit")
    devset = foods(2)
    result = Evaluate(devset=devset, metric=exact_match)(Predict("item -> kind", lm=fake.lm()))
    assert result.score == pytest.approx(0.5)
    assert [r.example for r in result.results] == devset
    assert result.n == 12 and result.errors == 0 and result.parse_failures == 0
    assert fake.calls == 12


@pytest.mark.parametrize("threads", [1, 4])
def test_threads_give_the_same_result(fake_model: Any, threads: int) -> None:
    lm = fake_model(lambda m, p: WORDS[fields_of(m[-1])["item"].split()[0]] if "1" in m[-1]["content"] else "x").lm()
    result = Evaluate(devset=foods(3), metric=exact_match, num_threads=threads)(Predict("item -> kind", lm=lm))
    assert [r.score for r in result.results] == [0.0] * 6 + [1.0] * 6 + [0.0] * 6


def test_program_errors_score_zero_and_are_counted(fake_model: Any) -> None:
    lm = fake_model(kind_responder).lm()
    result = Evaluate(devset=foods(2), metric=exact_match, max_errors=5)(Predict("item -> kind", lm=lm))
    kale = [r for r in result.results if r.example.item.startswith("kale")]
    assert len(kale) == 2 and all(r.score == 0.0 and r.error and "kale" in r.error for r in kale)
    assert result.errors == 2
    assert result.score == pytest.approx(6 / 12)


def kale_is_down(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Right for fruits; no answer for kale: the provider fails (a 500) however often it is asked."""
    import litellm

    if fields_of(messages[-1])["item"].startswith("kale"):
        raise litellm.InternalServerError("500: overloaded", model="x", llm_provider="fake")
    return "fruit"


def test_provider_errors_are_counted_but_never_scored(fake_model: Any) -> None:
    lm = fake_model(kale_is_down).lm(num_retries=0)
    result = Evaluate(devset=foods(2), metric=exact_match)(Predict("item -> kind", lm=lm))
    kale = [r for r in result.results if r.example.item.startswith("kale")]
    assert len(kale) == 2 and all(r.provider_error and not r.scored and "500: overloaded" in (r.error or "") for r in kale)
    assert result.errors == result.provider_errors == 2
    assert result.score == pytest.approx(6 / 10)  # the kale examples got no answer: unscored, not wrong


@pytest.mark.parametrize("threads", [1, 4])
def test_provider_errors_past_a_tenth_of_the_examples_stop_the_evaluation(fake_model: Any, threads: int) -> None:
    fake = fake_model(kale_is_down)  # kale: a sixth of the examples
    evaluate = Evaluate(devset=foods(10), metric=exact_match, max_errors=1000, num_threads=threads)
    with pytest.raises(ProviderErrors, match=r"3 of 1\d examples failed with a provider error after retries .*last: fake/model-\d+: .*500"):
        evaluate(Predict("item -> kind", lm=fake.lm(num_retries=0)))


@pytest.mark.parametrize("threads", [1, 4])
def test_too_many_errors_stop_the_evaluation(fake_model: Any, threads: int) -> None:
    fake = fake_model(kind_responder)
    with pytest.raises(TooManyErrors, match=r"2 examples raised errors \(max_errors=1\); last: .*kale is not supported"):
        Evaluate(devset=foods(4), metric=exact_match, max_errors=1, num_threads=threads)(Predict("item -> kind", lm=fake.lm()))
    if threads == 1:
        assert fake.calls == 12  # up to kale 1; with threads every example was already queued


@pytest.mark.parametrize("threads", [1, 4])
def test_iterate_gives_each_result_in_order_and_counts_errors_over_all_of_them(fake_model: Any, threads: int) -> None:
    lm = fake_model(kind_responder).lm()
    evaluate, program = Evaluate(devset=foods(2), metric=exact_match, num_threads=threads, max_errors=1), Predict("item -> kind", lm=lm)
    with ThreadPoolExecutor(threads) as pool:
        given = []
        with pytest.raises(TooManyErrors, match="max_errors=1"):  # kale 0 and kale 1
            for result in evaluate.iterate(program, foods(2), pool):
                given.append(result.example)
    assert given == foods(2)[:11]  # in order, up to the second error (kale 1), on any number of threads


@pytest.mark.parametrize("value", [100, -0.5, None, float("nan"), "yes", 1j])
def test_a_metric_that_does_not_return_a_fraction_stops_the_evaluation(fake_model: Any, value: object) -> None:
    fake = fake_model(lambda m, p: "fruit")
    evaluate = Evaluate(devset=foods(1), metric=lambda ex, pred, trace=None: value, max_errors=100)
    with pytest.raises(MetricError, match=r"returned .* on example [0-9a-f]{12}; metrics must return a bool or a number in \[0, 1\]"):
        evaluate(Predict("item -> kind", lm=fake.lm()))
    assert fake.calls == 1  # loudly, at the first example


def test_a_metric_that_raises_stops_the_evaluation_with_its_message(fake_model: Any) -> None:
    def metric(example: Example, prediction: Any) -> bool:  # no trace parameter
        return True

    lm = fake_model(lambda m, p: "fruit").lm()
    with pytest.raises(MetricError, match=r"metric .*metric raised on example [0-9a-f]{12}: TypeError: .*takes 2 positional arguments"):
        Evaluate(devset=foods(1), metric=metric)(Predict("item -> kind", lm=lm))


def test_float_metrics_are_averaged(fake_model: Any) -> None:
    lm = fake_model(lambda m, p: "fruit").lm()
    result = Evaluate(devset=foods(1), metric=lambda ex, pred, trace=None: 0.25)(Predict("item -> kind", lm=lm))
    assert result.score == pytest.approx(0.25)


def test_devset_can_be_given_per_call(fake_model: Any) -> None:
    lm = fake_model(lambda m, p: "fruit").lm()
    evaluate = Evaluate(devset=foods(2), metric=exact_match)
    assert evaluate(Predict("item -> kind", lm=lm), foods(1)[:1]).n == 1


def test_budget_exhaustion_propagates(fake_model: Any) -> None:
    lm = fake_model(lambda m, p: "fruit").lm()
    with context(budget=Budget(max_calls=3)), pytest.raises(BudgetExceeded):
        Evaluate(devset=foods(1), metric=exact_match, num_threads=2)(Predict("item -> kind", lm=lm))


def test_worst_lists_the_lowest_scores_first(fake_model: Any) -> None:
    lm = fake_model(lambda m, p: "fruit").lm()
    result = Evaluate(devset=foods(1), metric=exact_match)(Predict("item -> kind", lm=lm))
    assert [r.score for r in result.worst(2)] == [0.0, 0.0]


def test_example_inputs_must_be_marked(fake_model: Any) -> None:
    lm = fake_model(lambda m, p: "fruit").lm()
    devset = [Example(item="apple", kind="fruit")]  # no with_inputs: an error for that example
    result = Evaluate(devset=devset, metric=exact_match)(Predict("item -> kind", lm=lm))
    assert result.errors == 1 and "with_inputs" in str(result.results[0].error)


def test_metric_values_other_than_bool_int_float_still_count_when_they_convert_to_float() -> None:
    """bool/int/float take a fast path; anything else with __float__ (numpy scalars) still scores, a string does not."""
    from fractions import Fraction

    from pytest_mipro.example import Prediction
    from pytest_mipro.optimizer.evaluate import MetricError, metric_score

    example, prediction = Example(q="x", a="y").with_inputs("q"), Prediction(a="y")
    for value, expected in ((True, 1.0), (0, 0.0), (0.5, 0.5), (Fraction(1, 4), 0.25)):
        assert metric_score(lambda ex, pred, trace=None, v=value: v, example, prediction) == expected
    with pytest.raises(MetricError, match="must return a bool or a number"):
        metric_score(lambda ex, pred, trace=None: "1", example, prediction)
