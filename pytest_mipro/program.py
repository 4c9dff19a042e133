"""Programs: ``Predict`` (one prompt), ``ChainOfThought``, and ``Module`` for multi-step code.

A program's optimizable state is, per predictor, its instructions and its demos. That state
is plain data (``dump_state``), saved as JSON or YAML, never pickled.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config
from .adapters import Adapter, FieldsAdapter
from .errors import ConfigError, ParseError
from .example import Example, Prediction
from .signature import Signature, ensure_signature


@dataclass(frozen=True)
class TraceStep:
    """One predictor call recorded while a trace is active."""

    predictor: Predict
    inputs: dict[str, Any]
    outputs: Prediction


class Module:
    """Base class for programs. Subclasses set predictors as attributes and define ``forward``."""

    def __call__(self, **inputs: Any) -> Prediction:
        return self.forward(**inputs)

    def forward(self, **inputs: Any) -> Prediction:
        raise NotImplementedError(f"{type(self).__name__} must define forward(**inputs)")

    def named_predictors(self) -> list[tuple[str, Predict]]:
        """Every predictor in this program with a stable dotted name (attribute order)."""
        if isinstance(self, Predict):
            return [("self", self)]
        found: list[tuple[str, Predict]] = []
        seen: set[int] = set()
        for name, predictor in _walk(self, "", seen):
            found.append((name, predictor))
        return found

    def predictors(self) -> list[Predict]:
        return [p for _, p in self.named_predictors()]

    def deepcopy(self) -> Module:
        """An independent copy; LMs and adapters are shared, not copied."""
        memo: dict[int, object] = {}
        for predictor in self.predictors():
            for shared in (predictor.lm, predictor.adapter):
                if shared is not None:
                    memo[id(shared)] = shared
        return copy.deepcopy(self, memo)

    def reset_copy(self) -> Module:
        """A copy with every predictor's demos removed."""
        new = self.deepcopy()
        for predictor in new.predictors():
            predictor.demos = []
        return new

    # Saved state: instructions and demos per predictor, as data.
    def dump_state(self) -> dict[str, Any]:
        return {name: p.dump_predictor_state() for name, p in self.named_predictors()}

    def load_state(self, state: Mapping[str, Any], *, source: str = "state") -> Module:
        predictors = dict(self.named_predictors())
        unknown = sorted(set(state) - set(predictors))
        if unknown:
            raise ConfigError(
                f"{source}: predictor(s) {unknown} are not in this program, whose predictors are {sorted(predictors)}"
            )
        for name, entry in state.items():
            predictors[name].load_predictor_state(entry, source=f"{source}: {name}")
        return self

    def save(self, path: str | Path) -> None:
        """Write instructions and demos per predictor as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        path = Path(path)
        state = self.dump_state()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(state, sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(state, indent=2, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")

    def load(self, path: str | Path) -> Module:
        """Read a file written by :meth:`save` into this program (returns self)."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        state = _parse_state(path, text)
        if not isinstance(state, dict):
            raise ConfigError(f"{path}: expected a mapping of predictor names to state, got {type(state).__name__}")
        return self.load_state(state, source=str(path))

    def load_lock(self, lockfile: str | Path, name: str) -> Module:
        """Apply the locked instructions and demos of target ``name`` (works without pytest)."""
        from .lockfile import Lockfile

        entry = Lockfile.read(Path(lockfile)).require(name)
        return self.load_state(entry.program_state(), source=f"{lockfile}: {name}")


def _parse_state(path: Path, text: str) -> object:
    """The data in a saved program file; a syntax error names the file."""
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc


# Attributes compile() attaches to the programs it returns; they hold other programs.
_RESULT_ATTRS = frozenset({"candidate_programs", "mb_candidate_programs", "trial_logs"})


def _walk(obj: object, prefix: str, seen: set[int]) -> Iterator[tuple[str, Predict]]:
    for attr, value in vars(obj).items():
        if attr.startswith("_") or attr in _RESULT_ATTRS:
            continue
        yield from _walk_value(value, f"{prefix}{attr}", seen)


def _walk_value(value: object, name: str, seen: set[int]) -> Iterator[tuple[str, Predict]]:
    if id(value) in seen:
        return
    if isinstance(value, Predict):
        seen.add(id(value))
        yield name, value
    elif isinstance(value, Module):
        seen.add(id(value))
        yield from _walk(value, f"{name}.", seen)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk_value(item, f"{name}[{i}]", seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_value(item, f"{name}[{key!r}]", seen)


class Predict(Module):
    """One prompt: instructions + demos + signature, sent to an LM through an adapter.

    ``Predict("ticket -> team", instructions="Route the ticket ...")``. ``lm`` pins a model
    for this predictor; otherwise the configured (or default) LM answers.
    """

    def __init__(
        self,
        signature: str | Signature | type[Signature],
        instructions: str | None = None,
        *,
        lm: Any = None,
        adapter: Adapter | None = None,
        demos: list[Mapping[str, Any]] | None = None,
    ) -> None:
        self.signature = ensure_signature(signature, instructions)
        self.demos: list[Example] = [Example(d) for d in (demos or [])]
        self.lm = lm
        self.adapter: Adapter = adapter or FieldsAdapter()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature.spec()!r}, demos={len(self.demos)})"

    @property
    def instructions(self) -> str:
        return self.signature.instructions

    @instructions.setter
    def instructions(self, text: str) -> None:
        self.signature = self.signature.with_instructions(text)

    def forward(self, **inputs: Any) -> Prediction:
        missing = [name for name in self.signature.input_names if name not in inputs]
        if missing:
            raise TypeError(
                f"{self!r} is missing input field(s) {missing}; it takes {self.signature.input_names}"
            )
        from .lm import default_lm

        lm = self.lm or default_lm()
        messages = self.adapter.format(self.signature, self.demos, inputs)
        reply = lm(messages)
        try:
            prediction = Prediction(self.adapter.parse(self.signature, reply))
        except ParseError as exc:
            prediction = Prediction.failed(str(exc), reply, self.signature.output_names)
        prediction.completion = reply
        _record(self, inputs, prediction)
        return prediction

    def dump_predictor_state(self) -> dict[str, Any]:
        return {
            "signature": self.signature.spec(),
            "instructions": self.signature.instructions,
            "demos": [dict(d) for d in self.demos],
        }

    def load_predictor_state(self, entry: Mapping[str, Any], *, source: str = "state") -> None:
        if not isinstance(entry, Mapping) or "instructions" not in entry:
            raise ConfigError(f"{source}: expected a mapping with 'instructions' and 'demos'")
        demos = entry.get("demos") or []
        if not isinstance(demos, list) or not all(isinstance(d, Mapping) for d in demos):
            raise ConfigError(f"{source}: 'demos' must be a list of mappings of field names to values")
        self.instructions = str(entry["instructions"])
        self.demos = [Example(d) for d in demos]


class ChainOfThought(Predict):
    """``Predict`` with a ``reasoning`` output written before the other outputs."""

    def __init__(
        self,
        signature: str | Signature | type[Signature],
        instructions: str | None = None,
        **kwargs: Any,
    ) -> None:
        base = ensure_signature(signature, instructions)
        extended = base.prepend_output(
            "reasoning", desc="Think step by step in one or two sentences.", prefix="Reasoning:"
        )
        super().__init__(extended, **kwargs)


def _record(predictor: Predict, inputs: Mapping[str, Any], prediction: Prediction) -> None:
    trace = config.current().trace
    if trace is not None:
        trace.append(TraceStep(predictor, dict(inputs), prediction))
