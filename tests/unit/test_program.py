from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_mipro import ChainOfThought, ConfigError, Example, Module, Predict, Prediction, configure, context
from pytest_mipro.program import TraceStep


class TwoStep(Module):
    def __init__(self) -> None:
        self.summarize = Predict("text -> summary")
        self.classify = ChainOfThought("summary -> label")

    def forward(self, text: str) -> Prediction:
        summary = self.summarize(text=text).summary
        return self.classify(summary=summary)


class Nested(Module):
    def __init__(self) -> None:
        self.first = Predict("a -> b")
        self.inner = TwoStep()
        self.steps = [Predict("b -> c"), Predict("c -> d")]
        self.by_name = {"x": Predict("d -> e")}
        self.alias = self.first  # the same predictor twice is listed once
        self._private = Predict("z -> y")


def test_predict_alone_is_named_self() -> None:
    predictor = Predict("a -> b")
    assert predictor.named_predictors() == [("self", predictor)]


def test_named_predictors_are_dotted_and_in_attribute_order() -> None:
    names = [name for name, _ in Nested().named_predictors()]
    assert names == ["first", "inner.summarize", "inner.classify", "steps[0]", "steps[1]", "by_name['x']"]


def test_named_predictors_are_stable_across_instances_and_copies() -> None:
    program = Nested()
    expected = [name for name, _ in program.named_predictors()]
    assert [name for name, _ in Nested().named_predictors()] == expected
    assert [name for name, _ in program.deepcopy().named_predictors()] == expected


def test_deepcopy_is_independent_but_shares_the_lm(fake_model: Any) -> None:
    lm = fake_model("Label: x").lm()
    program = TwoStep()
    program.classify.lm = lm
    program.summarize.demos = [Example(text="t", summary="s")]
    clone = program.deepcopy()
    clone.summarize.instructions = "changed"
    clone.summarize.demos.append(Example(text="t2", summary="s2"))
    assert program.summarize.instructions != "changed"
    assert len(program.summarize.demos) == 1
    assert clone.classify.lm is lm
    assert clone.summarize is not program.summarize


def test_reset_copy_drops_demos_only() -> None:
    program = TwoStep()
    program.summarize.demos = [Example(text="t", summary="s")]
    program.summarize.instructions = "Summarize."
    fresh = program.reset_copy()
    assert fresh.summarize.demos == [] and fresh.summarize.instructions == "Summarize."
    assert len(program.summarize.demos) == 1


def test_chain_of_thought_adds_reasoning_first() -> None:
    cot = ChainOfThought("question -> answer", instructions="Answer it.")
    assert cot.signature.output_names == ["reasoning", "answer"]
    assert cot.instructions == "Answer it."


def _optimized_two_step() -> TwoStep:
    program = TwoStep()
    program.summarize.instructions = "Summarize in one line: äöü"
    program.summarize.demos = [Example(text="long text", summary="short", augmented=True)]
    program.classify.instructions = "Label the summary."
    program.classify.demos = [Example(summary="short", reasoning="because", label="ok", score=0.5)]
    return program


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_save_load_roundtrip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"program{suffix}"
    _optimized_two_step().save(path)
    loaded = TwoStep().load(path)
    assert loaded.dump_state() == _optimized_two_step().dump_state()
    assert loaded.summarize.demos[0].augmented is True
    assert loaded.classify.demos[0].score == 0.5


def test_saved_files_are_plain_data(tmp_path: Path) -> None:
    program = _optimized_two_step()
    program.save(tmp_path / "p.json")
    program.save(tmp_path / "p.yaml")
    as_json = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    as_yaml = yaml.safe_load((tmp_path / "p.yaml").read_text(encoding="utf-8"))
    assert as_json == as_yaml
    assert as_json["summarize"] == {
        "signature": "text -> summary",
        "instructions": "Summarize in one line: äöü",
        "demos": [{"text": "long text", "summary": "short", "augmented": True}],
    }


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.json", "{not json", "broken.json"),
        ("broken.yaml", "summarize: [unclosed\n", "broken.yaml"),
        ("list.json", "[1, 2]", r"list\.json: expected a mapping"),
        ("unknown.json", '{"nope": {"instructions": "x"}}', r"unknown\.json: predictor\(s\) \['nope'\]"),
        ("noinstr.json", '{"summarize": {"demos": []}}', r"noinstr\.json: summarize: expected a mapping"),
        ("baddemos.json", '{"summarize": {"instructions": "x", "demos": [1]}}', r"baddemos\.json: summarize: 'demos'"),
    ],
)
def test_load_errors_name_the_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TwoStep().load(path)


def test_load_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises((ConfigError, FileNotFoundError), match="missing.json"):
        TwoStep().load(tmp_path / "missing.json")


def test_load_state_only_touches_named_predictors() -> None:
    program = TwoStep()
    program.load_state({"classify": {"instructions": "New.", "demos": []}})
    assert program.classify.instructions == "New."
    assert program.summarize.instructions == TwoStep().summarize.instructions


def _two_step_responder(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    query = messages[-1]["content"]
    if query.startswith("Text:"):
        return "a short summary"
    return "Reasoning: it is short\nLabel: brief"


def test_tracing_records_each_predictor_call_in_order(fake_model: Any) -> None:
    configure(lm=fake_model(_two_step_responder).lm())
    program = TwoStep()
    trace: list[TraceStep] = []
    with context(trace=trace):
        result = program(text="a long text")
    assert result.label == "brief"
    assert [step.predictor for step in trace] == [program.summarize, program.classify]
    assert trace[0].inputs == {"text": "a long text"}
    assert dict(trace[0].outputs) == {"summary": "a short summary"}
    assert trace[1].inputs == {"summary": "a short summary"}
    assert dict(trace[1].outputs) == {"reasoning": "it is short", "label": "brief"}


def test_no_trace_is_recorded_outside_a_trace_context(fake_model: Any) -> None:
    configure(lm=fake_model(_two_step_responder).lm())
    trace: list[TraceStep] = []
    TwoStep()(text="x")
    assert trace == []


def test_predict_uses_its_own_lm_over_the_configured_one(fake_model: Any) -> None:
    configured, pinned = fake_model("Answer: configured"), fake_model("Answer: pinned")
    configure(lm=configured.lm())
    assert Predict("question -> answer", lm=pinned.lm())(question="q").answer == "pinned"
    assert Predict("question -> answer")(question="q").answer == "configured"


def test_missing_input_is_a_type_error_naming_the_fields() -> None:
    with pytest.raises(TypeError, match=r"missing input field\(s\) \['question'\]"):
        Predict("question -> answer")(query="q")


def test_forward_must_be_defined() -> None:
    class NoForward(Module):
        pass

    with pytest.raises(NotImplementedError, match="NoForward must define forward"):
        NoForward()()
