"""``MIPROv2``: the dspy.MIPROv2 API over our three stages (bootstrap, propose, search)."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import config
from ..errors import BudgetExceeded, ConfigError
from ..example import Example
from ..lm import LM, Budget, Usage, UsageCounter, default_lm
from ..program import Module
from ._threads import alongside
from .bootstrap import Bootstrapper, DemoSets
from .checkpoint import Checkpoint, fail_stale_trials
from .evaluate import Evaluate
from .presets import (
    AUTO_PRESETS,
    DEFAULT_MINIBATCH_SIZE,
    MIN_MINIBATCH_VALSET,
    default_val_split,
    num_trials_for,
    race_confidence_for,
    subsample,
)
from .propose import GroundedProposer, ProposerSwitches
from .search import (
    BayesianSearch,
    Combo,
    SearchOutcome,
    SearchSettings,
    SearchSpace,
    TrialLog,
    create_study,
)
from .study import SearchStudy, TrialKind

log = logging.getLogger("pytest_mipro")

ALLOWED_AUTO = {None, "light", "medium", "heavy"}
ZERO_SHOT_PROPOSER_DEMOS = 3  # zero-shot runs still bootstrap a few demos to show the proposer


@dataclass
class RunPlan:
    """Everything compile() resolved from its arguments before spending a call."""

    trainset: list[Example]
    valset: list[Example]
    num_trials: int
    num_instruct_candidates: int
    num_fewshot_candidates: int
    minibatch: bool
    max_bootstrapped: int
    max_labeled: int
    zero_shot: bool
    seed: int


@dataclass(frozen=True)
class Candidate:
    """A fully evaluated combination of the search: its program, valset score and prompt size."""

    program: Module
    score: float
    params: dict[str, int]
    scores: tuple[float, ...] | None  # per valset example, in valset order; None if scored in another process
    prompt_chars: int

    def to_dict(self) -> dict[str, object]:
        """The entry of dspy's ``candidate_programs`` (plus our per-example scores and prompt size)."""
        scores = list(self.scores) if self.scores is not None else None
        return {
            "score": self.score,
            "program": self.program,
            "params": dict(self.params),
            "scores": scores,
            "prompt_chars": self.prompt_chars,
        }


@dataclass
class OptimizationResult:
    """What a compile() run found, beyond the returned program."""

    program: Module
    score: float
    baseline_score: float | None
    trial_logs: list[TrialLog]
    candidates: list[Candidate]  # best first
    instruction_candidates: dict[str, list[str]]
    demo_candidates: DemoSets
    num_trials: int
    valset_size: int
    valset_ids: list[str]
    total_calls: int
    prompt_model_total_calls: int
    task_usage: Usage
    prompt_usage: Usage
    stopped_by_budget: bool
    seconds: float
    params: dict[str, int] = field(default_factory=dict)

    @property
    def candidate_programs(self) -> list[dict[str, object]]:
        """dspy's ``candidate_programs``: the candidates as dicts, best first."""
        return [c.to_dict() for c in self.candidates]


