"""The pipeline: one target in one mode, run one way, from its declaration to its outcome.

Each mode is a list of steps; each step takes the values the one before handed on and
never calls back into its caller:

- **check** (``--mipro-check``): freshness (is there an entry, and was it optimized from
  what the target is now?) -> outcome.
- **gate** (plain ``pytest``): freshness -> score the locked program and judge it
  (:func:`gate.run_gate`) -> outcome.
- **optimize** (``--mipro-optimize``):

  1. :func:`split_holdout`: keep a holdout slice the search never sees;
  2. :func:`search`: run MIPROv2 on the rest, in the target's stored study;
  3. :func:`select`: among the candidates within one paired standard error of the best,
     the shortest prompt; adopt it over the current one only on a significant paired
     improvement on the holdout;
  4. :func:`lock_entry`: the one place a :class:`LockEntry` is built, once every process
     that worked on the target's study has added up what it spent;

  -> judge the locked program's validation score -> outcome.

Processes that help optimize a target (pytest-xdist workers) run :func:`assist`: they join
the search, then prefetch the holdout check into the response cache. Library code, no pytest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from . import config, report
from .declaration import Options, Target, split_optimizer_options
from .errors import BudgetExceeded, ConfigError, LockfileError, MiproError
from .example import Example
from .gate import GatePolicy, Judgement, judge, run_gate, score_bounds
from .lm import LM, Budget, Usage, UsageCounter
from .lockfile import Counts, ExampleScores, LockEntry, Lockfile, PlainData
from .optimizer.checkpoint import Checkpoint
from .optimizer.evaluate import Evaluate
from .optimizer.mipro import MIPROv2, OptimizationResult
from .optimizer.presets import DEFAULT_MINIBATCH_SIZE, default_val_split
from .optimizer.search import TrialLog, prefetch_valset
from .optimizer.study import STUDY_SCHEMA, TrialKind
from .outcome import HoldoutVerdict, Mode, Outcome, Selection, ShorterPick, TargetOutcome
from .program import Module
from .scoring import (
    Evaluation,
    RunConfig,
    evaluate_program,
    locked_program,
    predictor_locks,
    same_prompts,
    spending,
    stale_parts,
    target_fingerprint,
)
from .selection import holdout_decision, prefer_shorter

log = logging.getLogger("pytest_mipro")

HOLDOUT_FRACTION = 0.25
MIN_EXAMPLES_TO_SPLIT = 40  # below this a quarter is too few examples to show a real improvement
RETRY_HEADROOM = 0.25  # of a hard budget's reserve for the final evaluations: retried requests count as calls
_MIN_TRAIN = 2  # MIPROv2 needs two training examples when it splits off its own valset


# ---------------------------------------------------------------- how the pipeline reaches out


@dataclass(frozen=True)
class TrialProgress:
    """One finished search evaluation, with the target's spending so far (for progress lines)."""

    target: str
    trial: TrialLog
    number: int  # search trials so far (baseline and extra full evals not counted)
    total: int
    usage: Usage
    elapsed: float
    counted: bool = True  # False for the baseline and the periodic full evaluations


def _no_progress(progress: TrialProgress) -> None:
    return None


def _no_extra(entry: LockEntry) -> Mapping[str, object]:
    return {}


@dataclass(frozen=True)
class Hooks:
    """The outside world's say in an optimization: progress per trial, extra lock fields."""

    trial_finished: Callable[[TrialProgress], None] = _no_progress
    lock_extra: Callable[[LockEntry], Mapping[str, object]] = _no_extra


@dataclass(frozen=True)
class Judging:
    """How verdicts become outcomes: the regression margin, and whether INCONCLUSIVE fails."""

    min_drop: float = 0.02
    strict: bool = False


# ---------------------------------------------------------------- check and gate


def check(target: Target, nodeid: str, entry: LockEntry | None, lockfile: Lockfile, run: RunConfig) -> TargetOutcome:
    """``--mipro-check``: the entry is there and fresh; nothing is evaluated."""
    if entry is None:
        return _missing(target, nodeid, Mode.CHECK, lockfile)
    stale = _stale(target, nodeid, Mode.CHECK, entry, lockfile, run)
    if stale is not None:
        return stale
    return TargetOutcome(
        target.name, nodeid, Mode.CHECK, Outcome.PASSED, threshold=target.threshold, threshold_source="marker", entry=entry
    )


