"""Examples (labeled data) and Predictions (program outputs): small dict-like records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


class Example(Mapping[str, Any]):
    """A dict-like record of field values; ``with_inputs`` marks which keys are inputs.

    Attribute access works too: ``ex.question``.
    """

    def __init__(self, base: Mapping[str, Any] | None = None, **fields: Any) -> None:
        data = dict(base or {})
        data.update(fields)
        self._input_keys: tuple[str, ...] | None = None
        if isinstance(base, Example):
            self._input_keys = base._input_keys
        self._data = data

    # Mapping protocol
    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r}; its fields are {sorted(self._data)}"
            ) from None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Example):
            return self._data == other._data and self._input_keys == other._input_keys
        return isinstance(other, Mapping) and self._data == dict(other)

    def __hash__(self) -> int:
        return hash(self.uid)

    def __repr__(self) -> str:
        inputs = f", input_keys={list(self._input_keys)}" if self._input_keys else ""
        return f"{type(self).__name__}({self._data!r}{inputs})"

    def with_inputs(self, *keys: str) -> Example:
        """A copy that treats ``keys`` as inputs and the remaining keys as labels."""
        missing = [k for k in keys if k not in self._data]
        if missing:
            raise KeyError(f"with_inputs({', '.join(map(repr, keys))}): the example has no field(s) {missing}")
        copy = self.copy()
        copy._input_keys = tuple(keys)
        return copy

    @property
    def input_keys(self) -> tuple[str, ...] | None:
        return self._input_keys

    def inputs(self) -> Example:
        if self._input_keys is None:
            raise ValueError("inputs() needs the input keys: call example.with_inputs('field', ...) first")
        return Example({k: self._data[k] for k in self._input_keys})

    def labels(self) -> Example:
        keys = self._input_keys or ()
        return Example({k: v for k, v in self._data.items() if k not in keys})

    def copy(self, **changes: Any) -> Example:
        new = type(self)(self._data, **changes)
        new._input_keys = self._input_keys
        return new

    def without(self, *keys: str) -> Example:
        new = type(self)({k: v for k, v in self._data.items() if k not in keys})
        new._input_keys = self._input_keys
        return new

    def toDict(self) -> dict[str, Any]:  # DSPy's spelling
        return dict(self._data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    @property
    def uid(self) -> str:
        """A stable id: a hash of the field values (ignoring which keys are inputs)."""
        return example_id(self._data)


def example_id(data: Mapping[str, Any]) -> str:
    """Stable 12-hex-digit id of a record, independent of key order and process."""
    text = json.dumps(dict(data), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class Prediction(Example):
    """What a program returns: output fields, plus ``parse_error`` when the reply did not parse."""

    def __init__(self, base: Mapping[str, Any] | None = None, **fields: Any) -> None:
        super().__init__(base, **fields)
        self.parse_error: str | None = None
        self.completion: str | None = None

    @classmethod
    def failed(cls, error: str, reply: str, output_names: Iterable[str]) -> Prediction:
        """A prediction whose reply did not parse: output fields are empty strings."""
        pred = cls({name: "" for name in output_names})
        pred.parse_error = error
        pred.completion = reply
        return pred

    def __getattr__(self, name: str) -> Any:
        if name in ("parse_error", "completion"):
            raise AttributeError(name)
        return super().__getattr__(name)
