from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_mipro import ConfigError, Example, load_examples


def test_yaml_list(tmp_path: Path) -> None:
    path = tmp_path / "data.yaml"
    path.write_text("- {question: a, answer: b}\n- {question: c, answer: d}\n")
    examples = load_examples(path, inputs=["question"])
    assert [dict(e) for e in examples] == [{"question": "a", "answer": "b"}, {"question": "c", "answer": "d"}]
    assert all(e.input_keys == ("question",) for e in examples)


def test_yaml_mapping_with_examples_key(tmp_path: Path) -> None:
    path = tmp_path / "data.yml"
    path.write_text("examples:\n  - {q: a, a: b}\n")
    assert load_examples(path)[0].q == "a"


def test_json_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps([{"q": "1", "a": "2"}]))
    (tmp_path / "d.jsonl").write_text('{"q": "1", "a": "2"}\n\n{"q": "3", "a": "4"}\n')
    assert len(load_examples(tmp_path / "d.json")) == 1
    assert [e.q for e in load_examples(str(tmp_path / "d.jsonl"), inputs=["q"])] == ["1", "3"]


def test_iterable_of_dicts_and_examples() -> None:
    examples = load_examples([{"q": "1", "a": "2"}, Example(q="3", a="4")], inputs=["q"])
    assert [e.inputs().q for e in examples] == ["1", "3"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", "[{", r"bad\.json:1: not valid JSON"),
        ("bad.jsonl", '{"q": 1}\n{oops\n', r"bad\.jsonl:2: not valid JSON"),
        ("bad.yaml", "- [unclosed\n", r"bad\.yaml: not valid YAML"),
        ("scalar.yaml", "hello\n", r"scalar\.yaml: expected a list"),
        ("items.yaml", "- 1\n", r"items\.yaml: example 0 is a int"),
        ("empty.yaml", "[]\n", r"empty\.yaml: no examples"),
        ("data.csv", "q,a\n", r"unsupported examples format '\.csv'"),
    ],
)
def test_errors_name_the_file_and_problem(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_examples(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_examples(tmp_path / "nope.yaml")


def test_missing_input_field_names_the_example(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("- {q: a}\n- {a: b}\n")
    with pytest.raises(ConfigError, match=r"example 1 has no input field\(s\) \['q'\]"):
        load_examples(path, inputs=["q"])


def test_an_examples_file_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tickets.yaml"
    path.write_bytes(b"- ticket: fine\n  team: billing\n- ticket: caf\xe9\n  team: account\n")
    with pytest.raises(ConfigError, match=r"tickets\.yaml:3: not UTF-8 \(byte 0xe9\); save the file as UTF-8"):
        load_examples(path, inputs=["ticket"])


def test_an_examples_path_that_is_a_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_examples(tmp_path, inputs=["ticket"])