def gate(
    target: Target, nodeid: str, entry: LockEntry | None, lockfile: Lockfile, run: RunConfig, policy: GatePolicy, judging: Judging
) -> TargetOutcome:
    """A plain ``pytest``: score the locked program on its gate examples and judge it."""
    if entry is None:
        return _missing(target, nodeid, Mode.GATE, lockfile)
    stale = _stale(target, nodeid, Mode.GATE, entry, lockfile, run)
    if stale is not None:
        return stale
    gated = run_gate(target, entry, run, policy)
    outcome, message = _verdict(target.name, gated.judgement, gated.evaluation, policy.threshold_source, judging)
    return TargetOutcome(
        target=target.name,
        nodeid=nodeid,
        mode=Mode.GATE,
        outcome=outcome,
        message=message,
        threshold=policy.threshold,
        threshold_source=policy.threshold_source,
        entry=entry,
        evaluation=gated.evaluation,
        judgement=gated.judgement,
        gate=gated.stats,
        counts=gated.evaluation.counts,
    )


def gate_threshold(target: Target, entry: LockEntry, tolerance: float) -> tuple[float | None, str]:
    """The threshold to gate on and where it came from.

    The marker's threshold when it sets one. Without one, an entry that locks per-example
    scores is gated by the paired regression check alone (None); an older entry without
    them falls back to its locked score minus ``tolerance``.
    """
    if target.threshold is not None:
        return target.threshold, "marker"
    if entry.results.ids:
        return None, "none: checked for a regression against the locked per-example scores"
    if math.isnan(entry.score):
        return None, "none: the entry has neither a score nor per-example results"
    return max(0.0, entry.score - tolerance), f"locked score {entry.score:.3f} - tolerance {tolerance:g}"


def _missing(target: Target, nodeid: str, mode: Mode, lockfile: Lockfile) -> TargetOutcome:
    try:
        lockfile.require(target.name)
        detail = f"{lockfile.path} has an entry for {target.name!r} that this run cannot use"
    except LockfileError as exc:
        detail = str(exc)
    return TargetOutcome(target.name, nodeid, mode, Outcome.MISSING, report.missing_message(target.name, lockfile.path, detail))


def _stale(target: Target, nodeid: str, mode: Mode, entry: LockEntry, lockfile: Lockfile, run: RunConfig) -> TargetOutcome | None:
    """A STALE outcome when the entry was optimized from something that changed since; None when fresh."""
    changed = stale_parts(target, entry, run.task_lm)
    if not changed:
        return None
    message = report.stale_message(target.name, changed, lockfile.path)
    return TargetOutcome(target.name, nodeid, mode, Outcome.STALE, message, entry=entry, stale_parts=tuple(changed))


def _verdict(
    name: str, judgement: Judgement, evaluation: Evaluation, source: str, judging: Judging
) -> tuple[Outcome, str | None]:
    """FAILED on FAIL (and on INCONCLUSIVE under strict) with the reason; else PASSED with any warning."""
    if judgement.verdict == "PASS":
        return Outcome.PASSED, None
    message = report.verdict_message(name, judgement, evaluation, source=source, min_drop=judging.min_drop, strict=judging.strict)
    failed = judgement.verdict == "FAIL" or judging.strict
    return (Outcome.FAILED if failed else Outcome.PASSED), message


# ---------------------------------------------------------------- optimize, step 1: split


@dataclass(frozen=True)
class HoldoutSplit:
    """The target the search sees, and the slice kept from it. ``source``: fixture, split or none."""

    search: Target
    examples: list[Example]
    source: str
    labeled: int  # every labeled example of the target (examples, valset and a holdout fixture)


