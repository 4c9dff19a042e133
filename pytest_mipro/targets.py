"""Targets: a program with its examples, metric and threshold, optimized into a lock entry.

Library code (no pytest): ``optimize(target, run)`` runs MIPROv2 and returns the new
:class:`LockEntry`; ``evaluate_locked(target, entry, run)`` scores the locked program on the
entry's gate examples; ``stale_parts`` says which fingerprint parts no longer match.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config
from .errors import ConfigError, LockfileError
from .example import Example
from .fingerprint import Fingerprint, fingerprint, instructions_part, state_part
from .fingerprint import diff as fingerprint_diff
from .lm import LM, Usage
from .lockfile import LockEntry, PredictorLock
from .optimizer.checkpoint import Checkpoint
from .optimizer.evaluate import Evaluate, ExampleResult
from .optimizer.search import PRUNED, TrialLog, prefetch_valset
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


def _parameters(func: Callable[..., Any]) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p != "self"]


def optimizer_parameters() -> tuple[list[str], list[str]]:
    """Names a target may pass to ``MIPROv2(...)`` and to ``compile(...)``."""
    from .optimizer.mipro import MIPROv2

    init = [p for p in _parameters(MIPROv2.__init__) if p not in _SUPPLIED]
    compile_ = [p for p in _parameters(MIPROv2.compile) if p not in _SUPPLIED]
    return init, compile_


def split_optimizer_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options for ``MIPROv2(...)`` and for ``compile(...)``; unknown names raise ConfigError."""
    init_names, compile_names = optimizer_parameters()
    init, compile_ = {}, {}
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
    only when it is significantly better there (see :mod:`pytest_mipro.holdout`).
    """

    name: str
    program: Module
    examples: list[Example]
    metric: Callable[..., Any]
    valset: list[Example] | None = None
    threshold: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    holdout: list[Example] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.program, Module):
            raise ConfigError(f"mipro target {self.name!r}: the program must be a pytest_mipro Module (Predict, ChainOfThought, ...), got {type(self.program).__name__}")
        if not callable(self.metric):
            raise ConfigError(f"mipro target {self.name!r}: the metric must be callable as metric(example, prediction, trace=None)")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"mipro target {self.name!r}: threshold={self.threshold!r} must be between 0 and 1")
        try:
            split_optimizer_options(self.options)  # unknown options fail before any LM call
        except ConfigError as exc:
            raise ConfigError(f"mipro target {self.name!r}: {exc}") from None


@dataclass(frozen=True)
class RunConfig:
    """How to run targets: the LMs (passed explicitly) and the run-wide optimizer defaults."""

    task_lm: LM
    prompt_lm: LM | None = None
    auto: str | None = "light"
    seed: int | None = None
    threads: int | None = None
    max_calls: int | None = None
    max_cost: float | None = None
    cache: bool = True
    on_trial: Callable[[TrialProgress], None] | None = None
    checkpoint_root: Path | None = None  # where studies are kept, so an interrupted run resumes
    storage_url: str | None = None  # a database study shared with other runs and machines
    run_id: str = ""
    worker: int = 0  # this process's index among those sharing the run (xdist workers)
    peers: int = 1  # processes of the run that work on each target's study (see Checkpoint.peers)


@dataclass(frozen=True)
class TrialProgress:
    """One finished search evaluation, with the run's spending so far (for progress lines)."""

    target: str
    trial: TrialLog
    number: int  # search trials so far (baseline and extra full evals not counted)
    total: int
    usage: dict[str, Any]
    elapsed: float
    counted: bool = True  # False for the baseline and the periodic full evaluations


@dataclass(frozen=True)
class Evaluation:
    """A locked program scored on its gate examples."""

    score: float
    results: list[ExampleResult]
    usage: dict[str, Any]
    seconds: float

    @property
    def calls(self) -> int:
        return int(self.usage.get("calls", 0))

    @property
    def failures(self) -> list[ExampleResult]:
        """Examples that did not get full marks (or raised), worst first."""
        return sorted((r for r in self.results if r.score < 1.0 or r.failed), key=lambda r: r.score)