class MIPROv2:
    """Optimize instructions and demos of every predictor, as ``dspy.MIPROv2`` does.

    Same constructor and ``compile`` arguments, defaults and validation errors as DSPy's.
    Extra keyword-only arguments: ``max_lm_calls`` / ``max_cost`` (a budget that ends the
    search cleanly with the best program so far), ``on_trial`` (called with each
    :class:`TrialLog`) and ``race_confidence``: every evaluation stops once its candidate
    is, at this one-sided confidence, worse on the valset than the best so far (None stops
    only where that is certain, which never changes the result; "auto" takes the preset's:
    0.85 for light, 0.95 otherwise). Scores are fractions in [0, 1].
    """

    def __init__(
        self,
        metric: Callable[..., object],
        prompt_model: LM | str | None = None,
        task_model: LM | str | None = None,
        teacher_settings: Mapping[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 4,
        auto: str | None = "light",
        num_candidates: int | None = None,
        num_threads: int | None = None,
        max_errors: int | None = None,
        seed: int = 9,
        init_temperature: float = 1.0,
        verbose: bool = False,
        track_stats: bool = True,
        log_dir: str | None = None,
        metric_threshold: float | None = None,
        *,
        max_lm_calls: int | None = None,
        max_cost: float | None = None,
        on_trial: Callable[[TrialLog], None] | None = None,
        checkpoint: Checkpoint | None = None,
        race_confidence: float | Literal["auto"] | None = "auto",
    ) -> None:
        if auto not in ALLOWED_AUTO:
            raise ValueError(f"Invalid value for auto: {auto}. Must be one of {ALLOWED_AUTO}.")
        self.metric = metric
        self.prompt_model = LM(prompt_model) if isinstance(prompt_model, str) else prompt_model
        self.task_model = LM(task_model) if isinstance(task_model, str) else task_model
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.auto = auto
        self.num_candidates = num_candidates
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.seed = seed
        self.init_temperature = init_temperature
        self.verbose = verbose
        self.track_stats = track_stats
        self.log_dir = log_dir
        self.metric_threshold = metric_threshold
        self.max_lm_calls = max_lm_calls
        self.max_cost = max_cost
        self.on_trial = on_trial
        self.checkpoint = checkpoint
        if race_confidence not in (None, "auto") and not (
            isinstance(race_confidence, (int, float)) and 0.5 <= race_confidence < 1.0
        ):
            raise ValueError(f"race_confidence must be 'auto', None or in [0.5, 1), got {race_confidence!r}.")
        self.race_confidence = race_confidence
        self.last_result: OptimizationResult | None = None
        Budget(max_calls=max_lm_calls, max_cost=max_cost)  # validates the limits now

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        teacher: Module | None = None,
        valset: Sequence[Example] | None = None,
        num_trials: int | None = None,
        max_bootstrapped_demos: int | None = None,
        max_labeled_demos: int | None = None,
        seed: int | None = None,
        minibatch: bool = True,
        minibatch_size: int = DEFAULT_MINIBATCH_SIZE,
        minibatch_full_eval_steps: int = 5,
        program_aware_proposer: bool = True,
        data_aware_proposer: bool = True,
        view_data_batch_size: int = 10,
        tip_aware_proposer: bool = True,
        fewshot_aware_proposer: bool = True,
        requires_permission_to_run: bool | None = None,
        provide_traceback: bool | None = None,
    ) -> Module:
        """Return the best program found, with ``score``, ``trial_logs`` and ``candidate_programs`` attached."""
        if requires_permission_to_run:
            raise ValueError(
                "User confirmation is removed from MIPROv2. Please remove the 'requires_permission_to_run' argument."
            )
        plan = self._plan(student, trainset, valset, num_trials, max_bootstrapped_demos, max_labeled_demos, seed, minibatch)
        if plan.minibatch and minibatch_size > len(plan.valset):
            raise ValueError(f"Minibatch size cannot exceed the size of the valset. Valset size: {len(plan.valset)}.")
        switches = ProposerSwitches(program_aware_proposer, data_aware_proposer, tip_aware_proposer, fewshot_aware_proposer)
        run = _Run(self, plan, student, teacher, switches, view_data_batch_size, bool(provide_traceback))
        search = SearchSettings(
            num_trials=plan.num_trials,
            minibatch=plan.minibatch,
            minibatch_size=minibatch_size,
            full_eval_steps=minibatch_full_eval_steps,
            seed=plan.seed,
            n_startup_trials=_startup_trials(plan.num_trials),
            race_confidence=race_confidence_for(self.auto, self.race_confidence),
        )
        if self.checkpoint is not None:
            search.constant_liar = True  # processes sharing a study must not pile onto one trial
            # Other processes: this run's peers, or other runs on a database study.
            search.shared = self.checkpoint.peers > 1 or bool(self.checkpoint.storage_url)
            search.sampler_seed = plan.seed + self.checkpoint.worker
            search.run_id = self.checkpoint.run_id
            search.stale_after = self.checkpoint.stale_after
            search.worker = self.checkpoint.worker
        result = run.execute(search)
        self.last_result = result
        return result.program

    def _plan(
        self,
        student: Module,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None,
        num_trials: int | None,
        max_bootstrapped: int | None,
        max_labeled: int | None,
        seed: int | None,
        minibatch: bool,
    ) -> RunPlan:
        boot = self.max_bootstrapped_demos if max_bootstrapped is None else max_bootstrapped
        labeled = self.max_labeled_demos if max_labeled is None else max_labeled
        zero_shot = boot == 0 and labeled == 0
        if self.auto is None and (self.num_candidates is None or num_trials is None):
            if self.num_candidates is None:  # dspy's wording, whichever of the two is missing
                raise ValueError("If auto is None, num_candidates must also be provided.")
            suggested = num_trials_for(len(student.predictors()), self.num_candidates, zero_shot=zero_shot)
            raise ValueError(
                f"If auto is None, num_trials must also be provided. Given num_candidates={self.num_candidates}, "
                f"we'd recommend setting num_trials to ~{suggested}."
            )
        if self.auto is not None and (self.num_candidates is not None or num_trials is not None):
            raise ValueError(
                "If auto is not None, num_candidates and num_trials cannot be set, since they would be overridden by "
                "the auto settings. Please either set auto to None, or do not specify num_candidates and num_trials."
            )
        seed = self.seed if seed is None else seed  # seed=0 is a seed, not "unset"
        rng = random.Random(seed)
        train, val = _split(trainset, valset)
        if self.auto is None:
            n_instr = n_sets = int(self.num_candidates)  # type: ignore[arg-type]
            trials = int(num_trials)  # type: ignore[arg-type]
        else:
            preset = AUTO_PRESETS[self.auto]
            val = subsample(val, preset.val_size, rng)
            minibatch = len(val) > MIN_MINIBATCH_VALSET
            n_sets = preset.num_candidates
            n_instr = n_sets if zero_shot else int(n_sets * 0.5)
            trials = num_trials_for(len(student.predictors()), n_sets, zero_shot=zero_shot)
        return RunPlan(train, val, trials, n_instr, n_sets, minibatch, boot, labeled, zero_shot, seed)