def split_holdout(target: Target) -> HoldoutSplit:
    """The holdout slice: the declared one, else a hash-seeded quarter of the labeled examples (>= 40).

    The quarter is the examples whose hash (of the target name and the example id) is
    smallest: a split seeded by the name that ignores file order and the optimizer seed, so
    an example stays held out run after run and a prompt locked earlier never saw the holdout.
    """
    valset = list(target.valset or [])
    if target.holdout is not None:
        labeled = len(target.examples) + len(valset) + len(target.holdout)
        return HoldoutSplit(target, list(target.holdout), "fixture", labeled)
    labeled = len(target.examples) + len(valset)
    if labeled < MIN_EXAMPLES_TO_SPLIT:
        return HoldoutSplit(target, [], "none", labeled)
    held = _held_out(target, valset, round(HOLDOUT_FRACTION * labeled))
    search = replace(
        target,
        examples=[ex for i, ex in enumerate(target.examples) if ("examples", i) not in held],
        valset=None if target.valset is None else [ex for i, ex in enumerate(valset) if ("valset", i) not in held],
    )
    search = replace(search, options=_fit_minibatch(search))
    chosen = [target.examples[i] if part == "examples" else valset[i] for part, i in sorted(held)]
    return HoldoutSplit(search, chosen, "split", labeled)


def _held_out(target: Target, valset: list[Example], size: int) -> set[tuple[str, int]]:
    """(part, index) of the examples to hold out: drawn from examples and valset together,
    leaving the search enough of each."""
    pool = [("examples", i, ex) for i, ex in enumerate(target.examples)] + [("valset", i, ex) for i, ex in enumerate(valset)]
    pool.sort(key=lambda item: (_rank(target.name, item[2]), item[0], item[1]))
    room = {"examples": len(target.examples) - _MIN_TRAIN, "valset": len(valset) - 1}
    held: set[tuple[str, int]] = set()
    for part, index, _ in pool:
        if len(held) == size:
            break
        if room[part] > 0:
            held.add((part, index))
            room[part] -= 1
    return held


def _fit_minibatch(search: Target) -> Options:
    """The search's options, with full evaluations when the split left fewer validation
    examples than a minibatch: MIPROv2 refuses a minibatch larger than its valset, and the
    target's author, who had enough examples, did not cause that."""
    options = search.options
    size = options.get("minibatch_size", DEFAULT_MINIBATCH_SIZE)
    if not options.get("minibatch", True) or not isinstance(size, int) or _search_valset_size(search) >= size:
        return options
    return {**options, "minibatch": False}


def _search_valset_size(search: Target) -> int:
    if search.valset is not None:
        return len(search.valset)
    return len(default_val_split(search.examples)[1])  # what MIPROv2 cuts from the examples


def _rank(name: str, example: Example) -> str:
    return hashlib.sha256(f"pytest-mipro holdout {name} {example.uid}".encode()).hexdigest()


# ---------------------------------------------------------------- optimize, step 2: search


@dataclass(frozen=True)
class Searched:
    """What the search found, and what running it in this process spent."""

    result: OptimizationResult
    valset: list[Example]
    optimizer_record: dict[str, object]
    prompt_model: str
    checkpoint: Checkpoint | None
    counts: Counts


@dataclass(frozen=True)
class SearchPlan:
    """The MIPROv2 arguments for a target's search, its prompt model and its stored study."""

    init: Options
    compile: Options
    prompt_lm: LM
    checkpoint: Checkpoint | None


def plan_search(target: Target, run: RunConfig) -> SearchPlan:
    init, compile_ = optimizer_arguments(target, run)
    prompt_lm = run.prompt_lm or run.task_lm.copy(usage=UsageCounter())  # own counter: tokens per model
    return SearchPlan(init, compile_, prompt_lm, _checkpoint(target, run, init, compile_, prompt_lm))


