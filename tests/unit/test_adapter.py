from __future__ import annotations

from typing import Any

import pytest

from pytest_mipro import ChainOfThought, Evaluate, Example, InputField, OutputField, ParseError, Predict, Signature
from pytest_mipro.adapters import FieldsAdapter


class Route(Signature):
    """Route the ticket."""

    ticket: str = InputField(desc="the customer's message")
    team: str = OutputField(desc="billing, technical or account")


ADAPTER = FieldsAdapter()


def test_format_puts_instructions_first_and_inputs_last() -> None:
    messages = ADAPTER.format(Route(), [], {"ticket": "charged twice"})
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("Route the ticket.")
    assert "the customer's message" in messages[0]["content"]
    assert messages[-1]["role"] == "user"
    assert "Ticket: charged twice" in messages[-1]["content"]
    assert messages[-1]["content"].rstrip().endswith("Team:")
    assert len(messages) == 2


def test_format_renders_demos_as_user_assistant_pairs() -> None:
    demos = [Example(ticket="app crashes", team="technical"), Example(ticket="refund", team="billing")]
    messages = ADAPTER.format(Route(), demos, {"ticket": "password"})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Ticket: app crashes" in messages[1]["content"]
    assert messages[2]["content"].strip() == "Team: technical"


def test_demos_missing_inputs_or_all_outputs_are_skipped() -> None:
    demos = [Example(team="billing"), Example(ticket="no label"), Example(ticket="ok", team="account")]
    messages = ADAPTER.format(Route(), demos, {"ticket": "x"})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_labeled_demo_without_reasoning_still_shows_its_answer() -> None:
    cot = ChainOfThought("question -> answer")
    messages = ADAPTER.format(cot.signature, [Example(question="1+1", answer="2")], {"question": "2+2"})
    assert messages[2]["role"] == "assistant" and "Answer: 2" in messages[2]["content"]


@pytest.mark.parametrize(
    "reply",
    ["billing", "Team: billing", "  team: billing\n", "billing\nTicket: another ticket\nTeam: technical"],
)
def test_parse_is_lenient_about_the_first_label(reply: str) -> None:
    assert ADAPTER.parse(Route(), reply) == {"team": "billing"}


def test_parse_multiple_outputs() -> None:
    sig = Signature("question -> reasoning, answer")
    reply = "Reasoning: two and two\nmake four\nAnswer: 4"
    assert ADAPTER.parse(sig, reply) == {"reasoning": "two and two\nmake four", "answer": "4"}


def test_parse_first_occurrence_of_a_field_wins() -> None:
    sig = Signature("question -> reasoning, answer")
    assert ADAPTER.parse(sig, "Reasoning: r\nAnswer: 4\nAnswer: 5")["answer"] == "4"


@pytest.mark.parametrize("reply", ["", "   ", "Reasoning: only the reasoning"])
def test_parse_raises_parse_error_with_the_reply(reply: str) -> None:
    sig = Signature("question -> reasoning, answer")
    with pytest.raises(ParseError) as info:
        ADAPTER.parse(sig, reply)
    assert info.value.reply == reply


def test_unparsable_reply_is_a_failed_prediction_not_a_crash(fake_model: Any) -> None:
    lm = fake_model("Reasoning: no answer given").lm()
    prediction = ChainOfThought("question -> answer", lm=lm)(question="q")
    assert prediction.parse_error is not None and "answer" in prediction.parse_error
    assert prediction.answer == ""
    assert prediction.completion == "Reasoning: no answer given"


def test_evaluate_scores_parse_failures_zero_and_counts_them(fake_model: Any) -> None:
    def responder(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        return "" if "bad" in messages[-1]["content"] else "Team: billing"

    lm = fake_model(responder).lm()
    devset = [Example(ticket=t, team="billing").with_inputs("ticket") for t in ("good 1", "bad 1", "good 2", "bad 2")]
    calls: list[str] = []

    def metric(example: Example, prediction: Any, trace: Any = None) -> bool:
        calls.append(example.ticket)
        return prediction.team == example.team

    result = Evaluate(devset=devset, metric=metric)(Predict(Route, lm=lm))
    assert result.score == 0.5
    assert result.parse_failures == 2 and result.errors == 0
    assert [r.score for r in result.results] == [1.0, 0.0, 1.0, 0.0]
    assert [r.failed for r in result.results] == [False, True, False, True]
    assert calls == ["good 1", "good 2"]  # the metric never sees an unparsed prediction


def test_parsing_many_replies_builds_the_label_pattern_once() -> None:
    """Every scored example parses a reply: the labels' regex is built once per signature, not per reply."""
    from pytest_mipro.adapters.fields import _label_pattern

    _label_pattern.cache_clear()
    for i in range(200):
        assert ADAPTER.parse(Route(), f"Team: team {i}") == {"team": f"team {i}"}

    info = _label_pattern.cache_info()
    assert (info.misses, info.hits) == (1, 199)
