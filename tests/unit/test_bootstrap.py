from __future__ import annotations

import random
from typing import Any

import pytest

from pytest_mipro import Budget, ChainOfThought, Example, Module, Predict, Prediction, configure, context
from pytest_mipro.optimizer.bootstrap import Bootstrapper
from pytest_mipro.optimizer.evaluate import TooManyErrors

from ._tasks import WORDS, exact_match, fields_of, foods


def right_answer(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return WORDS[fields_of(messages[-1])["item"].split()[0]]


def make(trainset: list[Example], **kwargs: Any) -> Bootstrapper:
    kwargs.setdefault("metric", exact_match)
    kwargs.setdefault("rng", random.Random(9))
    return Bootstrapper(student=kwargs.pop("student", Predict("item -> kind")), trainset=trainset, **kwargs)


@pytest.fixture
def answers(fake_model: Any) -> Any:
    """A task model that always answers right, with the cache off so every run is a real call."""
    fake = fake_model(right_answer)
    configure(lm=fake.lm(), cache=False)
    return fake


def uids(demos: list[Example]) -> list[str]:
    return [d.uid for d in demos]


def test_set_order_zero_shot_labeled_then_unshuffled_bootstrap(answers: Any) -> None:
    train = foods(2)
    sets = make(train, max_labeled=2).demo_sets(3, max_bootstrapped=3)["self"]
    assert sets[0] == []
    assert uids(sets[1]) == uids(random.Random(0).sample(train, 2))
    assert not any(d.get("augmented") for d in sets[1])
    boot = sets[2]
    # The unshuffled pass bootstraps the first three examples the teacher (which holds the
    # two labeled demos, minus the example it answers) gets right, in trainset order.
    assert [d.item for d in boot] == [ex.item for ex in train[:3]]
    assert all(d.augmented is True for d in boot)
    assert [d.kind for d in boot] == [ex.kind for ex in train[:3]]


def test_bootstrapped_demos_hold_the_traced_inputs_and_outputs(answers: Any) -> None:
    sets = make(foods(1), max_labeled=0).demo_sets(3, max_bootstrapped=2)["self"]
    assert dict(sets[2][0]) == {"item": "apple 0", "kind": "fruit", "augmented": True}


def test_bootstrap_fills_up_with_raw_labeled_examples(answers: Any) -> None:
    train = foods(2)
    boot = make(train, max_labeled=4).bootstrap(train, 1)["self"]
    assert len(boot) == 4
    assert boot[0].get("augmented") and not any(d.get("augmented") for d in boot[1:])
    assert train[0].uid not in uids(boot[1:])  # the bootstrapped example is not repeated raw


def test_metric_threshold_is_respected(fake_model: Any) -> None:
    configure(lm=fake_model(right_answer).lm())

    def graded(example: Example, prediction: Prediction, trace: Any = None) -> float:
        return 1.0 if example.kind == "fruit" else 0.5

    strict = make(foods(2), metric=graded, max_labeled=0, metric_threshold=0.9).bootstrap(foods(2), 4)["self"]
    assert [d.kind for d in strict] == ["fruit"] * 4
    lenient = make(foods(2), metric=graded, max_labeled=0).bootstrap(foods(2), 4)["self"]
    assert [d.kind for d in lenient] == ["fruit", "fruit", "fruit", "vegetable"]  # nonzero passes without a threshold


def test_failed_teacher_runs_do_not_become_demos(fake_model: Any) -> None:
    configure(lm=fake_model(lambda m, p: "vegetable").lm())
    boot = make(foods(1), max_labeled=0).bootstrap(foods(1), 4)["self"]
    assert [d.item for d in boot] == ["carrot 0", "leek 0", "kale 0"]


def test_teacher_runs_at_most_once_per_example(answers: Any) -> None:
    train = foods(3)
    bootstrapper = make(train, max_labeled=2)
    sets = bootstrapper.demo_sets(6, max_bootstrapped=4)["self"]
    asked = [fields_of(m[-1])["item"] for m in answers.messages]
    assert len(asked) == len(set(asked)) == answers.calls == bootstrapper.teacher_calls
    assert answers.calls <= len(train)
    assert len(sets) >= 3


def test_teacher_never_sees_the_example_it_answers(answers: Any) -> None:
    train = foods(1)
    make(train, max_labeled=6).demo_sets(3, max_bootstrapped=6)
    assert answers.calls == 6
    for messages in answers.messages:
        query = fields_of(messages[-1])["item"]
        shown = [fields_of(m)["item"] for m in messages[1:-1] if m["role"] == "user"]
        assert query not in shown and len(shown) == 5


def test_labeled_only_makes_random_labeled_sets_without_teacher_calls(answers: Any) -> None:
    train = foods(2)
    sets = make(train, max_labeled=3).demo_sets(6, max_bootstrapped=0)["self"]
    assert answers.calls == 0
    assert sets[0] == []
    assert all(len(s) == 3 and not any(d.get("augmented") for d in s) for s in sets[1:])
    assert len(sets) == 6


def test_duplicate_sets_are_dropped(answers: Any) -> None:
    sets = make(foods(1)[:1], max_labeled=1).demo_sets(6, max_bootstrapped=0)["self"]
    assert [uids(s) for s in sets] == [[], [foods(1)[0].uid]]


def test_zero_shot_sets_stay_distinct(answers: Any) -> None:
    sets = make(foods(2), max_labeled=2).demo_sets(6, max_bootstrapped=2)["self"]
    keys = [tuple(uids(s)) for s in sets]
    assert len(keys) == len(set(keys))


def test_existing_demos_of_the_student_are_set_zero(answers: Any) -> None:
    student = Predict("item -> kind", demos=[{"item": "fig", "kind": "fruit"}])
    sets = make(foods(1), student=student, max_labeled=1).demo_sets(2, max_bootstrapped=1)["self"]
    assert [dict(d) for d in sets[0]] == [{"item": "fig", "kind": "fruit"}]


class Pipeline(Module):
    def __init__(self) -> None:
        self.describe = Predict("item -> description")
        self.classify = ChainOfThought("description -> kind")

    def forward(self, item: str) -> Prediction:
        return self.classify(description=self.describe(item=item).description)


def pipeline_answer(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    fields = fields_of(messages[-1])
    if "item" in fields:
        return f"a food called {fields['item']}"
    word = fields["description"].split()[3]
    return f"Reasoning: {word} is a {WORDS[word]}\nKind: {WORDS[word]}"


def test_one_successful_run_gives_demos_for_every_predictor(fake_model: Any) -> None:
    configure(lm=fake_model(pipeline_answer).lm(), cache=False)
    sets = make(foods(1), student=Pipeline(), max_labeled=0).demo_sets(3, max_bootstrapped=2)
    assert set(sets) == {"describe", "classify"}
    describe, classify = sets["describe"][2], sets["classify"][2]
    assert dict(describe[0]) == {"item": "apple 0", "description": "a food called apple 0", "augmented": True}
    assert dict(classify[0]) == {
        "description": "a food called apple 0",
        "reasoning": "apple is a fruit",
        "kind": "fruit",
        "augmented": True,
    }


def test_teacher_program_and_settings_are_used(fake_model: Any) -> None:
    student_model, teacher_model = fake_model("unknown"), fake_model(right_answer)
    configure(lm=student_model.lm(), cache=False)
    teacher = Predict("item -> kind", instructions="Teach.")
    bootstrapper = make(foods(1), teacher=teacher, max_labeled=0, teacher_settings={"lm": teacher_model.lm()})
    boot = bootstrapper.bootstrap(foods(1), 2)["self"]
    assert [d.item for d in boot] == ["apple 0", "pear 0"]
    assert student_model.calls == 0 and teacher_model.calls == 2
    assert teacher_model.messages[0][0]["content"] == "Teach."


def test_parse_failures_are_not_successes(fake_model: Any) -> None:
    configure(lm=fake_model(lambda m, p: "").lm(), cache=False)
    assert make(foods(1), max_labeled=0).bootstrap(foods(1), 2)["self"] == []


def test_teacher_errors_are_tolerated_up_to_max_errors(fake_model: Any) -> None:
    def kale_breaks(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        if "kale" in messages[-1]["content"]:
            raise ValueError("no kale")
        return right_answer(messages, params)

    configure(lm=fake_model(kale_breaks).lm(), cache=False)
    boot = make(foods(2), max_labeled=0, max_errors=2).bootstrap(foods(2), 12)["self"]
    assert len(boot) == 10
    with pytest.raises(TooManyErrors, match="bootstrapping"):
        make(foods(2), max_labeled=0, max_errors=1).bootstrap(foods(2), 12)


def test_a_spent_budget_keeps_the_sets_made_so_far(answers: Any) -> None:
    with context(budget=Budget(max_calls=2)):
        sets = make(foods(2), max_labeled=2).demo_sets(6, max_bootstrapped=4)["self"]
    assert sets[0] == [] and len(sets[1]) == 2
    assert answers.calls == 2


def private(examples: list[Example]) -> list[Example]:
    """The examples with fields outside the signature, as a support team's data would have."""
    extra = [{"customer_email": f"c{i}@example.com", "internal_note": "vip"} for i in range(len(examples))]
    return [Example({**ex, **more}).with_inputs("item") for ex, more in zip(examples, extra, strict=True)]


def test_demos_keep_only_the_signature_fields(answers: Any) -> None:
    sets = make(private(foods(2)), max_labeled=2).demo_sets(5, max_bootstrapped=2)["self"]

    demos = [demo for demo_set in sets[1:] for demo in demo_set]
    assert demos and any(d.get("augmented") for d in demos) and any(not d.get("augmented") for d in demos)
    assert all(set(d) <= {"item", "kind", "augmented"} for d in demos)
    assert all(d.input_keys == ("item",) for d in demos if d.input_keys is not None)


def test_keep_fields_keeps_the_other_fields_in_demos(answers: Any) -> None:
    sets = make(private(foods(2)), max_labeled=2, keep_fields=True).demo_sets(3, max_bootstrapped=2)["self"]

    assert all("customer_email" in d for d in sets[1])  # the labeled set: whole examples