def search(target: Target, run: RunConfig, plan: SearchPlan, on_trial: Callable[[TrialProgress], None] = _no_progress) -> Searched:
    """Run MIPROv2 on the target (in its stored study, when the run keeps studies).

    After each trial this process's spending so far goes to the study's ledger, so a run
    that is killed still counts in the entry that a resumed run locks.
    """
    init, compile_, prompt_lm = plan.init, plan.compile, plan.prompt_lm
    if plan.checkpoint is not None:
        on_trial = _also(on_trial, _recording(plan.checkpoint))
    counter = _TrialCounter(target.name, _expected_trials(target, init, compile_), on_trial, [run.task_lm, prompt_lm])
    optimizer = MIPROv2(target.metric, prompt_model=prompt_lm, task_model=run.task_lm, on_trial=counter, checkpoint=plan.checkpoint, **init)  # type: ignore[arg-type]  # options were checked against MIPROv2's signature
    with config.context(cache=run.cache):
        optimizer.compile(target.program, trainset=target.examples, valset=target.valset, **compile_)  # type: ignore[arg-type]
    result = optimizer.last_result
    assert result is not None  # compile() always sets it
    return Searched(
        result=result,
        valset=_by_ids(target, result.valset_ids),
        optimizer_record=_optimizer_record(target.options, init.get("auto"), compile_.get("seed", optimizer.seed), result),
        prompt_model=prompt_lm.model,
        checkpoint=plan.checkpoint,
        counts=Counts(result.task_usage + result.prompt_usage, result.seconds),
    )


def _recording(checkpoint: Checkpoint) -> Callable[[TrialProgress], None]:
    def record(progress: TrialProgress) -> None:
        checkpoint.record_spending(progress.usage)

    return record


def _also(first: Callable[[TrialProgress], None], second: Callable[[TrialProgress], None]) -> Callable[[TrialProgress], None]:
    def both(progress: TrialProgress) -> None:
        second(progress)
        first(progress)

    return both


def optimizer_arguments(target: Target, run: RunConfig) -> tuple[Options, Options]:
    """The target's options over the run's defaults (a target's own choice wins)."""
    init, compile_ = split_optimizer_options(target.options)
    if "auto" not in init:
        # Fixing the trial count or candidates means the user opted out of the auto presets.
        explicit = "num_candidates" in init or "num_trials" in compile_
        init["auto"] = None if explicit else run.auto
    defaults = {"seed": run.seed, "num_threads": run.threads, "max_lm_calls": run.max_calls, "max_cost": run.max_cost}
    for key, value in defaults.items():
        if value is not None:
            init.setdefault(key, value)
    return init, compile_


def _expected_trials(target: Target, init: Options, compile_: Options) -> int:
    from .optimizer.presets import AUTO_PRESETS, num_trials_for

    auto = init.get("auto")
    if auto is None:
        trials = compile_.get("num_trials")
        return trials if isinstance(trials, int) else 0
    boot = compile_.get("max_bootstrapped_demos", init.get("max_bootstrapped_demos", 4))
    labeled = compile_.get("max_labeled_demos", init.get("max_labeled_demos", 4))
    n = AUTO_PRESETS[str(auto)].num_candidates
    return num_trials_for(len(target.program.predictors()), n, zero_shot=boot == 0 and labeled == 0)


def _by_ids(target: Target, ids: Sequence[str]) -> list[Example]:
    pool = {ex.uid: ex for ex in target.labeled}
    return [pool[i] for i in ids]


