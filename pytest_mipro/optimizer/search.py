"""Stage 3: Bayesian search (Optuna TPE) over instruction x demo-set choices per predictor.

The loop is ask/tell, so evaluation stays ours: minibatch trials, and every
``full_eval_steps`` trials a full validation eval of the best-averaging combination not
yet fully evaluated, fed back to TPE with its true parameters. Better than the reference:
no (combination, example) pair is ever predicted twice in a run (full evals reuse
minibatch results), when every combination has been fully evaluated the step is skipped
instead of crashing, and a spent budget ends the search with the best program so far.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BudgetExceeded
from ..example import Example
from ..program import Module
from .evaluate import Evaluate, EvaluationResult, ExampleResult

log = logging.getLogger("pytest_mipro")

Combo = tuple[tuple[int, int], ...]  # per predictor: (instruction index, demo-set index)


@dataclass(frozen=True)
class TrialLog:
    """One evaluation in the search: a minibatch trial, a full eval, or the baseline."""

    number: int
    kind: str  # "baseline", "minibatch" or "full"
    params: dict[str, int]
    score: float
    num_examples: int
    best_full_score: float
    lm_calls: int
    elapsed: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "params": dict(self.params),
            "score": self.score,
            "num_examples": self.num_examples,
            "best_full_score": self.best_full_score,
            "lm_calls": self.lm_calls,
            "elapsed": round(self.elapsed, 3),
        }


@dataclass
class SearchSpace:
    """The candidates: per predictor name, instruction texts and demo sets."""

    program: Module
    instructions: dict[str, list[str]]
    demo_sets: dict[str, list[list[Example]]]
    search_demos: bool = True

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.program.named_predictors()]

    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution

        dists = {}
        for i, name in enumerate(self.names):
            dists[f"{i}_predictor_instruction"] = CategoricalDistribution(list(range(len(self.instructions[name]))))
            if self.search_demos:
                dists[f"{i}_predictor_demos"] = CategoricalDistribution(list(range(max(1, len(self.demo_sets[name])))))
        return dists

    def combo_from_params(self, params: dict[str, Any]) -> Combo:
        return tuple(
            (int(params[f"{i}_predictor_instruction"]), int(params.get(f"{i}_predictor_demos", 0)))
            for i in range(len(self.names))
        )

    def params_from_combo(self, combo: Combo) -> dict[str, int]:
        params = {}
        for i, (instruction, demos) in enumerate(combo):
            params[f"{i}_predictor_instruction"] = instruction
            if self.search_demos:
                params[f"{i}_predictor_demos"] = demos
        return params

    def baseline(self) -> Combo:
        return tuple((0, 0) for _ in self.names)

    def build(self, combo: Combo) -> Module:
        """The program with the chosen instruction and demo set in every predictor."""
        candidate = self.program.deepcopy()
        for (name, predictor), (instruction, demos) in zip(candidate.named_predictors(), combo):
            predictor.instructions = self.instructions[name][instruction]
            sets = self.demo_sets.get(name) or [list(predictor.demos)]
            predictor.demos = list(sets[demos])
        return candidate

    def prompt_chars(self, combo: Combo) -> int:
        """Prompt size of a combination (instructions plus demo text), for tie-breaking."""
        total = 0
        for name, (instruction, demos) in zip(self.names, combo):
            total += len(self.instructions[name][instruction])
            sets = self.demo_sets.get(name) or [[]]
            total += sum(len(str(d)) for d in sets[demos])
        return total


@dataclass
class ScoreMemo:
    """Per-combination results by example id, so no prediction is paid for twice in a run."""

    results: dict[Combo, dict[str, ExampleResult]] = field(default_factory=dict)

    def evaluate(self, evaluate: Evaluate, space: SearchSpace, combo: Combo, examples: Sequence[Example]) -> EvaluationResult:
        known = self.results.setdefault(combo, {})
        missing = [ex for ex in examples if ex.uid not in known]
        if missing:
            fresh = evaluate(space.build(combo), missing)
            for result in fresh.results:
                known[result.example.uid] = result
        results = [known[ex.uid] for ex in examples]
        score = sum(r.score for r in results) / len(results) if results else 0.0
        return EvaluationResult(score, results)


@dataclass
class SearchSettings:
    num_trials: int
    minibatch: bool = True
    minibatch_size: int = 35
    full_eval_steps: int = 5
    seed: int = 9
    n_startup_trials: int = 10
    constant_liar: bool = False


@dataclass
class SearchOutcome:
    best_combo: Combo
    best_score: float
    baseline_score: float
    full_scores: dict[Combo, float]
    minibatch_scores: dict[Combo, list[float]]
    trial_logs: list[TrialLog]
    stopped_by_budget: bool = False


@dataclass
class BayesianSearch:
    """Runs the trials; all mutable search state lives here (no closures)."""

    space: SearchSpace
    valset: Sequence[Example]
    evaluate: Evaluate
    settings: SearchSettings
    rng: random.Random
    count_calls: Callable[[], int] = lambda: 0
    on_trial: Callable[[TrialLog], None] | None = None
    memo: ScoreMemo = field(default_factory=ScoreMemo)
    full_scores: dict[Combo, float] = field(default_factory=dict)
    minibatch_scores: dict[Combo, list[float]] = field(default_factory=dict)
    trial_logs: list[TrialLog] = field(default_factory=list)
    best_combo: Combo | None = None
    best_score: float = float("-inf")
    _started: float = field(default_factory=time.monotonic)

    def run(self, study: Any = None) -> SearchOutcome:
        study = study or self.create_study()
        baseline = self.space.baseline()
        baseline_score = self._full_eval(study, baseline, kind="baseline")
        stopped = False
        try:
            for trial_index in range(self.settings.num_trials):
                self._minibatch_trial(study)
                last = trial_index == self.settings.num_trials - 1
                if self.settings.minibatch and ((trial_index + 1) % self.settings.full_eval_steps == 0 or last):
                    self._full_eval_of_best_average(study)
        except BudgetExceeded as exc:
            log.warning("%s; returning the best program found so far", exc)
            stopped = True
        assert self.best_combo is not None
        return SearchOutcome(
            self.best_combo,
            self.best_score,
            baseline_score,
            dict(self.full_scores),
            {k: list(v) for k, v in self.minibatch_scores.items()},
            list(self.trial_logs),
            stopped,
        )

    def create_study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=self.settings.seed,
            multivariate=True,
            n_startup_trials=self.settings.n_startup_trials,
            constant_liar=self.settings.constant_liar,
        )
        return optuna.create_study(direction="maximize", sampler=sampler)

    def _minibatch_trial(self, study: Any) -> None:
        import optuna

        trial = study.ask(self.space.distributions())
        combo = self.space.combo_from_params(trial.params)
        batch = self._batch()
        try:
            result = self.memo.evaluate(self.evaluate, self.space, combo, batch)
        except BudgetExceeded:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        study.tell(trial, result.score)
        if self.settings.minibatch:
            self.minibatch_scores.setdefault(combo, []).append(result.score)
            self._log("minibatch", combo, result)
        else:
            self._record_full(combo, result.score)
            self._log("full", combo, result)

    def _batch(self) -> list[Example]:
        if not self.settings.minibatch:
            return list(self.valset)
        return self.rng.sample(list(self.valset), min(self.settings.minibatch_size, len(self.valset)))

    def _full_eval_of_best_average(self, study: Any) -> None:
        pending = {c: s for c, s in self.minibatch_scores.items() if c not in self.full_scores}
        if not pending:
            return  # everything promising is already fully evaluated
        combo = max(pending, key=lambda c: sum(pending[c]) / len(pending[c]))
        self._full_eval(study, combo, kind="full")

    def _full_eval(self, study: Any, combo: Combo, *, kind: str) -> float:
        import optuna

        result = self.memo.evaluate(self.evaluate, self.space, combo, self.valset)
        self._record_full(combo, result.score)
        study.add_trial(
            optuna.trial.create_trial(
                params=self.space.params_from_combo(combo),
                distributions=self.space.distributions(),
                value=result.score,
            )
        )
        self._log(kind, combo, result)
        return result.score

    def _record_full(self, combo: Combo, score: float) -> None:
        self.full_scores[combo] = score
        if score > self.best_score:
            self.best_combo, self.best_score = combo, score

    def _log(self, kind: str, combo: Combo, result: EvaluationResult) -> None:
        entry = TrialLog(
            number=len(self.trial_logs),
            kind=kind,
            params=self.space.params_from_combo(combo),
            score=result.score,
            num_examples=result.n,
            best_full_score=self.best_score,
            lm_calls=self.count_calls(),
            elapsed=time.monotonic() - self._started,
        )
        self.trial_logs.append(entry)
        log.info("trial %d (%s): score %.3f on %d examples, best full %.3f", entry.number, kind, entry.score, entry.num_examples, entry.best_full_score)
        if self.on_trial is not None:
            self.on_trial(entry)
