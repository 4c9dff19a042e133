from __future__ import annotations

import pytest

from pytest_mipro import InputField, OutputField, Signature, SignatureError
from pytest_mipro.signature import ensure_signature


class Triage(Signature):
    """Route the ticket to billing, technical or account.
    Answer with one word."""

    ticket: str = InputField(desc="the customer's message")
    team: str = OutputField(desc="billing, technical or account", prefix="Route:")


def test_string_form_splits_inputs_and_outputs() -> None:
    sig = Signature("question, context -> answer")
    assert sig.input_names == ["question", "context"]
    assert sig.output_names == ["answer"]
    assert sig.spec() == "question, context -> answer"


def test_string_form_ignores_type_annotations() -> None:
    assert Signature("question: str -> answer: int").spec() == "question -> answer"


def test_default_instructions_name_the_fields() -> None:
    assert Signature("question -> answer").instructions == "Given the fields `question`, produce the fields `answer`."


def test_explicit_instructions_win() -> None:
    assert Signature("a -> b", "Do it.").instructions == "Do it."


def test_class_form_uses_docstring_descriptions_and_prefixes() -> None:
    sig = Triage()
    assert sig.instructions == "Route the ticket to billing, technical or account.\nAnswer with one word."
    assert sig.input_names == ["ticket"] and sig.output_names == ["team"]
    assert sig.input_fields[0].desc == "the customer's message"
    assert sig.output_fields[0].label == "Route:"
    assert sig.input_fields[0].label == "Ticket:"


def test_class_form_fields_are_not_left_as_class_attributes() -> None:
    assert not hasattr(Triage, "ticket")


def test_default_label_capitalises_and_spaces_underscores() -> None:
    assert Signature("user_question -> answer").input_fields[0].label == "User question:"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("question answer", "exactly one '->'"),
        ("a -> b -> c", "exactly one '->'"),
        ("question ->", "no output field"),
        ("question -> 2answer", "'2answer' is not a valid field name"),
        ("a, a -> b", "repeats the field"),
        ("a -> a", "repeats the field"),
    ],
)
def test_malformed_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        Signature(spec)


def test_class_without_fields_is_rejected() -> None:
    class Empty(Signature):
        """Nothing."""

    with pytest.raises(SignatureError, match="declares no fields"):
        Empty()


def test_class_without_outputs_is_rejected() -> None:
    class OnlyInput(Signature):
        question: str = InputField()

    with pytest.raises(SignatureError, match="no output field"):
        OnlyInput()


def test_with_instructions_returns_a_new_signature() -> None:
    sig = Signature("a -> b", "old")
    new = sig.with_instructions("new")
    assert (sig.instructions, new.instructions) == ("old", "new")
    assert new.fields == sig.fields


def test_prepend_output_puts_the_field_before_existing_outputs() -> None:
    sig = Signature("q -> a, b").prepend_output("reasoning")
    assert sig.output_names == ["reasoning", "a", "b"]
    assert sig.input_names == ["q"]


def test_with_field_changes_one_field() -> None:
    sig = Signature("q -> a").with_field("a", desc="the answer")
    assert sig.output_fields[0].desc == "the answer"
    assert sig.input_fields[0].desc == ""


def test_equality_and_hash_cover_fields_and_instructions() -> None:
    assert Signature("a -> b", "x") == Signature("a -> b", "x")
    assert hash(Signature("a -> b", "x")) == hash(Signature("a -> b", "x"))
    assert Signature("a -> b", "x") != Signature("a -> b", "y")
    assert Signature("a -> b", "x") != Signature("a -> c", "x")


def test_to_dict_is_plain_data() -> None:
    data = Triage().to_dict()
    assert data["spec"] == "ticket -> team"
    assert data["fields"][1] == {"name": "team", "kind": "output", "desc": "billing, technical or account", "prefix": "Route:"}


def test_ensure_signature_accepts_all_forms() -> None:
    assert ensure_signature("a -> b").spec() == "a -> b"
    assert ensure_signature(Triage).instructions.startswith("Route the ticket")
    assert ensure_signature(Triage, "Override.").instructions == "Override."
    sig = Signature("a -> b")
    assert ensure_signature(sig) is sig
    with pytest.raises(SignatureError, match="got int"):
        ensure_signature(3)  # type: ignore[arg-type]


def test_subclass_extends_inherited_fields() -> None:
    class TriageWithReason(Triage):
        """Route and explain."""

        reason: str = OutputField()

    sig = TriageWithReason()
    assert sig.input_names == ["ticket"]
    assert sig.output_names == ["team", "reason"]
    assert Triage().output_names == ["team"]
