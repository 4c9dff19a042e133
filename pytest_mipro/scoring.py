"""Scoring a target's programs: the run's LMs and cache, evaluations with their cost, freshness.

The layer under both the gate (:mod:`pytest_mipro.gate`) and the optimization pipeline
(:mod:`pytest_mipro.pipeline`): a program is scored on examples with the target's metric,
using the run's task LM and cache, and the evaluation carries what it spent. Library code,
no pytest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from . import config
from .declaration import Target
from .errors import LockfileError
from .example import Example
from .fingerprint import Fingerprint, fingerprint, instructions_part, state_part
from .fingerprint import diff as fingerprint_diff
from .lm import LM, Usage
from .lockfile import Counts, LockEntry, PredictorLock
from .optimizer.evaluate import Evaluate, ExampleResult
from .program import Module

R = TypeVar("R")


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
    checkpoint_root: Path | None = None  # where studies are kept, so an interrupted run resumes
    storage_url: str | None = None  # a database study shared with other runs and machines
    run_id: str = ""
    worker: int = 0  # this process's index among those sharing the run (xdist workers)
    peers: int = 1  # processes of the run that work on each target's study (see Checkpoint.peers)


@dataclass(frozen=True)
class Evaluation:
    """A program scored on examples: the mean score, each example's result, and the cost."""

    score: float
    results: tuple[ExampleResult, ...]
    counts: Counts

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def calls(self) -> int:
        return self.counts.usage.calls

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.results]

    @property
    def ids(self) -> list[str]:
        return [r.example.uid for r in self.results]

    @property
    def failures(self) -> list[ExampleResult]:
        """Examples that did not get full marks (or raised), worst first."""
        return sorted((r for r in self.results if r.score < 1.0 or r.failed), key=lambda r: r.score)


def evaluate_program(target: Target, program: Module, examples: Sequence[Example], run: RunConfig) -> Evaluation:
    """Score ``program`` on ``examples`` with the target's metric, the run's LM and cache."""
    started = time.monotonic()
    # Exceptions score 0 and show among the worst examples instead of aborting the evaluation.
    evaluate = Evaluate(devset=examples, metric=target.metric, num_threads=run.threads, max_errors=len(examples))
    result, spent = spending(program, run, lambda: evaluate(program))
    return Evaluation(result.score, tuple(result.results), Counts(spent, time.monotonic() - started))


def spending(program: Module, run: RunConfig, work: Callable[[], R]) -> tuple[R, Usage]:
    """Run ``work`` with the run's task LM and cache; returns its result and the usage it spent."""
    lms = _lms(program, run.task_lm)
    before = [lm.usage.snapshot() for lm in lms]
    with config.context(lm=run.task_lm, cache=run.cache):
        result = work()
    return result, sum((lm.usage.snapshot() - b for lm, b in zip(lms, before, strict=True)), Usage())


def _lms(program: Module, task_lm: LM) -> list[LM]:
    """The task LM and any LM pinned on a predictor, each once (their usage is counted)."""
    found: dict[int, LM] = {id(task_lm.usage): task_lm}
    for predictor in program.predictors():
        if isinstance(predictor.lm, LM):
            found.setdefault(id(predictor.lm.usage), predictor.lm)
    return list(found.values())


# ---------------------------------------------------------------- locked programs


def locked_program(target: Target, entry: LockEntry) -> Module:
    """A copy of the target's program with the entry's instructions and demos."""
    return target.program.deepcopy().load_state(entry.program_state(), source=f"lock entry {entry.name!r}")


def predictor_locks(program: Module) -> dict[str, PredictorLock]:
    """The program's prompts as the lockfile stores them, per predictor."""
    return {name: PredictorLock(p.signature.spec(), p.instructions, [dict(d) for d in p.demos]) for name, p in program.named_predictors()}


def same_prompts(a: Module, b: Module) -> bool:
    return predictor_locks(a) == predictor_locks(b)


def gate_examples(target: Target, entry: LockEntry) -> list[Example]:
    """The examples the entry was scored on (by id), else the validation set, else all examples."""
    ids = entry.results.ids
    if not ids:
        return list(target.valset or target.examples)
    by_id = {ex.uid: ex for ex in target.labeled}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise LockfileError(
            f"lock entry {entry.name!r} was scored on examples that are gone ({len(missing)} of {len(ids)}); run `pytest --mipro-optimize`"
        )
    return [by_id[i] for i in ids]


# ---------------------------------------------------------------- freshness


def target_fingerprint(target: Target, task_lm: LM | str | None) -> Fingerprint:
    return fingerprint(
        program=target.program, examples=target.examples, valset=target.valset, metric=target.metric, model=task_lm, holdout=target.holdout
    )


def stale_parts(target: Target, entry: LockEntry, task_lm: LM | str | None) -> list[str]:
    """Fingerprint parts that changed since ``entry`` was optimized (empty: fresh).

    A program that already has the locked prompts loaded (application code often calls
    ``load_lock`` at import) counts as unchanged: its instructions equal the lock's.
    """
    changed = fingerprint_diff(entry.fingerprint.parts, target_fingerprint(target, task_lm))
    if "instructions" in changed and instructions_part(target.program) == state_part(entry.program_state()):
        changed.remove("instructions")
    return changed
