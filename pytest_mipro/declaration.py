"""Declarations: what a ``@pytest.mark.mipro(...)`` marker says, turned into a :class:`Target`.

A target is a program with its labeled examples, metric, threshold and optimizer options.
Everything here is checked before any LM call: unknown optimizer options, a program that is
not a Module, examples without the program's inputs. Library code (no pytest): the plugin
passes a ``lookup`` that resolves fixture names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .example import Example
from .optimizer.evaluate import Metric
from .program import Module, Predict

# MIPROv2 arguments a target may not set: the plugin supplies them.
_SUPPLIED = {
    "metric": "the metric comes from the `mipro_metric` fixture or the marker's metric=",
    "prompt_model": "set the prompt model with --mipro-prompt-model or `mipro_prompt_model`",
    "task_model": "set the task model with --mipro-model or `mipro_model`",
    "on_trial": "use the pytest_mipro_trial_finished hook",
    "checkpoint": "not supported in targets",
    "student": "the program is the marker's first argument",
    "trainset": "the examples come from `mipro_examples` or the marker's examples=",
    "valset": "the validation set comes from `mipro_valset` or the marker's valset=",
    "holdout": "the holdout slice comes from `mipro_holdout` or the marker's holdout=",
    "requires_permission_to_run": "not supported",
}

Options = dict[str, object]  # optimizer options by MIPROv2 argument name


def _parameters(func: Callable[..., object]) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p != "self"]


def optimizer_parameters() -> tuple[list[str], list[str]]:
    """Names a target may pass to ``MIPROv2(...)`` and to ``compile(...)``."""
    from .optimizer.mipro import MIPROv2

    init = [p for p in _parameters(MIPROv2.__init__) if p not in _SUPPLIED]
    compile_ = [p for p in _parameters(MIPROv2.compile) if p not in _SUPPLIED]
    return init, compile_


def split_optimizer_options(options: Mapping[str, object]) -> tuple[Options, Options]:
    """Options for ``MIPROv2(...)`` and for ``compile(...)``; unknown names raise ConfigError."""
    init_names, compile_names = optimizer_parameters()
    init: Options = {}
    compile_: Options = {}
    for key, value in options.items():
        if key in _SUPPLIED:
            raise ConfigError(f"optimizer option {key!r} cannot be set on a target: {_SUPPLIED[key]}")
        if key in init_names:
            init[key] = value
        elif key in compile_names:
            compile_[key] = value
        else:
            known = ", ".join(sorted(init_names + compile_names))
            raise ConfigError(f"unknown optimizer option {key!r}; MIPROv2 options are: {known}")
    return init, compile_


@dataclass(frozen=True)
class Target:
    """One thing to optimize and gate: the program, its labeled data, metric and threshold.

    ``holdout`` is a slice the search never sees; ``--mipro-optimize`` adopts a new prompt
    only when it is significantly better there (see :mod:`pytest_mipro.pipeline`).
    """

    name: str
    program: Module
    examples: list[Example]
    metric: Metric
    valset: list[Example] | None = None
    threshold: float | None = None
    options: Options = field(default_factory=dict)
    holdout: list[Example] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.program, Module):
            raise ConfigError(
                f"mipro target {self.name!r}: the program must be a pytest_mipro Module "
                f"(Predict, ChainOfThought, ...), got {type(self.program).__name__}"
            )
        if not callable(self.metric):
            raise ConfigError(f"mipro target {self.name!r}: the metric must be callable as metric(example, prediction, trace=None)")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"mipro target {self.name!r}: threshold={self.threshold!r} must be between 0 and 1")
        try:
            split_optimizer_options(self.options)  # unknown options fail before any LM call
        except ConfigError as exc:
            raise ConfigError(f"mipro target {self.name!r}: {exc}") from None

    @property
    def labeled(self) -> list[Example]:
        """Every example the search may see: the validation set, then the training examples."""
        return list(self.valset or []) + list(self.examples)


# ---------------------------------------------------------------- declarations

# Where a target's parts come from unless the declaration names them: fixture names.
DEFAULT_FIXTURES = {"examples": "mipro_examples", "valset": "mipro_valset", "holdout": "mipro_holdout", "metric": "mipro_metric"}
Lookup = Callable[[str], object]  # fixture name -> value; raises KeyError when there is no such fixture


def target_from_declaration(
    args: Sequence[object], kwargs: Mapping[str, object], *, default_name: str, lookup: Lookup
) -> Target:
    """Build a target from ``mipro(program, *, threshold, name, examples, valset, holdout, metric, **options)``.

    A string program, examples, valset or metric names a fixture, looked up with ``lookup``.
    """
    if len(args) != 1:
        raise ConfigError(
            f"@pytest.mark.mipro takes one positional argument, the program (or its fixture name); got {len(args)}"
        )
    options = dict(kwargs)
    name = options.pop("name", None) or default_name
    if not isinstance(name, str):
        raise ConfigError(f"@pytest.mark.mipro: name={name!r} must be a string")
    where = f"mipro target {name!r}"
    threshold = _threshold(options.pop("threshold", None), where)
    program = _resolve(args[0], None, "program", lookup, where)
    if not isinstance(program, Module):
        raise ConfigError(
            f"{where}: the program must be a pytest_mipro Module (Predict, ChainOfThought, ...), got {type(program).__name__}"
        )
    examples = make_examples(
        _resolve(options.pop("examples", None), "examples", "examples", lookup, where), program, where=f"{where}: examples"
    )
    valset = _optional_examples(options.pop("valset", None), "valset", program, lookup, where)
    holdout = _optional_examples(options.pop("holdout", None), "holdout", program, lookup, where)
    metric = _resolve(options.pop("metric", None), "metric", "metric", lookup, where)
    if not callable(metric):
        raise ConfigError(f"{where}: the metric must be callable as metric(example, prediction, trace=None), got {type(metric).__name__}")
    return Target(
        name=name, program=program, examples=examples, metric=metric, valset=valset, threshold=threshold, options=options, holdout=holdout
    )


def _optional_examples(value: object, part: str, program: Module, lookup: Lookup, where: str) -> list[Example] | None:
    raw = _resolve(value, part, part, lookup, where, required=False)
    return None if raw is None else make_examples(raw, program, where=f"{where}: {part}")


def _threshold(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{where}: threshold={value!r} must be a number between 0 and 1 (scores are fractions)")
    return float(value)


def _resolve(value: object, part: str | None, role: str, lookup: Lookup, where: str, *, required: bool = True) -> object:
    """A value given directly, or the fixture a string names, or the part's default fixture."""
    explicit = isinstance(value, str)
    fixture = value if isinstance(value, str) else (DEFAULT_FIXTURES.get(part or "") if value is None else None)
    if fixture is None:
        return value
    try:
        return lookup(fixture)
    except KeyError:
        if not required and not explicit:
            return None
        hint = f"pass {part}=... to @pytest.mark.mipro" if part else "pass the program object itself"
        raise ConfigError(
            f"{where} needs its {role}: there is no fixture named {fixture!r}. "
            f"Define `@pytest.fixture def {fixture}(): ...` in the test module or a conftest.py, or {hint}."
        ) from None


