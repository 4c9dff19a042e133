"""Fingerprints: what a lock entry was optimized from, so a stale entry can be detected.

A fingerprint has one hash per *part*, and a combined hash over all parts:

- ``structure``: every predictor's name and signature (fields, descriptions, prefixes),
  and the source of a custom ``Module.forward``;
- ``instructions``: the base (unoptimized) instructions and demos written in the code;
- ``examples``: the ids (``Example.uid``) and input keys of the training and validation examples
  (and of a declared holdout slice);
- ``metric``: the metric's source code (its qualified name when the source is unavailable);
- ``model``: the task model string and the parameters that change its replies.

The prompt model is not part of it: it only proposes candidates, while the lock is judged
on what the task model does with them. :func:`diff` names the parts that changed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .example import Example
from .program import Module, Predict

if TYPE_CHECKING:
    from .lm import LM

PARTS = ("structure", "instructions", "examples", "metric", "model")
DESCRIPTIONS = {
    "structure": "the program's structure (its predictors, signatures or forward code)",
    "instructions": "the program's base instructions or demos",
    "examples": "the examples (training or validation set)",
    "metric": "the metric's source code",
    "model": "the task model or its parameters",
}
# LM parameters that say how to reach a model, not what it answers: never hashed, never stored.
_NOT_HASHED = frozenset(
    {"api_key", "api_base", "base_url", "api_version", "organization", "extra_headers", "headers", "timeout", "num_retries"}
)


@dataclass(frozen=True)
class Fingerprint:
    """Hashes per part (hex strings) and their combination."""

    parts: dict[str, str]

    @property
    def hash(self) -> str:
        return _digest(self.parts)

    def to_dict(self) -> dict[str, object]:
        return {"hash": self.hash, "parts": dict(self.parts)}


def fingerprint(
    *,
    program: Module,
    examples: Sequence[Example],
    valset: Sequence[Example] | None,
    metric: Callable[..., object],
    model: LM | str | None,
    holdout: Sequence[Example] | None = None,
) -> Fingerprint:
    """The fingerprint of a target; ``model`` is the task LM (``LM``) or a model string."""
    return Fingerprint(
        {
            "structure": structure_part(program),
            "instructions": instructions_part(program),
            "examples": examples_part(examples, valset, holdout),
            "metric": metric_part(metric),
            "model": model_part(model, program),
        }
    )


def diff(old: Mapping[str, object], new: Fingerprint) -> list[str]:
    """Names of the parts whose hashes differ (a part missing on either side counts as changed)."""
    return [part for part in PARTS if old.get(part) != new.parts.get(part)]


def describe(changed: Sequence[str]) -> str:
    """What changed, in words, for stale-entry messages: "the metric's source code and the examples changed"."""
    words = [DESCRIPTIONS.get(part, part) for part in changed]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{listed} changed"


def structure_part(program: Module) -> str:
    predictors = [
        {"name": name, "type": type(p).__name__, "signature": p.signature.to_dict()} for name, p in program.named_predictors()
    ]
    return _digest({"predictors": predictors, "forward": _forward_source(program)})


def instructions_part(program: Module) -> str:
    """Hash of the instructions and demos the program has now, per predictor."""
    state = {name: {"instructions": p.instructions, "demos": [dict(d) for d in p.demos]} for name, p in program.named_predictors()}
    return state_part(state)


def state_part(state: Mapping[str, Mapping[str, object]]) -> str:
    """Hash of a ``{predictor: {instructions, demos}}`` mapping (the lock's program state form)."""
    return _digest({name: {"instructions": s["instructions"], "demos": _demo_list(s.get("demos"))} for name, s in state.items()})


def _demo_list(demos: object) -> list[object]:
    return list(demos) if isinstance(demos, (list, tuple)) else []


def examples_part(examples: Sequence[Example], valset: Sequence[Example] | None, holdout: Sequence[Example] | None = None) -> str:
    def ids(items: Sequence[Example]) -> list[object]:
        return [[ex.uid, list(ex.input_keys or ())] for ex in items]

    parts: dict[str, object] = {"examples": ids(examples), "valset": None if valset is None else ids(valset)}
    if holdout is not None:  # only when declared, so entries locked before holdouts existed stay fresh
        parts["holdout"] = ids(holdout)
    return _digest(parts)


def metric_part(metric: Callable[..., object]) -> str:
    return _digest(metric_source(metric))


def metric_source(metric: Callable[..., object]) -> str:
    """The metric's source (dedented); partials include their arguments; else the qualified name."""
    if isinstance(metric, functools.partial):
        return f"partial({metric_source(metric.func)}, args={metric.args!r}, kwargs={sorted(metric.keywords.items())!r})"
    target = metric if inspect.isroutine(metric) else type(metric)
    try:
        return textwrap.dedent(inspect.getsource(target)).strip()
    except (OSError, TypeError):
        return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def model_part(model: LM | str | None, program: Module) -> str:
    """The task model plus any model pinned on a predictor (``Predict(..., lm=...)``)."""
    pinned = {name: describe_model(p.lm) for name, p in program.named_predictors() if p.lm is not None}
    return _digest({"task": describe_model(model), "pinned": pinned})


def describe_model(model: LM | str | None) -> dict[str, object]:
    """Model string and reply-changing parameters; connection settings and secrets are left out."""
    if model is None or isinstance(model, str):
        return {"model": model}
    kept = {k: v for k, v in model.params().items() if k not in _NOT_HASHED}
    return {"model": model.model, "params": kept}


def _forward_source(program: Module) -> str | None:
    """A custom Module's ``forward`` decides how predictors are chained; Predict's is fixed."""
    if isinstance(program, Predict):
        return None
    forward = type(program).forward
    if forward is Module.forward:
        return None
    try:
        return textwrap.dedent(inspect.getsource(forward)).strip()
    except (OSError, TypeError):
        return f"{type(program).__module__}.{type(program).__qualname__}.forward"


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
