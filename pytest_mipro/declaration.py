"""Declarations: what a ``@pytest.mark.mipro(...)`` marker says, turned into a :class:`Target`.

A target is a program with its labeled examples, metric, threshold and optimizer options.
Everything here is checked before any LM call: unknown optimizer options, a program that is
not a Module, examples without the program's inputs or outputs. Library code (no pytest): the plugin
passes a ``lookup`` that resolves fixture names.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .example import Example
from .optimizer.evaluate import Metric
from .program import ChainOfThought, Module, Predict

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

_AUTO_NAMES = ("light", "medium", "heavy")
# The smallest value of each whole-number option (None, where allowed, means "not set").
_WHOLE_NUMBERS = {
    "seed": 0,
    "num_candidates": 1,
    "num_trials": 1,
    "max_bootstrapped_demos": 0,
    "max_labeled_demos": 0,
    "num_threads": 1,
    "max_errors": 0,
    "max_lm_calls": 1,
    "minibatch_size": 1,
    "minibatch_full_eval_steps": 1,
    "view_data_batch_size": 1,
}
_FLAGS = ("minibatch", "program_aware_proposer", "data_aware_proposer", "verbose", "track_stats", "keep_demo_fields")


def _parameters(func: Callable[..., object]) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p != "self"]


def optimizer_parameters() -> tuple[list[str], list[str]]:
    """Names a target may pass to ``MIPROv2(...)`` and to ``compile(...)``."""
    from .optimizer.mipro import MIPROv2

    init = [p for p in _parameters(MIPROv2.__init__) if p not in _SUPPLIED]
    compile_ = [p for p in _parameters(MIPROv2.compile) if p not in _SUPPLIED]
    return init, compile_


def check_option_value(key: str, value: object) -> None:
    """A ConfigError naming ``key=value`` when the value cannot work (checked before any LM call)."""
    problem = _option_problem(key, value)
    if problem is not None:
        raise ConfigError(f"{key}={value!r} {problem}")


def _option_problem(key: str, value: object) -> str | None:
    if key == "auto":
        return None if value is None or value in _AUTO_NAMES else f"must be one of {', '.join(_AUTO_NAMES)} or None"
    if key in _WHOLE_NUMBERS:
        least = _WHOLE_NUMBERS[key]
        if value is None and key not in ("minibatch_size", "minibatch_full_eval_steps", "view_data_batch_size"):
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            return f"must be a whole number >= {least}"
    if key in _FLAGS and not isinstance(value, bool):
        return "must be True or False"
    if key == "max_cost" and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        return "must be a positive number of dollars"
    return None


def split_optimizer_options(options: Mapping[str, object]) -> tuple[Options, Options]:
    """Options for ``MIPROv2(...)`` and for ``compile(...)``; unknown names and values that
    cannot work (``auto="extreme"``, ``seed=1.5``, ``num_trials=-5``) raise ConfigError."""
    init_names, compile_names = optimizer_parameters()
    init: Options = {}
    compile_: Options = {}
    for key, value in options.items():
        if key in _SUPPLIED:
            raise ConfigError(f"optimizer option {key!r} cannot be set on a target: {_SUPPLIED[key]}")
        if key in init_names or key in compile_names:
            check_option_value(key, value)
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
    examples, valset, holdout = distinct_examples(examples, valset, holdout, where=where)
    return Target(
        name=name, program=program, examples=examples, metric=metric, valset=valset, threshold=threshold, options=options, holdout=holdout
    )


def distinct_examples(
    examples: list[Example], valset: list[Example] | None, holdout: list[Example] | None, *, where: str
) -> tuple[list[Example], list[Example] | None, list[Example] | None]:
    """Each example id once, in one part only: holdout first, then the validation set, then training.

    A repeated example would count twice in a score's n (narrowing its bounds for nothing)
    and could sit in both the validation set and the holdout. The dropped copies are named
    in a warning.
    """
    seen: dict[str, str] = {}  # id -> the part that has it
    dropped: list[str] = []
    kept: dict[str, list[Example]] = {}
    for part, items in (("holdout", holdout), ("valset", valset), ("examples", examples)):
        kept[part] = []
        for example in items or []:
            uid = example.uid
            if uid in seen:
                dropped.append(f"{uid} ({part}, already in {seen[uid]})")
                continue
            seen[uid] = part
            kept[part].append(example)
    if dropped:
        shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
        warnings.warn(
            f"{where}: dropped {len(dropped)} duplicate example(s) with the same id (the same field values): {shown}; "
            "each example is used once, in one of examples, valset and holdout",
            UserWarning,
            stacklevel=3,
        )
    return kept["examples"], (None if valset is None else kept["valset"]), (None if holdout is None else kept["holdout"])


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
    marked = [ex if ex.input_keys is not None else _mark_inputs(ex, inputs, where) for ex in examples]
    _check_fields(marked, program, where)
    return marked


def program_fields(program: Module) -> list[str]:
    """The fields every labeled example needs: a Predict's signature fields (but a chain of
    thought's ``reasoning``, which the model writes), else ``forward``'s named parameters."""
    if isinstance(program, Predict):
        outputs = [name for name in program.signature.output_names if not (isinstance(program, ChainOfThought) and name == "reasoning")]
        return program.signature.input_names + outputs
    return program_inputs(program) or []


def _check_fields(examples: Sequence[Example], program: Module, where: str) -> None:
    """Every example has every signature field: one without its label would be scored 0 on
    every call, whatever the prompt, and the search would spend its calls for nothing."""
    needed = program_fields(program)
    for index, example in enumerate(examples):
        missing = [name for name in needed if name not in example]
        if missing:
            raise ConfigError(
                f"{where}: example {index} (id {example.uid}, fields {sorted(example.keys())}) lacks the signature "
                f"field(s) {missing}; every example needs {needed}"
            )


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