def _split(trainset: Sequence[Example], valset: Sequence[Example] | None) -> tuple[list[Example], list[Example]]:
    if not trainset:
        raise ValueError("Trainset cannot be empty.")
    _check_examples("trainset", trainset)
    if valset is None:
        if len(trainset) < 2:
            raise ValueError("Trainset must have at least 2 examples if no valset specified.")
        return default_val_split(list(trainset))
    if len(valset) < 1:
        raise ValueError("Validation set must have at least 1 example.")
    _check_examples("valset", valset)
    return list(trainset), list(valset)


def _check_examples(where: str, examples: Sequence[Example]) -> None:
    for i, example in enumerate(examples):
        if not isinstance(example, Example) or example.input_keys is None:
            raise ConfigError(
                f"{where}[{i}] must be an Example with its inputs marked: Example(...).with_inputs('field', ...)"
            )


def _startup_trials(num_trials: int) -> int:
    """Random trials before TPE models the results.

    Optuna's default of 10 makes a light run (10 trials) pure random search; a third of
    the trials (at least 3, at most 10) leaves the rest to the model.
    """
    return max(3, min(10, num_trials // 3))


class _Run:
    """One compile() call: the LMs, the budget and the three stages in order."""

    def __init__(
        self,
        optimizer: MIPROv2,
        plan: RunPlan,
        student: Module,
        teacher: Module | None,
        switches: ProposerSwitches,
        view_data_batch_size: int,
        provide_traceback: bool,
    ) -> None:
        self.opt = optimizer
        self.plan = plan
        self.student = student.deepcopy()
        self.teacher = teacher
        self.switches = switches
        self.view_data_batch_size = view_data_batch_size
        self.provide_traceback = provide_traceback
        self.task_model = optimizer.task_model or default_lm()
        prompt_model = optimizer.prompt_model or config.current().prompt_model or self.task_model
        if prompt_model.usage is self.task_model.usage:
            prompt_model = prompt_model.copy(usage=UsageCounter())  # count prompt-model calls apart
        self.prompt_model = prompt_model
        self.rng = random.Random(plan.seed)
        self.budget = Budget(max_calls=optimizer.max_lm_calls, max_cost=optimizer.max_cost)
        self.example_scores: dict[Combo, list[float]] = {}

    def execute(self, search_settings: SearchSettings) -> OptimizationResult:
        started = time.monotonic()
        task_before, prompt_before = self.task_model.usage.snapshot(), self.prompt_model.usage.snapshot()
        with config.context(budget=self.budget, lm=self.task_model):
            if self.opt.checkpoint is None:
                space = self._candidates()
                search = self._searcher(space, search_settings)
                outcome = search.run(create_study(search_settings))
            else:
                space, search, outcome = self._shared_search(self.opt.checkpoint, search_settings)
        self.example_scores = search.memo.known_scores(self.plan.valset)
        task_usage = self.task_model.usage.snapshot() - task_before
        prompt_usage = self.prompt_model.usage.snapshot() - prompt_before
        return self._result(space, outcome, task_usage, prompt_usage, time.monotonic() - started)

    def _shared_search(
        self, checkpoint: Checkpoint, settings: SearchSettings
    ) -> tuple[SearchSpace, BayesianSearch, SearchOutcome]:
        """The search on the checkpoint's study; one-time steps are done by whoever comes first.

        The processes of a run arrive here together. The first takes the lock and makes LM
        calls, on its peers' share of threads too, since they only wait. The others load the
        LM client library while they wait, at low priority: seconds of CPU that would
        otherwise delay the first process's start on a small machine.
        """
        with checkpoint.setup_lock(on_wait=lambda: self.task_model.warm_up(background=True)):
            study = create_study(settings, checkpoint.storage(), checkpoint.study_name)
            shared = SearchStudy(study)
            if not checkpoint.storage_url:
                checkpoint.forget_old_claims()
            stale = fail_stale_trials(shared, checkpoint)
            if stale:
                log.info("resuming: %d unfinished trial(s) of an interrupted run marked failed", stale)
            saved = shared.load_candidates()
            if saved is None:
                fresh = self._candidates(threads=(self.opt.num_threads or 1) * checkpoint.peers)
                # Another machine may have published first; everyone uses the first published set.
                saved = shared.publish_candidates(fresh.instructions, fresh.demo_sets)
            space = self._space(*saved)
            search = self._searcher(space, settings)
        return space, search, search.run(study)

    def _candidates(self, threads: int | None = None) -> SearchSpace:
        """Bootstrap demo sets and propose instructions (on ``threads``, default ``num_threads``).

        The prompt model's questions about the data and the program do not need the demos:
        they are asked while the demos are bootstrapped.
        """
        threads = threads or self.opt.num_threads or 1
        proposer = self._proposer(threads)
        with alongside(proposer.prepare) as preparing:
            demo_sets = self._bootstrap(threads)
        with contextlib.suppress(BudgetExceeded):  # propose() ends on a spent budget itself
            preparing.result()
        return self._space(proposer.propose(demo_sets, self.plan.num_instruct_candidates), demo_sets)

    def _space(self, instructions: dict[str, list[str]], demo_sets: DemoSets) -> SearchSpace:
        return SearchSpace(self.student, instructions, demo_sets, search_demos=not self.plan.zero_shot)

    def _bootstrap(self, threads: int) -> DemoSets:
        plan = self.plan
        boot, labeled = plan.max_bootstrapped, plan.max_labeled
        if plan.zero_shot:
            boot = labeled = ZERO_SHOT_PROPOSER_DEMOS
        bootstrapper = Bootstrapper(
            student=self.student,
            trainset=plan.trainset,
            metric=self.opt.metric,
            teacher=self.teacher,
            max_labeled=labeled,
            metric_threshold=self.opt.metric_threshold,
            teacher_settings=self.opt.teacher_settings,
            max_errors=10 if self.opt.max_errors is None else self.opt.max_errors,
            rng=self.rng,
            num_threads=threads,
        )
        with config.context(lm=self.task_model):
            return bootstrapper.demo_sets(plan.num_fewshot_candidates, boot)

    def _proposer(self, threads: int) -> GroundedProposer:
        return GroundedProposer(
            prompt_model=self.prompt_model,
            program=self.student,
            trainset=self.plan.trainset,
            rng=self.rng,
            switches=self.switches,
            view_data_batch_size=self.view_data_batch_size,
            init_temperature=self.opt.init_temperature,
            num_threads=threads,
        )

    def _evaluator(self) -> Evaluate:
        return Evaluate(
            devset=self.plan.valset,
            metric=self.opt.metric,
            num_threads=self.opt.num_threads,
            max_errors=self.opt.max_errors,
            provide_traceback=self.provide_traceback,
        )

    def _searcher(self, space: SearchSpace, settings: SearchSettings) -> BayesianSearch:
        search = BayesianSearch(
            space=space,
            valset=self.plan.valset,
            evaluate=self._evaluator(),
            settings=settings,
            rng=self.rng,
            count_calls=lambda: self.task_model.usage.snapshot().calls + self.prompt_model.usage.snapshot().calls,
            on_trial=self.opt.on_trial,
        )
        if self.opt.checkpoint is not None:
            search.claim = self.opt.checkpoint.claim
        return search

    def _result(
        self,
        space: SearchSpace,
        outcome: SearchOutcome,
        task_usage: Usage,
        prompt_usage: Usage,
        seconds: float,
    ) -> OptimizationResult:
        combo = outcome.best_combo
        best = space.build(combo)
        candidates = sorted(
            (
                Candidate(
                    program=space.build(c),
                    score=score,
                    params=space.params_from_combo(c),
                    scores=_optional_tuple(self.example_scores.get(c)),
                    prompt_chars=space.prompt_chars(c),
                )
                for c, score in outcome.full_scores.items()
            ),
            key=lambda c: -c.score,
        )
        prompt_calls = prompt_usage.calls
        result = OptimizationResult(
            program=best,
            score=outcome.best_score,
            baseline_score=outcome.baseline_score,
            trial_logs=outcome.trial_logs,
            candidates=candidates,
            instruction_candidates=space.instructions,
            demo_candidates=space.demo_sets,
            num_trials=self.plan.num_trials,
            valset_size=len(self.plan.valset),
            valset_ids=[ex.uid for ex in self.plan.valset],
            # The run's budget sees every uncached request, including those of a teacher LM in
            # teacher_settings or of predictors with their own LM, which the usages above miss.
            total_calls=self.budget.calls,
            prompt_model_total_calls=prompt_calls,
            task_usage=task_usage,
            prompt_usage=prompt_usage,
            stopped_by_budget=outcome.stopped_by_budget or self.budget.exhausted,
            seconds=seconds,
            params=space.params_from_combo(combo),
        )
        _attach(best, result)
        if self.opt.log_dir:
            _write_logs(Path(self.opt.log_dir), result)
        return result


def _attach(program: Module, result: OptimizationResult) -> None:
    """DSPy-compatible attributes on the returned program."""
    program.score = result.score  # type: ignore[attr-defined]
    program.baseline_score = result.baseline_score  # type: ignore[attr-defined]
    program.trial_logs = [t.to_dict() for t in result.trial_logs]  # type: ignore[attr-defined]
    program.candidate_programs = result.candidate_programs  # type: ignore[attr-defined]
    program.mb_candidate_programs = [t.to_dict() for t in result.trial_logs if t.kind is TrialKind.MINIBATCH]  # type: ignore[attr-defined]
    program.total_calls = result.total_calls  # type: ignore[attr-defined]
    program.prompt_model_total_calls = result.prompt_model_total_calls  # type: ignore[attr-defined]


def _optional_tuple(scores: Sequence[float] | None) -> tuple[float, ...] | None:
    return tuple(scores) if scores is not None else None


def _write_logs(directory: Path, result: OptimizationResult) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for rank, candidate in enumerate(result.candidates):
        candidate.program.save(directory / f"candidate_{rank:02d}.json")
    logs = [t.to_dict() for t in result.trial_logs]
    (directory / "trial_logs.json").write_text(json.dumps(logs, indent=2) + "\n", encoding="utf-8")