@dataclass(frozen=True)
class Optimized:
    """What ``optimize`` produced: the entry to lock, its evaluation, and every trial."""

    entry: LockEntry
    evaluation: Evaluation
    trials: list[TrialLog]
    result: Any = None  # the optimizer's OptimizationResult: candidates with per-example scores
    selection: dict[str, Any] = field(default_factory=dict)  # how the locked program was chosen, for the record


# ---------------------------------------------------------------- declarations

# Where a target's parts come from unless the declaration names them: fixture names.
DEFAULT_FIXTURES = {"examples": "mipro_examples", "valset": "mipro_valset", "holdout": "mipro_holdout", "metric": "mipro_metric"}
Lookup = Callable[[str], Any]  # fixture name -> value; raises KeyError when there is no such fixture


def target_from_declaration(
    args: Sequence[Any], kwargs: Mapping[str, Any], *, default_name: str, lookup: Lookup
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
        raise ConfigError(f"{where}: the program must be a pytest_mipro Module (Predict, ChainOfThought, ...), got {type(program).__name__}")
    examples = make_examples(_resolve(options.pop("examples", None), "examples", "examples", lookup, where), program, where=f"{where}: examples")
    raw_valset = _resolve(options.pop("valset", None), "valset", "valset", lookup, where, required=False)
    valset = None if raw_valset is None else make_examples(raw_valset, program, where=f"{where}: valset")
    raw_holdout = _resolve(options.pop("holdout", None), "holdout", "holdout", lookup, where, required=False)
    holdout = None if raw_holdout is None else make_examples(raw_holdout, program, where=f"{where}: holdout")
    metric = _resolve(options.pop("metric", None), "metric", "metric", lookup, where)
    return Target(
        name=name, program=program, examples=examples, metric=metric, valset=valset, threshold=threshold, options=options, holdout=holdout
    )


def _threshold(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{where}: threshold={value!r} must be a number between 0 and 1 (scores are fractions)")
    return float(value)


def _resolve(value: Any, part: str | None, role: str, lookup: Lookup, where: str, *, required: bool = True) -> Any:
    """A value given directly, or the fixture a string names, or the part's default fixture."""
    explicit = isinstance(value, str)
    fixture = value if explicit else (DEFAULT_FIXTURES.get(part or "") if value is None else None)
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


def make_examples(value: Any, program: Module, *, where: str) -> list[Example]:
    """Examples from a list of Example/dicts or a YAML/JSON/JSONL path; inputs inferred when unmarked."""
    from .data import load_examples

    if isinstance(value, (str, Path)):
        examples = load_examples(value)
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        examples = load_examples(list(value)) if value else []
    else:
        raise ConfigError(f"{where} must be a list of examples (Example or dict) or a path to a YAML/JSON/JSONL file, got {type(value).__name__}")
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
        raise ConfigError(f"{where}: cannot tell which fields are inputs; mark them with Example(...).with_inputs(...) or load_examples(..., inputs=[...])")
    missing = [k for k in inputs if k not in example]
    if missing:
        raise ConfigError(f"{where}: example {dict(example)!r} lacks the program's input field(s) {missing}")
    return example.with_inputs(*inputs)


# ---------------------------------------------------------------- freshness


def target_fingerprint(target: Target, task_lm: Any) -> Fingerprint:
    return fingerprint(
        program=target.program, examples=target.examples, valset=target.valset, metric=target.metric, model=task_lm, holdout=target.holdout
    )


def stale_parts(target: Target, entry: LockEntry, task_lm: Any) -> list[str]:
    """Fingerprint parts that changed since ``entry`` was optimized (empty: fresh).

    A program that already has the locked prompts loaded (application code often calls
    ``load_lock`` at import) counts as unchanged: its instructions equal the lock's.
    """
    changed = fingerprint_diff(entry.fingerprint_parts, target_fingerprint(target, task_lm))
    if "instructions" in changed and instructions_part(target.program) == state_part(entry.program_state()):
        changed.remove("instructions")
    return changed


def locked_program(target: Target, entry: LockEntry) -> Module:
    """A copy of the target's program with the entry's instructions and demos."""
    return target.program.deepcopy().load_state(entry.program_state(), source=f"lock entry {entry.name!r}")


def predictor_locks(program: Module) -> dict[str, PredictorLock]:
    """The program's prompts as the lockfile stores them, per predictor."""
    return {name: PredictorLock(p.signature.spec(), p.instructions, [dict(d) for d in p.demos]) for name, p in program.named_predictors()}


def gate_examples(target: Target, entry: LockEntry) -> list[Example]:
    """The examples the entry was scored on (by id), else the validation set, else all examples."""
    pool = list(target.valset or []) + list(target.examples)
    ids = list(entry.results.get("ids") or [])
    if not ids:
        return list(target.valset or target.examples)
    by_id = {ex.uid: ex for ex in pool}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise LockfileError(f"lock entry {entry.name!r} was scored on examples that are gone ({len(missing)} of {len(ids)}); run `pytest --mipro-optimize`")
    return [by_id[i] for i in ids]


# ---------------------------------------------------------------- evaluation


def evaluate_locked(target: Target, entry: LockEntry, run: RunConfig) -> Evaluation:
    """Score the locked program on the entry's gate examples (cached replies are free)."""
    program = locked_program(target, entry)
    return evaluate_program(target, program, gate_examples(target, entry), run)


def evaluate_program(target: Target, program: Module, examples: Sequence[Example], run: RunConfig) -> Evaluation:
    started = time.monotonic()
    evaluate = _evaluator(target, examples, run)
    result, usage = _with_usage(program, run, lambda: evaluate(program))
    return Evaluation(result.score, result.results, usage, time.monotonic() - started)


def _evaluator(target: Target, examples: Sequence[Example], run: RunConfig) -> Evaluate:
    # Exceptions score 0 and show among the worst examples instead of aborting the gate.
    return Evaluate(devset=examples, metric=target.metric, num_threads=run.threads, max_errors=len(examples))


def _with_usage(program: Module, run: RunConfig, work: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run ``work`` with the run's task LM and cache; returns its result and the usage it spent."""
    lms = _lms(program, run.task_lm)
    before = [lm.usage.snapshot() for lm in lms]
    with config.context(lm=run.task_lm, cache=run.cache):
        result = work()
    return result, _add(*(_delta(lm.usage.snapshot(), b) for lm, b in zip(lms, before)))


def _lms(program: Module, task_lm: LM) -> list[LM]:
    """The task LM and any LM pinned on a predictor, each once (their usage is counted)."""
    found: dict[int, LM] = {id(task_lm.usage): task_lm}
    for predictor in program.predictors():
        if isinstance(predictor.lm, LM):
            found.setdefault(id(predictor.lm.usage), predictor.lm)
    return list(found.values())


def _delta(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    return {k: after[k] - before.get(k, 0) for k in after}


def _add(*usages: Mapping[str, Any]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for usage in usages:
        for key, value in usage.items():
            total[key] = total.get(key, 0) + value
    return total


def gate_threshold(target: Target, entry: LockEntry, tolerance: float) -> tuple[float | None, str]:
    """The threshold to gate on and where it came from.

    The marker's threshold when it sets one. Without one, an entry that locks per-example
    scores is gated by the paired regression check alone (None); an older entry without
    them falls back to its locked score minus ``tolerance``.
    """
    if target.threshold is not None:
        return target.threshold, "marker"
    if entry.results.get("ids"):
        return None, "none: checked for a regression against the locked per-example scores"
    if math.isnan(entry.score):
        return None, "none: the entry has neither a score nor per-example results"
    return max(0.0, entry.score - tolerance), f"locked score {entry.score:.3f} - tolerance {tolerance:g}"


# ---------------------------------------------------------------- optimization


def optimize(target: Target, run: RunConfig) -> Optimized:
    """Run MIPROv2 on the target and return the entry to lock (not yet written)."""
    optimizer, init, compile_, prompt_lm = _compile(target, run)
    result = optimizer.last_result
    assert result is not None  # compile() always sets it
    pool = {ex.uid: ex for ex in list(target.valset or []) + list(target.examples)}
    evaluation = evaluate_program(target, result.program, [pool[i] for i in result.valset_ids], run)
    record = _optimizer_record(target.options, init.get("auto"), compile_.get("seed", optimizer.seed), result)
    entry = _entry(target, run, result, evaluation, record, prompt_lm)
    return Optimized(entry, evaluation, list(result.trial_logs), result)


@dataclass(frozen=True)
class Assisted:
    """What a helping process did for a target: its spending and the search's result."""

    counts: dict[str, Any]  # lock-entry counts, to be added to the entry's
    result: Any  # the OptimizationResult, read from the finished shared study
    claim: Callable[[str], bool]  # the run's claims: True for the first process to claim a key


def assist(target: Target, run: RunConfig) -> Assisted:
    """Take trials of the target's shared study until its budget is spent; lock nothing.

    Other processes of the run (xdist workers) do this for a target while one of them runs
    :func:`optimize`, which waits for their trials before it reads the result.
    """
    if run.checkpoint_root is None and run.storage_url is None:
        raise ConfigError(f"mipro target {target.name!r}: helping needs a shared study (a checkpoint folder or --mipro-storage)")
    optimizer = _compile(target, run)[0]
    assert optimizer.checkpoint is not None  # made from the folder or URL checked above
    return Assisted(_counts(optimizer.last_result), optimizer.last_result, optimizer.checkpoint.claim)


def prefetch_program(
    target: Target, program: Module, examples: Sequence[Example], run: RunConfig, claim: Callable[[str], bool]
) -> dict[str, Any]:
    """Score ``program`` on ``examples`` from the last one backwards, only to fill the response cache.

    For a process that will score the same program from the front (see
    :func:`optimizer.search.prefetch_valset`); ``claim(uid)`` keeps two prefetching
    processes off the same example. Returns the usage spent.
    """
    if not run.cache:
        return {}  # nothing would be shared
    evaluate = _evaluator(target, examples, run)
    _, usage = _with_usage(program, run, lambda: prefetch_valset(evaluate, program, examples, wanted=lambda: True, claim=claim))
    return usage


def _compile(target: Target, run: RunConfig) -> tuple[Any, dict[str, Any], dict[str, Any], LM]:
    """Run MIPROv2's compile on the target's study; returns the optimizer and its arguments."""
    from .optimizer.mipro import MIPROv2

    init, compile_ = _optimizer_arguments(target, run)
    prompt_lm = run.prompt_lm or run.task_lm.copy(usage=Usage())  # own counter: tokens per model
    counter = _TrialCounter(target.name, _expected_trials(target, init, compile_), run, prompt_lm)
    checkpoint = _checkpoint(target, run, init, compile_, prompt_lm)
    optimizer = MIPROv2(
        target.metric, prompt_model=prompt_lm, task_model=run.task_lm, on_trial=counter, checkpoint=checkpoint, **init
    )
    with config.context(cache=run.cache):
        optimizer.compile(target.program, trainset=target.examples, valset=target.valset, **compile_)
    return optimizer, init, compile_, prompt_lm


def _checkpoint(
    target: Target, run: RunConfig, init: Mapping[str, Any], compile_: Mapping[str, Any], prompt_lm: LM
) -> Checkpoint | None:
    """The target's stored study, named after everything that shapes the search.

    Any change to the program, data, metric, models or optimizer settings gives a new study,
    so only a run of the very same optimization resumes an old one.
    """
    if run.checkpoint_root is None and run.storage_url is None:
        return None
    shape = {
        "fingerprint": target_fingerprint(target, run.task_lm).hash,
        "prompt_model": [prompt_lm.model, prompt_lm.params()],
        "options": {k: repr(v) for k, v in sorted({**init, **compile_}.items()) if k not in ("num_threads",)},
    }
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", target.name).strip("-")[:60] or "target"
    root = run.checkpoint_root or Path(".mipro") / "runs"
    return Checkpoint(
        root / f"{slug}-{digest}",
        storage_url=run.storage_url,
        study_name=f"{slug}-{digest}",
        run_id=run.run_id or uuid.uuid4().hex,
        worker=run.worker,
        peers=run.peers,
    )


def _optimizer_arguments(target: Target, run: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The target's options over the run's defaults (a target's own choice wins)."""
    init, compile_ = split_optimizer_options(target.options)
    if "auto" not in init:
        # Fixing the trial count or candidates means the user opted out of the auto presets.
        explicit = "num_candidates" in init or "num_trials" in compile_
        init["auto"] = None if explicit else run.auto
    if run.seed is not None:
        init.setdefault("seed", run.seed)
    if run.threads is not None:
        init.setdefault("num_threads", run.threads)
    if run.max_calls is not None:
        init.setdefault("max_lm_calls", run.max_calls)
    if run.max_cost is not None:
        init.setdefault("max_cost", run.max_cost)
    return init, compile_


def _expected_trials(target: Target, init: Mapping[str, Any], compile_: Mapping[str, Any]) -> int:
    from .optimizer.presets import AUTO_PRESETS, num_trials_for

    if init.get("auto") is None:
        return int(compile_.get("num_trials") or 0)
    boot = compile_.get("max_bootstrapped_demos", init.get("max_bootstrapped_demos", 4))
    labeled = compile_.get("max_labeled_demos", init.get("max_labeled_demos", 4))
    n = AUTO_PRESETS[init["auto"]].num_candidates
    return num_trials_for(len(target.program.predictors()), n, zero_shot=boot == 0 and labeled == 0)


class _TrialCounter:
    """Turns the optimizer's trial logs into :class:`TrialProgress` for ``run.on_trial``."""

    def __init__(self, name: str, total: int, run: RunConfig, prompt_lm: LM) -> None:
        self.name, self.total, self.run = name, total, run
        self.lms = [run.task_lm, prompt_lm]
        self.before = [lm.usage.snapshot() for lm in self.lms]
        self.started = time.monotonic()
        self.count = 0
        self.search_kind: str | None = None  # "minibatch", or "full" when the valset is too small for minibatches

    def __call__(self, trial: TrialLog) -> None:
        kind = trial.kind.removesuffix(PRUNED)
        if self.search_kind is None and kind in ("minibatch", "full"):
            self.search_kind = kind
        counted = kind == self.search_kind
        self.count += counted
        if self.run.on_trial is None:
            return
        usage = _add(*(_delta(lm.usage.snapshot(), b) for lm, b in zip(self.lms, self.before)))
        elapsed = time.monotonic() - self.started
        progress = TrialProgress(self.name, trial, self.count, self.total, usage, elapsed, counted)
        self.run.on_trial(progress)


def _entry(
    target: Target,
    run: RunConfig,
    result: Any,
    evaluation: Evaluation,
    optimizer: dict[str, Any],
    prompt_lm: LM,
) -> LockEntry:
    program = result.program
    predictors = {
        name: PredictorLock(p.signature.spec(), p.instructions, [dict(d) for d in p.demos]) for name, p in program.named_predictors()
    }
    counts = _counts(result)
    baseline = result.baseline_score
    return LockEntry(
        name=target.name,
        predictors=predictors,
        score=evaluation.score,
        fingerprint=target_fingerprint(target, run.task_lm).to_dict(),
        baseline_score=None if baseline is None or math.isnan(baseline) else baseline,
        threshold=target.threshold,
        n=len(evaluation.results),
        task_model=run.task_lm.model,
        prompt_model=prompt_lm.model,
        optimizer=optimizer,
        counts=counts,
        results={"ids": [r.example.uid for r in evaluation.results], "scores": [r.score for r in evaluation.results]},
    )


COUNTED = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost")


def _counts(result: Any) -> dict[str, Any]:
    """What an optimization run spent, as stored under a lock entry's ``counts``."""
    usage = _add(result.task_usage, result.prompt_usage)
    counts: dict[str, Any] = {key: usage.get(key, 0) for key in COUNTED}
    counts["cost"] = round(float(counts["cost"]), 6)
    counts["seconds"] = round(result.seconds, 2)
    return counts


def add_counts(counts: Mapping[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """``counts`` plus another process's spending on the same target (wall time is not added)."""
    total = dict(counts)
    for key in COUNTED:
        total[key] = total.get(key, 0) + more.get(key, 0)
    total["cost"] = round(float(total["cost"]), 6)
    return total


def _optimizer_record(options: Mapping[str, Any], auto: str | None, seed: int, result: Any) -> dict[str, Any]:
    """auto, seed and trials first, then every other option the target set (plain values only).

    Run-wide settings such as threads or the budget are left out: they do not change what is
    searched, and a lock should not differ by the machine that wrote it.
    """
    record: dict[str, Any] = {"auto": auto, "seed": seed, "trials": result.num_trials}
    for key, value in sorted(options.items()):
        if key not in record and isinstance(value, (str, int, float, bool, type(None))):
            record[key] = value
    if result.stopped_by_budget:
        record["stopped_by_budget"] = True
    return record