# ---------------------------------------------------------------- examples


def make_examples(value: object, program: Module, *, where: str) -> list[Example]:
    """Examples from a list of Example/dicts or a YAML/JSON/JSONL path; inputs inferred when unmarked."""
    from .data import load_examples

    if isinstance(value, (str, Path)):
        examples = load_examples(value)
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        records = list(value)
        examples = load_examples(records) if records else []
    else:
        raise ConfigError(
            f"{where} must be a list of examples (Example or dict) or a path to a YAML/JSON/JSONL file, got {type(value).__name__}"
        )
    if not examples:
        raise ConfigError(f"{where} is empty")
    inputs = program_inputs(program)
    return [ex if ex.input_keys is not None else _mark_inputs(ex, inputs, where) for ex in examples]


def program_inputs(program: Module) -> list[str] | None:
    """The program's input names: a Predict's input fields, else ``forward``'s named parameters."""
    if isinstance(program, Predict):
        return program.signature.input_names
    params = inspect.signature(program.forward).parameters.values()
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names or None


def _mark_inputs(example: Example, inputs: list[str] | None, where: str) -> Example:
    if not inputs:
        raise ConfigError(
            f"{where}: cannot tell which fields are inputs; "
            "mark them with Example(...).with_inputs(...) or load_examples(..., inputs=[...])"
        )
    missing = [k for k in inputs if k not in example]
    if missing:
        raise ConfigError(f"{where}: example {dict(example)!r} lacks the program's input field(s) {missing}")
    return example.with_inputs(*inputs)
