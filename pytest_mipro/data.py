"""Loading labeled examples from YAML, JSON or JSONL files, or from lists of dicts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .example import Example


def load_examples(
    source: str | Path | Iterable[Mapping[str, Any]],
    *,
    inputs: Sequence[str] | None = None,
) -> list[Example]:
    """Examples from a ``.yaml``/``.yml``/``.json``/``.jsonl`` file or an iterable of dicts.

    A YAML or JSON file holds a list of mappings, or a mapping with an ``examples`` list.
    ``inputs`` names the input fields; the other fields are labels.
    """
    where = str(source) if isinstance(source, (str, Path)) else "examples"
    records = _read_records(Path(source)) if isinstance(source, (str, Path)) else list(source)
    examples = []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ConfigError(f"{where}: example {i} is a {type(record).__name__}, expected a mapping of field: value")
        example = record if isinstance(record, Example) else Example(record)
        if inputs is not None:
            missing = [k for k in inputs if k not in example]
            if missing:
                raise ConfigError(f"{where}: example {i} has no input field(s) {missing}; its fields are {sorted(example)}")
            example = example.with_inputs(*inputs)
        examples.append(example)
    if not examples:
        raise ConfigError(f"{where}: no examples found")
    return examples


def _read_records(path: Path) -> list[object]:
    if not path.exists():
        raise ConfigError(f"examples file {path} does not exist")
    text = _read_text(path)
    if path.suffix == ".jsonl":
        return [_json_line(path, n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    else:
        raise ConfigError(f"{path}: unsupported examples format {path.suffix!r}; use .yaml, .yml, .json or .jsonl")
    if isinstance(data, Mapping) and "examples" in data:
        data = data["examples"]
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of examples (or a mapping with an 'examples' list)")
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte {exc.object[exc.start]:#04x}); save the file as UTF-8") from None
    except IsADirectoryError:
        raise ConfigError(f"examples file {path} is a directory; give the path of a .yaml, .json or .jsonl file") from None
    except OSError as exc:
        raise ConfigError(f"examples file {path} cannot be read: {exc.strerror}") from None


def _json_line(path: Path, number: int, line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
