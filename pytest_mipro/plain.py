"""Reading plain data (parsed JSON or YAML) back into typed values.

Each reader takes a mapping and a key and raises :class:`ValueError` naming the key when the
value has the wrong type, so a malformed report, payload or lock entry says what is wrong.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping, Sequence
from typing import TypeVar

Plain = Mapping[str, object]
T = TypeVar("T")


def number(data: Plain, key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key!r} must be a number, got {value!r}")
    return float(value)


def optional_number(data: Plain, key: str) -> float | None:
    return None if data.get(key) is None else number(data, key)


def integer(data: Plain, key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} must be a whole number, got {value!r}")
    return value


def text(data: Plain, key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {value!r}")
    return value


def optional_text(data: Plain, key: str) -> str | None:
    return None if data.get(key) is None else text(data, key)


def flag(data: Plain, key: str) -> bool:
    return bool(data.get(key, False))


def mapping(data: Plain, key: str) -> Plain:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key!r} must be a mapping, got {type(value).__name__}")
    return value


def optional_mapping(data: Plain, key: str) -> Plain | None:
    return None if data.get(key) is None else mapping(data, key)


def items(data: Plain, key: str) -> Sequence[object]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key!r} must be a list, got {type(value).__name__}")
    return value


def mappings(data: Plain, key: str) -> list[Plain]:
    found = items(data, key)
    if not all(isinstance(item, Mapping) for item in found):
        raise ValueError(f"{key!r} must be a list of mappings")
    return [item for item in found if isinstance(item, Mapping)]


def load(cls: type[T], data: Plain) -> T:
    """An instance of the dataclass ``cls`` from the mapping its ``asdict`` made.

    Field types guide the conversion: numbers, strings, booleans, ``None`` in optional
    fields, literals and enums (checked against their values), nested dataclasses and
    tuples. Missing keys take the field's default; a key without one raises ValueError.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is a dataclass by contract
        if spec.name in data:
            values[spec.name] = _convert(hints[spec.name], data[spec.name], spec.name)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ValueError(f"{spec.name!r} is missing")
    return cls(**values)


def _convert(kind: object, value: object, key: str) -> object:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        arms = [arm for arm in args if arm is not type(None)]
        return _convert(arms[0], value, key) if len(arms) == 1 else value
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{key!r} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        return tuple(_convert(args[0], item, key) for item in items({key: value}, key))
    if isinstance(kind, type):
        return _convert_to_type(kind, value, key)
    return value


def _convert_to_type(kind: type, value: object, key: str) -> object:
    if dataclasses.is_dataclass(kind):
        return load(kind, mapping({key: value}, key))
    if issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{key!r} must be one of {', '.join(repr(m.value) for m in kind)}, got {value!r}") from None
    readers: dict[type, typing.Callable[[Plain, str], object]] = {float: number, int: integer, str: text, bool: _boolean}
    reader = readers.get(kind)
    return value if reader is None else reader({key: value}, key)


def _boolean(data: Plain, key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key!r} must be true or false, got {value!r}")
    return value
