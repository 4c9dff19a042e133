"""Stage 1: candidate demo sets, from labeled examples and from the teacher's successful runs.

For ``n`` sets per predictor, as in dspy.MIPROv2: set 0 is the program as it is (zero-shot
for a fresh program), set 1 holds labeled examples, set 2 bootstraps over the unshuffled
trainset, and the rest bootstrap over seeded shuffles with a random number of demos.

Better than the reference: a teacher run is made at most once per example in a run (the
sets share them), labeled-only runs (no bootstrapping) get random labeled sets instead of
crashing, and duplicate sets are dropped so the search never spends trials on twins.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..errors import BudgetExceeded
from ..example import Example
from ..program import Module, TraceStep
from ._threads import run_in_threads
from .evaluate import TooManyErrors, metric_score

DemoSets = dict[str, list[list[Example]]]  # predictor name -> candidate demo sets


@dataclass
class TeacherRun:
    """The outcome of running the teacher on one train example."""

    success: bool
    steps: dict[str, list[TraceStep]] = field(default_factory=dict)  # predictor name -> its calls


@dataclass
class Bootstrapper:
    """Runs the teacher on train examples and turns successful traces into demos."""

    student: Module
    trainset: Sequence[Example]
    metric: Callable[..., object]
    teacher: Module | None = None
    max_labeled: int = 4
    metric_threshold: float | None = None
    teacher_settings: Mapping[str, Any] = field(default_factory=dict)
    max_errors: int = 10
    rng: random.Random = field(default_factory=random.Random)
    num_threads: int = 1
    teacher_calls: int = 0
    _runs: dict[str, TeacherRun] = field(default_factory=dict)
    _errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _teacher: Module | None = None

    def demo_sets(self, num_sets: int, max_bootstrapped: int) -> DemoSets:
        """``num_sets`` candidate demo sets per predictor (fewer when some coincide)."""
        names = [name for name, _ in self.student.named_predictors()]
        sets: DemoSets = {name: [] for name in names}
        for index in range(num_sets):
            try:
                chosen = self._demo_set(index, max_bootstrapped)
            except BudgetExceeded:
                break  # keep the sets made so far; the search will stop on the budget too
            for name in names:
                _append_unique(sets[name], chosen.get(name, []))
        return sets

    def _demo_set(self, index: int, max_bootstrapped: int) -> dict[str, list[Example]]:
        if index == 0:
            return {name: list(p.demos) for name, p in self.student.named_predictors()}
        if index == 1 and self.max_labeled > 0:
            return self._labeled(self.max_labeled, random.Random(0))
        if index == 2 and max_bootstrapped > 0:
            return self.bootstrap(list(self.trainset), max_bootstrapped)
        shuffled = list(self.trainset)
        self.rng.shuffle(shuffled)
        if max_bootstrapped <= 0:
            return self._labeled(self.max_labeled, self.rng)
        return self.bootstrap(shuffled, self.rng.randint(1, max_bootstrapped))

    def _labeled(self, k: int, rng: random.Random) -> dict[str, list[Example]]:
        chosen = rng.sample(list(self.trainset), min(k, len(self.trainset)))
        return {name: list(chosen) for name, _ in self.student.named_predictors()}

    def bootstrap(self, order: Sequence[Example], max_bootstrapped: int) -> dict[str, list[Example]]:
        """Walk ``order`` until ``max_bootstrapped`` teacher runs succeed; fill up with labeled examples."""
        augmented: dict[str, list[Example]] = {name: [] for name, _ in self.student.named_predictors()}
        used: set[str] = set()
        successes = 0
        for start in range(0, len(order), max(1, self.num_threads)):
            if successes >= max_bootstrapped:
                break
            window = order[start : start + max(1, self.num_threads)]
            self._prefetch(window)
            for example in window:
                run = self.run_teacher(example)
                if successes >= max_bootstrapped or not run.success:
                    continue
                successes += 1
                used.add(example.uid)
                for name, demo in self._demos_from_steps(run.steps).items():
                    augmented[name].append(demo)
        rest = [ex for ex in order if ex.uid not in used]
        n_raw = max(0, self.max_labeled - successes)
        raw = random.Random(0).sample(rest, min(n_raw, len(rest)))
        return {name: demos + raw for name, demos in augmented.items()}

    def _prefetch(self, examples: Sequence[Example]) -> None:
        """Run the teacher on several examples at once; results are consumed in order afterwards.

        Walking the trainset in windows of ``num_threads`` keeps the demos exactly those
        of a sequential walk; at most ``num_threads - 1`` runs past the last needed success
        are spent, and later demo sets reuse them.
        """
        todo = [ex for ex in examples if ex.uid not in self._runs]
        if len(todo) <= 1:
            return
        self._teacher_program()  # build it once, before the threads share it
        runs = [future.result() for future in run_in_threads(self._run_teacher_once, todo, len(todo))]
        for example, run in zip(todo, runs, strict=True):
            self._runs[example.uid] = run

    def run_teacher(self, example: Example) -> TeacherRun:
        """Run the teacher once per example and run (later calls reuse the outcome)."""
        if example.uid not in self._runs:
            self._runs[example.uid] = self._run_teacher_once(example)
        return self._runs[example.uid]

    def _run_teacher_once(self, example: Example) -> TeacherRun:
        teacher = _without_demo(self._teacher_program(), example)
        trace: list[TraceStep] = []
        try:
            with config.context(trace=trace, **dict(self.teacher_settings)):
                with self._lock:
                    self.teacher_calls += 1
                prediction = teacher(**example.inputs())
                score = metric_score(self.metric, example, prediction, trace)
        except BudgetExceeded:
            raise
        except Exception as exc:  # the reference allows max_errors failures of any kind
            with self._lock:
                self._errors += 1
                errors = self._errors
            if errors > self.max_errors:
                raise TooManyErrors(f"bootstrapping: {errors} teacher runs failed; last: {exc!r}") from exc
            return TeacherRun(False)
        if not self._passes(score) or any(step.outputs.parse_error for step in trace):
            return TeacherRun(False)
        return TeacherRun(True, _steps_by_predictor(teacher, trace))

    def _passes(self, score: float) -> bool:
        # A threshold of 0 counts as unset, as in the reference: any nonzero score passes.
        if self.metric_threshold:
            return score >= self.metric_threshold
        return bool(score)

    def _teacher_program(self) -> Module:
        if self._teacher is None:
            teacher = (self.teacher or self.student).deepcopy()
            if self.max_labeled > 0 and not any(p.demos for p in teacher.predictors()):
                labeled = random.Random(0).sample(list(self.trainset), min(self.max_labeled, len(self.trainset)))
                for predictor in teacher.predictors():
                    predictor.demos = list(labeled)
            self._teacher = teacher
        return self._teacher

    def _demos_from_steps(self, steps_by_name: dict[str, list[TraceStep]]) -> dict[str, Example]:
        demos = {}
        for name, steps in steps_by_name.items():
            # A predictor called several times keeps one call: the last, or a random earlier one.
            step = steps[-1] if len(steps) == 1 or self.rng.random() < 0.5 else self.rng.choice(steps[:-1])
            outputs = {k: v for k, v in step.outputs.items() if k in step.predictor.signature.output_names}
            demos[name] = Example({**step.inputs, **outputs, "augmented": True})
        return demos


def _steps_by_predictor(teacher: Module, trace: list[TraceStep]) -> dict[str, list[TraceStep]]:
    names = {id(p): name for name, p in teacher.named_predictors()}
    steps: dict[str, list[TraceStep]] = {}
    for step in trace:
        if id(step.predictor) in names:
            steps.setdefault(names[id(step.predictor)], []).append(step)
    return steps


def _without_demo(teacher: Module, example: Example) -> Module:
    """The teacher, or a copy without ``example`` among its demos (it must not see the answer)."""
    if not any(d.uid == example.uid for p in teacher.predictors() for d in p.demos):
        return teacher
    copy = teacher.deepcopy()
    for predictor in copy.predictors():
        predictor.demos = [d for d in predictor.demos if d.uid != example.uid]
    return copy


def _append_unique(sets: list[list[Example]], candidate: list[Example]) -> None:
    key = [d.uid for d in candidate]
    if all([d.uid for d in existing] != key for existing in sets):
        sets.append(candidate)