def _checkpoint(target: Target, run: RunConfig, init: Options, compile_: Options, prompt_lm: LM) -> Checkpoint | None:
    """The target's stored study, named after everything that shapes the search.

    Any change to the program, data, metric, models or optimizer settings gives a new study,
    so only a run of the very same optimization resumes an old one.
    """
    if run.checkpoint_root is None and run.storage_url is None:
        return None
    shape = {
        "fingerprint": target_fingerprint(target, run.task_lm).hash,
        "prompt_model": [prompt_lm.model, prompt_lm.params()],
        "study_schema": STUDY_SCHEMA,
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


def _optimizer_record(options: Options, auto: object, seed: object, result: OptimizationResult) -> dict[str, object]:
    """auto, seed and trials first, then every other option the target set (plain values only).

    Run-wide settings such as threads or the budget are left out: they do not change what is
    searched, and a lock should not differ by the machine that wrote it.
    """
    record: dict[str, object] = {"auto": auto, "seed": seed, "trials": result.num_trials}
    for key, value in sorted(options.items()):
        if key not in record and isinstance(value, (str, int, float, bool, type(None))):
            record[key] = value
    if result.stopped_by_budget:
        record["stopped_by_budget"] = True
    return record


class _TrialCounter:
    """Turns the optimizer's trial logs into :class:`TrialProgress` for ``on_trial``."""

    def __init__(self, name: str, total: int, on_trial: Callable[[TrialProgress], None], lms: list[LM]) -> None:
        self.name, self.total, self.on_trial, self.lms = name, total, on_trial, lms
        self.before = [lm.usage.snapshot() for lm in lms]
        self.started = time.monotonic()
        self.count = 0
        self.search_kind: TrialKind | None = None  # minibatch, or full when the valset is too small for minibatches

    def __call__(self, trial: TrialLog) -> None:
        if self.search_kind is None and trial.kind is not TrialKind.BASELINE:
            self.search_kind = trial.kind
        counted = trial.kind is self.search_kind
        self.count += counted
        usage = sum((lm.usage.snapshot() - b for lm, b in zip(self.lms, self.before, strict=True)), Usage())
        elapsed = time.monotonic() - self.started
        self.on_trial(TrialProgress(self.name, trial, self.count, self.total, usage, elapsed, counted))


# ---------------------------------------------------------------- optimize, step 3: select


@dataclass(frozen=True)
class Pick:
    """A program to lock, with its validation evaluation."""

    program: Module
    evaluation: Evaluation


@dataclass(frozen=True)
class Selected:
    """The program to lock, how it was chosen, the holdout record for the lock, and the cost."""

    pick: Pick
    selection: Selection
    holdout: dict[str, object]
    counts: Counts


def select(target: Target, split: HoldoutSplit, searched: Searched, current: LockEntry | None, run: RunConfig) -> Selected:
    """The one-standard-error rule over the search's candidates, then the holdout check."""
    best = Pick(searched.result.program, evaluate_program(target, searched.result.program, searched.valset, run))
    pick, one_se, shorter = _shortest_close(target, split, best, searched, run)
    spent = best.evaluation.counts + shorter
    decision: HoldoutVerdict | None = None
    holdout: dict[str, object] = {}
    if split.examples:
        pick, decision, holdout, checked = _holdout_check(target, current, pick, split, searched.valset, run)
        spent += checked
    selection = Selection(split.source, split.labeled, len(split.examples), len(searched.valset), MIN_EXAMPLES_TO_SPLIT, one_se, decision)
    return Selected(pick, selection, holdout, spent)


def _shortest_close(
    target: Target, split: HoldoutSplit, best: Pick, searched: Searched, run: RunConfig
) -> tuple[Pick, ShorterPick | None, Counts]:
    candidates = searched.result.candidates
    if len(candidates) < 2:
        return best, None, Counts()
    chosen, top = prefer_shorter(candidates), max(candidates, key=lambda c: c.score)
    note = ShorterPick(chosen.score, chosen.prompt_chars, top.score, top.prompt_chars)
    if same_prompts(chosen.program, best.program):
        return best, note, Counts()
    # Optional, so outside the budget's reserve: scoring it costs one more validation pass,
    # as the best's did, so it and what must follow (the holdout check) cost the reserve again.
    if not _affordable(math.ceil(_final_calls(target, split) * (1 + RETRY_HEADROOM))):
        log.info("mipro target %r: the budget left does not cover scoring a shorter close candidate; keeping the best", target.name)
        return best, None, Counts()
    evaluation = evaluate_program(target, chosen.program, searched.valset, run)
    return Pick(chosen.program, evaluation), note, evaluation.counts


def one_se_pick(result: OptimizationResult) -> Module:
    """The program the one-standard-error rule takes (the search's best when there is no choice)."""
    if len(result.candidates) < 2:
        return result.program
    return prefer_shorter(result.candidates).program


def _holdout_check(
    target: Target, current: LockEntry | None, pick: Pick, split: HoldoutSplit, valset: list[Example], run: RunConfig
) -> tuple[Pick, HoldoutVerdict, dict[str, object], Counts]:
    """Adopt ``pick`` over the current program only on a significant paired holdout improvement."""
    incumbent, against = current_program(target, current, run)
    new = evaluate_program(target, pick.program, split.examples, run)
    same = same_prompts(pick.program, incumbent)
    old = new if same else evaluate_program(target, incumbent, split.examples, run)
    spent = new.counts if same else new.counts + old.counts
    decision = holdout_decision(*_paired(new, old))
    adopted = same or decision.adopt
    if not adopted:
        kept = evaluate_program(target, incumbent, valset, run)
        spent += kept.counts
        pick = Pick(incumbent, kept)
    verdict = HoldoutVerdict(
        against,
        same,
        adopted,
        decision.n,
        _round(decision.new_score),
        _round(decision.old_score),
        _round(decision.improvement),
        _round(decision.lower_bound),
    )
    locked = new if adopted else old
    other = decision.old_score if adopted else decision.new_score
    return pick, verdict, _holdout_lock(locked, split.source, verdict, other), spent


def _paired(new: Evaluation, old: Evaluation) -> tuple[list[float], list[float]]:
    """Both evaluations' scores on the examples both scored (a provider error leaves one out)."""
    theirs = old.score_by_id()
    ids = [uid for uid in new.ids if uid in theirs]
    mine = new.score_by_id()
    return [mine[uid] for uid in ids], [theirs[uid] for uid in ids]


def current_program(target: Target, current: LockEntry | None, run: RunConfig) -> tuple[Module, str]:
    """The current lock entry's program when its structure still fits, else the unoptimized one."""
    if current is not None and "structure" not in stale_parts(target, current, run.task_lm):
        try:
            return locked_program(target, current), "lock"
        except MiproError:
            pass  # predictors renamed: the old prompts no longer load
    return target.program.deepcopy(), "unoptimized"


def _holdout_lock(evaluation: Evaluation, source: str, verdict: HoldoutVerdict, other: float) -> dict[str, object]:
    """What the lock keeps of the holdout check: the locked program's holdout score with its bounds."""
    return {
        "source": source,
        "n": evaluation.n,
        "score": _round(evaluation.score),
        "bounds": [_round(b) for b in score_bounds(evaluation.scores)],
        "compared_with": verdict.against,
        "other_score": _round(other),
        "improvement": verdict.improvement,
        "lower_bound": verdict.lower_bound,
        "adopted": verdict.adopted,
        "ids": evaluation.ids,
        "scores": evaluation.scores,
    }


def _round(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None


# ---------------------------------------------------------------- optimize, step 4: lock


def lock_entry(
    target: Target,
    run: RunConfig,
    searched: Searched,
    selected: Selected,
    counts: Counts,
    lock_extra: Callable[[LockEntry], Mapping[str, object]],
) -> LockEntry:
    """The lock entry for the selected program: the one place an entry is built.

    ``counts`` is what the whole optimization cost. Hooks see the entry and return the
    fields to add under ``extra``.
    """
    evaluation = selected.pick.evaluation
    baseline = searched.result.baseline_score
    entry = LockEntry(
        name=target.name,
        predictors=predictor_locks(selected.pick.program),
        score=evaluation.score,
        fingerprint=target_fingerprint(target, run.task_lm),
        baseline_score=None if baseline is None or math.isnan(baseline) else baseline,
        threshold=target.threshold,
        n=evaluation.n,
        task_model=run.task_lm.model,
        prompt_model=searched.prompt_model,
        optimizer=searched.optimizer_record,
        counts=counts,
        results=ExampleScores(tuple(evaluation.ids), tuple(evaluation.scores)),
        bounds=_rounded_bounds(evaluation.scores),
        holdout=selected.holdout,
    )
    return replace(entry, extra=_extra(entry, lock_extra))


def _rounded_bounds(scores: Sequence[float]) -> tuple[float, float]:
    lower, upper = score_bounds(scores)
    return round(lower, 6), round(upper, 6)


def _extra(entry: LockEntry, lock_extra: Callable[[LockEntry], Mapping[str, object]]) -> PlainData:
    """What hooks add under ``extra``: the mappings they return (and, deprecated, what they
    wrote into ``entry.extra`` directly)."""
    scratch: dict[str, object] = {}
    returned = lock_extra(replace(entry, extra=scratch))
    if scratch:
        warnings.warn(
            "pytest_mipro_lock_entry: filling entry.extra is deprecated; return a mapping of the fields to add instead",
            DeprecationWarning,
            stacklevel=2,
        )
    return {**scratch, **returned}


# ---------------------------------------------------------------- optimize: the whole mode


def optimize(
    target: Target, nodeid: str, current: LockEntry | None, run: RunConfig, hooks: Hooks, judging: Judging
) -> TargetOutcome:
    """``--mipro-optimize``: split, search, select, lock; then judge the locked program."""
    split = split_holdout(target)
    plan = plan_search(split.search, run)
    budget, plan = target_budget(target, split, plan)
    with config.context(**({"budget": budget} if budget is not None else {})):
        searched = search(split.search, run, plan, hooks.trial_finished)
        try:
            if budget is not None:
                budget.release_hold()
            selected = select(target, split, searched, current, run)
        except BudgetExceeded as exc:
            raise BudgetExceeded(
                f"mipro target {target.name!r}: {exc} before the final evaluations were done; nothing was locked. "
                "Raise the budget (--mipro-budget or max_lm_calls=/max_cost=) and rerun: the study and the cache are kept"
            ) from exc
    spent = _total_counts(searched, selected)
    entry = lock_entry(target, run, searched, selected, spent, hooks.lock_extra)
    if current is not None and _degraded(searched, selected) and entry.predictors == current.predictors:
        entry = current  # a run with provider errors keeps the entry as it was, never rescored
    evaluation = selected.pick.evaluation
    judgement = judge([[s] for s in evaluation.scores], threshold=target.threshold, before=None, min_drop=judging.min_drop)
    outcome, message = _verdict(target.name, judgement, evaluation, "marker", judging)
    return TargetOutcome(
        target=target.name,
        nodeid=nodeid,
        mode=Mode.OPTIMIZE,
        outcome=outcome,
        message=message,
        threshold=target.threshold,
        threshold_source="marker",
        entry=entry,
        evaluation=evaluation,
        judgement=judgement,
        selection=selected.selection,
        trials=tuple(searched.result.trial_logs),
        counts=spent,
    )


def target_budget(target: Target, split: HoldoutSplit, plan: SearchPlan) -> tuple[Budget | None, SearchPlan]:
    """The target's hard budget, and the plan with a search budget that leaves room for the end.

    ``max_lm_calls``/``max_cost`` bound everything optimizing the target sends, the final
    evaluations included (the pick on the validation set, the pick and the current program
    on the holdout). The search gets what is left after a reserve for those (for a cost
    limit: the reserve's calls at the mean cost of a call so far); a calls budget too small
    for the reserve is an error before any LM call.
    """
    max_calls, max_cost = plan.init.get("max_lm_calls"), plan.init.get("max_cost")
    if max_calls is None and max_cost is None:
        return None, plan
    final_calls = _final_calls(target, split)
    # Retried requests count too: a quarter more keeps a flaky provider's retries from
    # leaving the final evaluations short (and the run without a lock entry).
    reserve = math.ceil(final_calls * (1 + RETRY_HEADROOM))
    # A cost limit holds back the reserve's calls at the mean price so far; released in select().
    budget = Budget(max_calls=max_calls, max_cost=max_cost, held_calls=reserve if max_cost is not None else 0)  # type: ignore[arg-type]  # checked by the declaration
    if not isinstance(max_calls, int):
        return budget, plan
    if max_calls <= reserve:
        raise ConfigError(
            f"mipro target {target.name!r}: max_lm_calls={max_calls} cannot pay for the final evaluations "
            f"({final_calls} calls: the pick on {_search_valset_size(split.search)} validation examples"
            + (f", two programs on {len(split.examples)} holdout examples, the one kept on validation" if split.examples else "")
            + f", plus {reserve - final_calls} for retries) and leave any for the search; raise the budget above {reserve}"
        )
    return budget, replace(plan, init={**plan.init, "max_lm_calls": max_calls - reserve})


def _final_calls(target: Target, split: HoldoutSplit) -> int:
    """The most calls selection must make after the search, the one-standard-error pick aside
    (it is only scored when the budget affords it): the pick on the validation set and, with a
    holdout, the pick and the current program on it, and the one kept on the validation set."""
    valset = _search_valset_size(split.search)
    per_predictor = valset + (2 * len(split.examples) + valset if split.examples else 0)
    return len(target.program.predictors()) * per_predictor


def _affordable(calls: int) -> bool:
    budget = config.current().budget
    return budget is None or budget.affords(calls)


def _degraded(searched: Searched, selected: Selected) -> bool:
    """Whether any LM call of the optimization failed after its retries (below the rate that stops it)."""
    return (searched.counts + selected.counts).usage.errors > 0


def _total_counts(searched: Searched, selected: Selected) -> Counts:
    """What optimizing the target cost: this process's search and selection, plus what every
    other process of the study spent (helpers of this run, and earlier runs it resumed)."""
    mine = searched.counts + selected.counts
    checkpoint = searched.checkpoint
    if checkpoint is None:
        return mine
    checkpoint.record_spending(mine.usage)
    checkpoint.seal_and_wait_for_helpers()
    # Helpers' wall time overlaps this process's, so only their usage is added.
    return Counts(checkpoint.total_spending(), mine.seconds)


# ---------------------------------------------------------------- helping another process


def assist(target: Target, current: LockEntry | None, run: RunConfig) -> None:
    """Work on ``target``'s shared study next to the process that locks it; lock nothing.

    The locking process searches without the holdout slice: help with that same study, then
    prefetch the holdout check that follows it. What this process spends is recorded in the
    study, where the locking process adds it up before it builds the entry.
    """
    if run.checkpoint_root is None and run.storage_url is None:
        raise MiproError(f"mipro target {target.name!r}: helping needs a shared study (a checkpoint folder or --mipro-storage)")
    split = split_holdout(target)
    budget, plan = target_budget(target, split, plan_search(split.search, run))
    checkpoint = plan.checkpoint
    assert checkpoint is not None  # made from the folder or URL checked above
    with checkpoint.helping() as wanted, config.context(**({"budget": budget} if budget is not None else {})):
        if not wanted:
            return  # the target is locked already: nothing left to help with
        searched = search(split.search, run, plan)
        spent = searched.counts.usage + _prefetch_holdout(target, split, searched, current, run)
        checkpoint.record_spending(spent)


def _prefetch_holdout(target: Target, split: HoldoutSplit, searched: Searched, current: LockEntry | None, run: RunConfig) -> Usage:
    """Fill the response cache for the holdout check, from the last example backwards.

    The locking process scores the picked program, then the current one, on the holdout from
    the first example on. Helpers finish the shared search with it and read the same study,
    so they know both programs too; the run's claims keep two helpers off one example.
    """
    checkpoint = searched.checkpoint
    if not split.examples or checkpoint is None or not run.cache:
        return Usage()  # without the cache nothing would be shared
    pick = one_se_pick(searched.result)
    incumbent, _ = current_program(target, current, run)
    roles = [("new", pick)] if same_prompts(pick, incumbent) else [("new", pick), ("old", incumbent)]
    return sum((_prefetch(target, program, split.examples, run, checkpoint, role) for role, program in roles), Usage())


def _prefetch(target: Target, program: Module, examples: list[Example], run: RunConfig, checkpoint: Checkpoint, role: str) -> Usage:
    """Score ``program`` on ``examples`` from the back, only to fill the cache; returns the usage."""
    evaluate = Evaluate(devset=examples, metric=target.metric, num_threads=run.threads, max_errors=len(examples))

    def claim(uid: str) -> bool:
        return checkpoint.claim(f"holdout-{role}-{uid}")

    def work() -> None:
        prefetch_valset(evaluate, program, examples, wanted=lambda: True, claim=claim)

    return spending(program, run, work)[1]
