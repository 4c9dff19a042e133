from __future__ import annotations

import copy

import pytest

from pytest_mipro import Example, Prediction


def test_dict_and_attribute_access() -> None:
    ex = Example(question="2+2?", answer="4")
    assert ex["question"] == "2+2?" and ex.answer == "4"
    assert dict(ex) == {"question": "2+2?", "answer": "4"}
    assert len(ex) == 2 and list(ex) == ["question", "answer"]


def test_missing_attribute_names_the_fields() -> None:
    with pytest.raises(AttributeError, match=r"no field 'answr'.*\['answer', 'question'\]"):
        Example(question="q", answer="a").answr  # noqa: B018


def test_with_inputs_splits_inputs_and_labels() -> None:
    ex = Example(question="q", context="c", answer="a").with_inputs("question", "context")
    assert dict(ex.inputs()) == {"question": "q", "context": "c"}
    assert dict(ex.labels()) == {"answer": "a"}
    assert ex.input_keys == ("question", "context")


def test_with_inputs_returns_a_copy() -> None:
    ex = Example(question="q", answer="a")
    marked = ex.with_inputs("question")
    assert ex.input_keys is None and marked.input_keys == ("question",)


def test_with_inputs_rejects_unknown_keys() -> None:
    with pytest.raises(KeyError, match="no field"):
        Example(question="q").with_inputs("query")


def test_inputs_without_marking_explains_what_to_do() -> None:
    with pytest.raises(ValueError, match="with_inputs"):
        Example(question="q").inputs()


def test_copy_and_without_keep_input_keys() -> None:
    ex = Example(question="q", answer="a", note="n").with_inputs("question")
    assert ex.copy(answer="b").answer == "b"
    assert ex.copy(answer="b").input_keys == ("question",)
    assert dict(ex.without("note")) == {"question": "q", "answer": "a"}
    assert ex.without("note").input_keys == ("question",)


def test_building_from_an_example_keeps_input_keys() -> None:
    ex = Example(question="q", answer="a").with_inputs("question")
    assert Example(ex, extra=1).input_keys == ("question",)


def test_uid_is_stable_and_ignores_key_order_and_input_marking() -> None:
    a = Example(question="q", answer="a")
    b = Example(answer="a", question="q").with_inputs("question")
    assert a.uid == b.uid
    assert len(a.uid) == 12
    assert int(a.uid, 16) >= 0
    assert Example(question="q", answer="b").uid != a.uid


def test_uid_does_not_depend_on_the_process() -> None:
    # A fixed value: the hash must not use Python's per-process randomised hash().
    assert Example(x=1).uid == Example({"x": 1}).uid
    import hashlib
    import json

    expected = hashlib.sha256(json.dumps({"x": 1}, sort_keys=True).encode()).hexdigest()[:12]
    assert Example(x=1).uid == expected


def test_equality_and_hash() -> None:
    a = Example(q="1", a="2").with_inputs("q")
    assert a == Example(q="1", a="2").with_inputs("q")
    assert a != Example(q="1", a="2").with_inputs("a")
    assert a == {"q": "1", "a": "2"}
    assert len({a, Example(q="1", a="2").with_inputs("q")}) == 1


def test_deepcopy_is_independent() -> None:
    ex = Example(tags=["x"]).with_inputs("tags")
    clone = copy.deepcopy(ex)
    clone["tags"].append("y")
    assert ex.tags == ["x"] and clone.input_keys == ("tags",)


def test_prediction_failed_has_empty_outputs_and_the_error() -> None:
    pred = Prediction.failed("reply has no value for answer", "garbage", ["reasoning", "answer"])
    assert dict(pred) == {"reasoning": "", "answer": ""}
    assert pred.parse_error == "reply has no value for answer"
    assert pred.completion == "garbage"


def test_prediction_defaults() -> None:
    pred = Prediction(answer="4")
    assert pred.answer == "4"
    assert pred.parse_error is None and pred.completion is None
