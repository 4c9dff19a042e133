"""Fingerprints: each part changes exactly when what it covers changes."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from pytest_mipro import LM, ChainOfThought, Example, Module, Predict
from pytest_mipro.fingerprint import Fingerprint, describe, diff, fingerprint

EXAMPLES = [Example(ticket=f"ticket {i}", team="billing").with_inputs("ticket") for i in range(4)]


def exact(example: Any, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.team == example.team)


def lenient(example: Any, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.team.lower() == example.team)


def weighted(example: Any, prediction: Any, trace: Any = None, *, weight: float = 1.0) -> float:
    return weight * (prediction.team == example.team)


class Scorer:
    def __call__(self, example: Any, prediction: Any, trace: Any = None) -> bool:
        return True


class TwoStep(Module):
    def __init__(self) -> None:
        self.summarize = Predict("ticket -> summary")
        self.route = Predict("summary -> team")

    def forward(self, ticket: str) -> Any:
        return self.route(summary=self.summarize(ticket=ticket).summary)


class TwoStepReversed(TwoStep):
    def forward(self, ticket: str) -> Any:
        return self.route(summary=ticket)


def make(
    program: Module | None = None,
    examples: list[Example] | None = None,
    valset: list[Example] | None = None,
    metric: Any = exact,
    model: Any = None,
) -> Fingerprint:
    return fingerprint(
        program=program or Predict("ticket -> team", instructions="Route the ticket."),
        examples=EXAMPLES if examples is None else examples,
        valset=valset,
        metric=metric,
        model=model or LM("fake/task"),
    )


def changed(new: Fingerprint) -> list[str]:
    return diff(make().parts, new)


def test_same_inputs_give_the_same_fingerprint() -> None:
    first, second = make(), make()

    assert first == second and first.hash == second.hash
    assert diff(first.parts, second) == []
    assert set(first.parts) == {"structure", "instructions", "examples", "metric", "model"}
    assert first.to_dict() == {"hash": first.hash, "parts": first.parts}


def test_instructions_and_demos_change_only_the_instructions_part() -> None:
    reworded = Predict("ticket -> team", instructions="Route the ticket!")
    with_demo = Predict("ticket -> team", instructions="Route the ticket.", demos=[{"ticket": "x", "team": "account"}])

    assert changed(make(reworded)) == ["instructions"]
    assert changed(make(with_demo)) == ["instructions"]


@pytest.mark.parametrize(
    "program",
    [
        Predict("ticket, customer -> team", instructions="Route the ticket."),
        Predict("ticket -> department", instructions="Route the ticket."),
        ChainOfThought("ticket -> team", instructions="Route the ticket."),
    ],
    ids=["input added", "output renamed", "chain of thought"],
)
def test_signature_or_predictor_type_changes_the_structure(program: Module) -> None:
    assert "structure" in changed(make(program))


def test_forward_code_of_a_custom_module_is_structure() -> None:
    assert diff(make(TwoStep()).parts, make(TwoStepReversed())) == ["structure"]


def test_field_descriptions_are_structure() -> None:
    base = Predict("ticket -> team", instructions="Route the ticket.")
    described = Predict(base.signature.with_field("team", desc="billing, technical or account"))

    assert changed(make(described)) == ["structure"]


def test_examples_part_covers_ids_order_input_keys_and_the_valset() -> None:
    assert changed(make(examples=EXAMPLES[:3])) == ["examples"]
    assert changed(make(examples=EXAMPLES[::-1])) == ["examples"]  # order decides the default validation split
    assert changed(make(examples=[ex.with_inputs("ticket", "team") for ex in EXAMPLES])) == ["examples"]
    assert changed(make(valset=EXAMPLES[:2])) == ["examples"]


def test_metric_part_follows_the_source() -> None:
    assert changed(make(metric=lenient)) == ["metric"]
    assert changed(make(metric=lambda example, prediction, trace=None: True)) == ["metric"]
    assert diff(make(metric=functools.partial(weighted, weight=0.5)).parts, make(metric=functools.partial(weighted, weight=1.0))) == [
        "metric"
    ]
    assert diff(make(metric=Scorer()).parts, make(metric=Scorer())) == []


def test_metric_without_source_falls_back_to_its_name() -> None:
    assert diff(make(metric=len).parts, make(metric=len)) == []
    assert diff(make(metric=len).parts, make(metric=abs)) == ["metric"]


def test_model_part_covers_the_model_and_reply_changing_parameters_only() -> None:
    assert changed(make(model=LM("fake/other"))) == ["model"]
    assert changed(make(model=LM("fake/task", temperature=0.7))) == ["model"]
    assert changed(make(model=LM("fake/task", api_key="sk-secret", timeout=5, num_retries=9))) == []
    assert changed(make(model="fake/task")) == ["model"]  # a bare string has no parameters to compare


def test_a_model_pinned_on_a_predictor_is_part_of_the_model() -> None:
    pinned = Predict("ticket -> team", instructions="Route the ticket.", lm=LM("fake/pinned"))

    assert changed(make(pinned)) == ["model"]


def test_missing_parts_in_an_old_fingerprint_count_as_changed() -> None:
    current = make()

    assert diff({"structure": current.parts["structure"]}, current) == ["instructions", "examples", "metric", "model"]


def test_the_combined_hash_changes_with_any_part() -> None:
    assert make(metric=lenient).hash != make().hash
    assert make(model=LM("fake/other")).hash != make().hash


def test_describe_names_the_changes_in_words() -> None:
    assert describe(["metric"]) == "the metric's source code changed"
    assert describe(["examples", "metric", "model"]) == (
        "the examples (training or validation set), the metric's source code and the task model or its parameters changed"
    )
