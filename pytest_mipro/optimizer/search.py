"""Stage 3: Bayesian search (Optuna TPE) over instruction x demo-set choices per predictor.

The loop is ask/tell, so evaluation stays ours: minibatch trials, and every
``full_eval_steps`` trials a full validation eval of the best-averaging combination not
yet fully evaluated, fed back to TPE with its true parameters; the unoptimized program is
scored last. Better than the reference: no (combination, example) pair is ever predicted
twice in a run (full evals reuse minibatch results), every evaluation is raced (it stops
once the candidate is, at ``race_confidence``, worse than the best so far), when every
combination has been fully evaluated the step is skipped instead of crashing, and a spent
budget ends the search with the best program so far.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna import Study
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial, Trial

from ..errors import BudgetExceeded
from ..example import Example
from ..program import Module
from ..stats import rate_bounds
from .evaluate import Evaluate, EvaluationResult, ExampleResult, TooManyErrors
from .study import (
    EVALUATED,
    WHOLE_VALSET,
    SearchStudy,
    TrialKind,
    elapsed_of,
    examples_scored,
    is_pruned,
    kind_of,
    lm_calls_of,
    new_study,
    params_of,
    progress_of,
    value_of,
)

log = logging.getLogger("pytest_mipro")

Combo = tuple[tuple[int, int], ...]  # per predictor: (instruction index, demo-set index)
HELP_ROUNDS = 8  # an idle process helps with a running minibatch trial that has this many rounds of calls left


@dataclass(frozen=True)
class TrialLog:
    """One evaluation in the search: a minibatch trial, a full eval, or the baseline."""

    number: int
    kind: TrialKind
    params: dict[str, int]
    score: float
    num_examples: int
    best_full_score: float
    lm_calls: int
    elapsed: float
    pruned: bool = False  # racing stopped it before its last example

    @property
    def label(self) -> str:
        """``minibatch``, or ``minibatch-pruned`` when racing stopped the evaluation early."""
        return f"{self.kind.value}-pruned" if self.pruned else self.kind.value

    def to_dict(self) -> dict[str, object]:
        return {
            "number": self.number,
            "kind": self.kind.value,
            "pruned": self.pruned,
            "params": dict(self.params),
            "score": self.score,
            "num_examples": self.num_examples,
            "best_full_score": self.best_full_score,
            "lm_calls": self.lm_calls,
            "elapsed": round(self.elapsed, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TrialLog:
        from .. import plain

        return plain.load(cls, data)


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

    def choices(self) -> dict[str, int]:
        """Per search parameter, how many values it takes (instruction and demo-set indices)."""
        counts = {}
        for i, name in enumerate(self.names):
            counts[f"{i}_predictor_instruction"] = len(self.instructions[name])
            if self.search_demos:
                counts[f"{i}_predictor_demos"] = max(1, len(self.demo_sets[name]))
        return counts

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
        for (name, predictor), (instruction, demos) in zip(candidate.named_predictors(), combo, strict=True):
            predictor.instructions = self.instructions[name][instruction]
            sets = self.demo_sets.get(name) or [list(predictor.demos)]
            predictor.demos = list(sets[demos])
        return candidate

    def prompt_chars(self, combo: Combo) -> int:
        """Prompt size of a combination (instructions plus demo text), for tie-breaking."""
        total = 0
        for name, (instruction, demos) in zip(self.names, combo, strict=True):
            total += len(self.instructions[name][instruction])
            sets = self.demo_sets.get(name) or [[]]
            total += sum(len(str(d)) for d in sets[demos])
        return total


@dataclass
class ScoreMemo:
    """Per-combination results by example id, so no prediction is paid for twice in a run."""

    results: dict[Combo, dict[str, ExampleResult]] = field(default_factory=dict)
    # Scored, but past the example where a race stopped: not known to the search until an
    # evaluation asks for them, so it decides as if they had never been scored.
    set_aside: dict[Combo, dict[str, ExampleResult]] = field(default_factory=dict)

    def evaluate(
        self,
        evaluate: Evaluate,
        space: SearchSpace,
        combo: Combo,
        examples: Sequence[Example],
    ) -> EvaluationResult:
        """``combo``'s result on ``examples``, scoring (one at a time) only those not known or set aside."""
        results = list(self.iterate(evaluate, space, combo, examples))
        score = sum(r.score for r in results) / len(results) if results else 0.0
        return EvaluationResult(score, results)

    def iterate(
        self,
        evaluate: Evaluate,
        space: SearchSpace,
        combo: Combo,
        examples: Sequence[Example],
        pool: Executor | None = None,
    ) -> Generator[ExampleResult, None, None]:
        """``combo``'s result on each example in order, each known once given (see :meth:`Evaluate.iterate`).

        Known and set-aside results come at once; the others are scored. What threads scored
        past the point where the caller stopped is set aside.
        """
        known = self.results.setdefault(combo, {})
        spare = self.set_aside.setdefault(combo, {})
        missing = [ex for ex in examples if ex.uid not in known and ex.uid not in spare]
        to_score = {ex.uid for ex in missing}
        # The program is built (a deep copy) only when something is left to score.
        fresh: Generator[ExampleResult, None, None] = (
            evaluate.iterate(space.build(combo), missing, pool, on_dropped=lambda r: spare.__setitem__(r.example.uid, r))
            if missing
            else _no_results()
        )
        try:
            for ex in examples:
                if ex.uid not in known:
                    known[ex.uid] = next(fresh) if ex.uid in to_score else spare.pop(ex.uid)
                yield known[ex.uid]
        finally:
            fresh.close()

    def known_scores(self, examples: Sequence[Example]) -> dict[Combo, list[float]]:
        """Per-example scores of every combination already scored on all of ``examples``."""
        scores = {}
        for combo, known in self.results.items():
            if all(ex.uid in known for ex in examples):
                scores[combo] = [known[ex.uid].score for ex in examples]
        return scores


def _no_results() -> Generator[ExampleResult, None, None]:
    yield from ()


@dataclass
class SearchSettings:
    num_trials: int
    minibatch: bool = True
    minibatch_size: int = 35
    full_eval_steps: int = 5
    seed: int = 9
    n_startup_trials: int = 10
    constant_liar: bool = False
    # Other processes work on the same study: an evaluation reports its progress as it goes
    # and races against theirs (finished and in flight), re-read every ``poll_interval``.
    shared: bool = False
    sampler_seed: int | None = None  # differs per process when several share a study
    run_id: str = ""
    worker: int = 0  # which of the processes sharing the study (recorded on each trial it runs)
    poll_interval: float = 0.2  # seconds between looks at a study another process is still working on
    stale_after: float = 3600.0  # a trial running longer than this belongs to a dead process: not waited for
    # Stop an evaluation once the candidate is, at this one-sided confidence, worse on the
    # valset than the best so far. None stops only evaluations that certainly cannot win.
    race_confidence: float | None = 0.95


@dataclass
class SearchOutcome:
    best_combo: Combo
    best_score: float
    baseline_score: float
    full_scores: dict[Combo, float]
    trial_logs: list[TrialLog]
    stopped_by_budget: bool = False


@dataclass
class BayesianSearch:
    """Runs the trials against an Optuna study, which holds all search state.

    Every trial carries its kind (baseline, minibatch or full) as a user attribute, so the
    scores per combination are read back from the study. That makes a search resumable
    (a study in storage picks up where it stopped) and shareable (several processes can
    work on one study: each asks for trials until the study holds ``num_trials``).
    """

    space: SearchSpace
    valset: Sequence[Example]
    evaluate: Evaluate
    settings: SearchSettings
    rng: random.Random
    count_calls: Callable[[], int] = lambda: 0
    on_trial: Callable[[TrialLog], None] | None = None
    claim: Callable[[str], bool] = lambda key: True  # True once per key across the processes sharing the study
    memo: ScoreMemo = field(default_factory=ScoreMemo)
    trial_logs: list[TrialLog] = field(default_factory=list)
    _prefetched: set[int] = field(default_factory=set)  # trial numbers this process helped with
    _shuffled_valset: list[Example] | None = None
    _pool: ThreadPoolExecutor | None = None
    _started: float = field(default_factory=time.monotonic)

    def run(self, optuna_study: Study | None = None) -> SearchOutcome:
        study = SearchStudy(optuna_study if optuna_study is not None else create_study(self.settings))
        stopped = False
        try:
            while True:
                while self._claim_trial(study) or self._others_still_working(study):
                    pass
                # Normally queued with the last trial; this catches a resumed or raced study without it.
                if not self.ensure_baseline(study):
                    break
        except BudgetExceeded as exc:
            log.warning("%s; returning the best program found so far", exc)
            stopped = True
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
        return self.outcome(study, stopped)

    def outcome(self, study: SearchStudy, stopped: bool = False) -> SearchOutcome:
        """The result so far, read from the study (the best full score wins; ties go to the earliest)."""
        full = _scores_by_kind(study, self.space, WHOLE_VALSET, pruned=False)
        baseline = self.space.baseline()
        full_scores = {combo: scores[-1] for combo, scores in full.items()}
        best_combo = max(full_scores, key=lambda c: (full_scores[c], c == baseline)) if full_scores else baseline
        # A baseline stopped by racing keeps its score on the examples it saw.
        pruned_baseline = _scores_by_kind(study, self.space, (TrialKind.BASELINE,), pruned=True).get(baseline, [float("nan")])
        return SearchOutcome(
            best_combo=best_combo,
            best_score=full_scores.get(best_combo, float("nan")),
            baseline_score=full_scores.get(baseline, pruned_baseline[-1]),
            full_scores=full_scores,
            trial_logs=trial_logs_from_study(study, self.space),
            stopped_by_budget=stopped,
        )

    def ensure_baseline(self, study: SearchStudy) -> bool:
        """Queue the unoptimized program's full evaluation once per study; True if this queued it.

        dspy.MIPROv2 scores it first. Scored last, it races against the best program
        found: a baseline that cannot win (the usual case) costs a few examples, not the
        whole valset, and one that can is scored in full and kept when nothing beats it.
        """
        if study.has_baseline():
            return False
        study.enqueue(self.space.params_from_combo(self.space.baseline()), TrialKind.BASELINE)
        return True

    def _claim_trial(self, study: SearchStudy) -> bool:
        """Run the next trial if the study still needs one; False once it holds ``num_trials``."""
        if len(study.claimed()) >= self.settings.num_trials and not study.has_waiting():
            return False
        trial = study.ask(self.space.choices(), self.settings.run_id, self.settings.worker)
        queued = kind_of(trial)
        if queued is TrialKind.BASELINE:
            self._evaluate_trial(study, trial, self.space.baseline(), self._full_order(), TrialKind.BASELINE)
            return True
        if queued is TrialKind.QUEUED_FULL:
            self._evaluate_trial(study, trial, self.space.combo_from_params(trial.params), self._full_order(), TrialKind.FULL)
            return True
        kind = TrialKind.MINIBATCH if self.settings.minibatch else TrialKind.FULL
        study.claim_for_search(trial, kind)
        if self._over_budget(study, trial.number):
            study.fail(trial)
            return False
        combo = self.space.combo_from_params(trial.params)
        self._evaluate_trial(study, trial, combo, self._batch(trial.number), kind, search_trial=True)
        return True

    def _others_still_working(self, study: SearchStudy) -> bool:
        """Wait while another process has a trial in flight; False once none has.

        A process that returned as soon as it could claim nothing would read the outcome
        before the other processes' last trials (and the full evaluations those trigger)
        are in the study. While waiting it keeps claiming: a queued full evaluation goes to
        whichever process is free.
        """
        running = study.running_for_less_than(self.settings.stale_after)
        if not running:
            return False
        # Full evaluations first: every process waits for them.
        running.sort(key=lambda t: kind_of(t) is not TrialKind.QUEUED_FULL)
        if not any(self._prefetch(study, trial) for trial in running):
            time.sleep(self.settings.poll_interval)
        return True

    def _prefetch(self, study: SearchStudy, trial: FrozenTrial) -> bool:
        """Score another process's running evaluation from the other end of its examples.

        The replies land in the shared response cache, where that process finds them when it
        gets there: an idle process halves the time of the evaluation everyone is waiting
        for, a full evaluation or the search's last trials (the full evaluation that follows
        them waits for the slowest). It stops as soon as the trial is finished or stopped by
        racing; what it scored past that point is kept in the cache for a later full
        evaluation of the same combination. Not the baseline: scored last and raced, it
        usually stops after a few examples. Without the cache there is nothing to share, so
        it does nothing. Returns whether it did any work.
        """
        from .. import config

        examples = self._examples_of(trial)
        if not config.current().cache or examples is None or trial.number in self._prefetched:
            return False
        self._prefetched.add(trial.number)
        combo = self.space.combo_from_params(params_of(trial))
        prefetch_valset(
            self.evaluate,
            self.space.build(combo),
            examples,
            wanted=lambda: study.is_running(trial.number),
            claim=lambda uid: self.claim(f"trial-{trial.number}-{uid}"),
        )
        return True

    def _examples_of(self, trial: FrozenTrial) -> list[Example] | None:
        """What another process's running trial evaluates, if it is worth helping with.

        None for the baseline, and for a minibatch trial whose owner has fewer than
        ``HELP_ROUNDS`` rounds of calls left: helping saves time in proportion to the rounds
        left, while what a helper scored from the back of a trial that racing stops is
        wasted. With one call at a time, a minibatch is dozens of rounds and worth sharing;
        with many threads, a few, which helpers would mostly overshoot.
        """
        kind = kind_of(trial)
        if kind in (TrialKind.QUEUED_FULL, TrialKind.FULL):
            return self._full_order()
        if kind is TrialKind.MINIBATCH:
            batch = self._batch(trial.number)
            scored = max(trial.intermediate_values, default=0)
            rounds_left = (len(batch) - scored) / max(1, self.evaluate.num_threads)
            return batch if rounds_left >= HELP_ROUNDS else None
        return None

    def _evaluate_trial(
        self, study: SearchStudy, trial: Trial, combo: Combo, examples: list[Example], kind: TrialKind, search_trial: bool = False
    ) -> None:
        """Race ``combo`` on ``examples`` and tell the study what it scored on what it saw."""
        try:
            # The baseline wins ties (the outcome prefers it), so only a worse one stops early.
            result, pruned = self._race(
                study,
                combo,
                examples,
                against_full_only=kind is not TrialKind.MINIBATCH,
                keep_ties=kind is TrialKind.BASELINE,
                on_progress=(lambda mean, n: study.report_progress(trial, mean, n)) if self.settings.shared else None,
            )
            study.label(trial, kind, pruned, self._stats(result))
            if search_trial:
                # Queued before this trial is told, so no process sees an idle study in between.
                self._queue_after_trial(study, combo, None if pruned else result.score)
        except BaseException:
            study.fail(trial)
            raise
        study.tell(trial, result.score)
        self._log(kind, pruned, combo, result, study)

    def _over_budget(self, study: SearchStudy, number: int) -> bool:
        """Another process may have claimed the last trial between our count and our ask."""
        earlier = [t for t in study.claimed() if t.number < number]
        return len(earlier) >= self.settings.num_trials

    def _batch(self, trial_number: int) -> list[Example]:
        """The minibatch of a trial: seeded by the trial number, so any process draws the same one."""
        if not self.settings.minibatch:
            return self._full_order()
        rng = random.Random(f"{self.settings.seed}:{trial_number}")
        return rng.sample(list(self.valset), min(self.settings.minibatch_size, len(self.valset)))

    def _full_order(self) -> list[Example]:
        """The valset in the order full evaluations score it: a seeded shuffle, the same in every process.

        Racing extrapolates from the examples scored so far to the rest, which holds only if
        they are a random sample: a valset sorted by label (or by anything the score depends
        on) would stop a good candidate on a run of hard examples at the front.
        """
        if self._shuffled_valset is None:
            rng = random.Random(f"{self.settings.seed}:valset")
            self._shuffled_valset = rng.sample(list(self.valset), len(self.valset))
        return list(self._shuffled_valset)

    def _queue_after_trial(self, study: SearchStudy, combo: Combo, score: float | None) -> None:
        """Queue the full eval when one is due, and the baseline after the last trial."""
        finished = len(study.finished_search_trials()) + 1  # this trial, not yet told
        last = finished >= self.settings.num_trials
        if self.settings.minibatch and (last or finished % self.settings.full_eval_steps == 0):
            self._queue_full_eval(study, combo, score)
        if last:
            self.ensure_baseline(study)

    def _queue_full_eval(self, study: SearchStudy, combo: Combo, score: float | None) -> None:
        """Queue a full eval of the best-averaging combination not fully evaluated or queued yet.

        The average is over its completed minibatch trials, this one included unless it was
        pruned (racing judged it worse than the best already); any process may run the eval.
        """
        scores = _scores_by_kind(study, self.space, (TrialKind.MINIBATCH,), pruned=False)
        if score is not None:
            scores.setdefault(combo, []).append(score)
        done = set(_scores_by_kind(study, self.space, WHOLE_VALSET)) | {
            self.space.combo_from_params(p) for p in study.queued_full_params()
        }
        pending = {c: s for c, s in scores.items() if c not in done}
        if not pending:
            return  # every promising combination is already fully evaluated
        best = max(pending, key=lambda c: sum(pending[c]) / len(pending[c]))
        study.enqueue(self.space.params_from_combo(best), TrialKind.QUEUED_FULL)

    def _race(
        self,
        study: SearchStudy,
        combo: Combo,
        examples: Sequence[Example],
        against_full_only: bool,
        keep_ties: bool = False,
        on_progress: Callable[[float, int], None] | None = None,
    ) -> tuple[EvaluationResult, bool]:
        """Evaluate ``combo`` on ``examples`` until done, or until it cannot win.

        An evaluation only matters if its combination may beat the best one so far, so it
        stops once the combination's upper bound on the whole valset is no better than the
        best lower bound of any other (see :meth:`_valset_bounds`). Full evaluations race
        only against full scores: one stopped by a minibatch's promise could leave the
        search without any fully evaluated winner. Examples this process already scored come
        first, free. A tie cannot win either (the earlier combination is kept) unless
        ``keep_ties``. Returns the result on the examples scored, and whether it stopped early.

        In a shared study the reference is re-read as the race goes (other processes finish
        or progress meanwhile), and ``on_progress(mean, n)`` tells them how this one is doing.
        """
        known = self.memo.results.get(combo, {})
        cached = self._scored_elsewhere(study, combo)
        # Stable: the free ones first (this process's own results, then replies in the response cache).
        order = sorted(examples, key=lambda ex: (ex.uid not in known, ex.uid not in cached))
        size = sum(ex.uid in known for ex in examples)
        reference = self._race_reference(study, combo, against_full_only)
        read_at = time.monotonic()
        if size and self._cannot_win(combo, reference, keep_ties):
            return self.memo.evaluate(self.evaluate, self.space, combo, order[:size]), True
        # Judged one example at a time, whatever the number of threads: a loser stops where
        # it would on one thread, and the search decides the same at any thread count.
        report_every = max(1, self.evaluate.num_threads)
        results = self.memo.iterate(self.evaluate, self.space, combo, order[size:], self._lm_threads())
        try:
            for _ in results:
                size += 1
                if size == len(order):
                    break
                if on_progress is not None and size % report_every == 0:
                    on_progress(self.memo.evaluate(self.evaluate, self.space, combo, order[:size]).score, size)
                if self.settings.shared and time.monotonic() - read_at >= self.settings.poll_interval:
                    reference, read_at = self._race_reference(study, combo, against_full_only), time.monotonic()
                if self._cannot_win(combo, reference, keep_ties):
                    return self.memo.evaluate(self.evaluate, self.space, combo, order[:size]), True
        except TooManyErrors as exc:
            # A candidate whose calls keep failing (say, a prompt too long for the model)
            # stops like a loser, with its failures scored 0; dspy scores it 0 and goes on too.
            log.warning("stopped evaluating a candidate after %d examples: %s", size, exc)
            return self.memo.evaluate(self.evaluate, self.space, combo, order[:size]), True
        finally:
            results.close()
        return self.memo.evaluate(self.evaluate, self.space, combo, examples), False

    def _scored_elsewhere(self, study: SearchStudy, combo: Combo) -> set[str]:
        """Examples ``combo`` was scored on by the study's finished evaluations of it.

        Whichever process ran them (another one, or this run before it was interrupted),
        their replies are in the response cache, so scoring them again is free, and racing
        on them first decides with what the run already knows. Only evaluations that ran to
        the end count; one stopped early scored a prefix that cannot be reconstructed.
        """
        uids: set[str] = set()
        for trial in study.finished(EVALUATED, pruned=False):
            if self.space.combo_from_params(trial.params) != combo:
                continue
            examples = self._batch(trial.number) if kind_of(trial) is TrialKind.MINIBATCH else self.valset
            uids.update(ex.uid for ex in examples)
        return uids

    def _valset_bounds(self, score: float, n: int) -> tuple[float, float]:
        """Bounds on a combination's whole-valset score from its mean ``score`` on ``n`` valset examples.

        The ``n`` scored examples are known; the rest of the valset is bounded by one-sided
        Wilson bounds at ``race_confidence``, or by 0 and 1 (certain) when that is None.
        """
        size = len(self.valset)
        n = min(n, size)
        confidence = self.settings.race_confidence
        low, high = rate_bounds(score, n, confidence) if confidence is not None and n else (0.0, 1.0)
        return (score * n + low * (size - n)) / size, (score * n + high * (size - n)) / size

    def _lm_threads(self) -> Executor | None:
        """The threads races score on, kept for the whole search: calls a stopped race left
        running hold their thread, so the next race's calls wait for them instead of going
        past ``num_threads``. None on one thread."""
        if self.evaluate.num_threads <= 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.evaluate.num_threads, thread_name_prefix="mipro-lm")
        return self._pool

    def _cannot_win(self, combo: Combo, reference: float, keep_ties: bool) -> bool:
        """Whether ``combo``'s upper bound is below ``reference`` (or equal, a tie it cannot win unless ``keep_ties``)."""
        upper = self._upper_bound(combo)
        return upper < reference or (upper == reference and not keep_ties)

    def _upper_bound(self, combo: Combo) -> float:
        """The best valset score ``combo`` can still plausibly have, from every example this process scored."""
        known = self.memo.results.get(combo, {})
        mean = sum(r.score for r in known.values()) / len(known) if known else 0.0
        return self._valset_bounds(mean, len(known))[1]

    def _race_reference(self, study: SearchStudy, combo: Combo, full_only: bool) -> float:
        """What another combination surely scores on the valset: the best lower bound in the study.

        A full eval gives an exact score; any other evaluation a lower bound from its
        examples, counted unless ``full_only`` or without ``race_confidence``. That includes
        the progress other processes reported on evaluations still running.
        """
        partial_counts = not full_only and self.settings.race_confidence is not None
        best = float("-inf")
        for trial in study.finished(EVALUATED):
            if self.space.combo_from_params(trial.params) == combo:
                continue
            n = examples_scored(trial)
            if n >= len(self.valset) or partial_counts:
                best = max(best, self._valset_bounds(value_of(trial), n)[0])
        if partial_counts and self.settings.shared:
            for score, n in _progress_of_others(study, self.space, combo):
                best = max(best, self._valset_bounds(score, n)[0])
        return best

    def _stats(self, result: EvaluationResult) -> dict[str, float | int]:
        """Kept on each trial so any process can rebuild the full trial log from the study."""
        return {"n": result.n, "lm_calls": self.count_calls(), "elapsed": round(time.monotonic() - self._started, 3)}

    def _log(self, kind: TrialKind, pruned: bool, combo: Combo, result: EvaluationResult, study: SearchStudy) -> None:
        full = [value_of(t) for t in study.finished(WHOLE_VALSET, pruned=False)]
        entry = TrialLog(
            number=len(self.trial_logs),
            kind=kind,
            pruned=pruned,
            params=self.space.params_from_combo(combo),
            score=result.score,
            num_examples=result.n,
            best_full_score=max(full) if full else result.score,
            lm_calls=self.count_calls(),
            elapsed=time.monotonic() - self._started,
        )
        self.trial_logs.append(entry)
        log.info(
            "trial %d (%s%s): score %.3f on %d examples, best full %.3f",
            entry.number, kind.value, " pruned" if pruned else "", entry.score, entry.num_examples, entry.best_full_score,
        )
        if self.on_trial is not None:
            self.on_trial(entry)


def create_study(settings: SearchSettings, storage: BaseStorage | str | None = None, study_name: str | None = None) -> Study:
    """A maximizing study with a seeded multivariate TPE sampler; loads an existing one by name."""
    return new_study(
        seed=settings.seed if settings.sampler_seed is None else settings.sampler_seed,
        n_startup_trials=settings.n_startup_trials,
        constant_liar=settings.constant_liar,
        storage=storage,
        name=study_name,
    )


def trial_logs_from_study(study: SearchStudy, space: SearchSpace) -> list[TrialLog]:
    """Every finished evaluation in the study, in order, with the best full score so far."""
    logs: list[TrialLog] = []
    best = float("-inf")
    for trial in study.finished(EVALUATED):
        kind, pruned, score = kind_of(trial) or TrialKind.FULL, is_pruned(trial), value_of(trial)
        if kind in WHOLE_VALSET and not pruned:
            best = max(best, score)
        logs.append(
            TrialLog(
                number=len(logs),
                kind=kind,
                pruned=pruned,
                params=space.params_from_combo(space.combo_from_params(trial.params)),
                score=score,
                num_examples=examples_scored(trial),
                best_full_score=best if best > float("-inf") else score,
                lm_calls=lm_calls_of(trial),
                elapsed=elapsed_of(trial),
            )
        )
    return logs


def prefetch_valset(
    evaluate: Evaluate,
    program: Module,
    valset: Sequence[Example],
    wanted: Callable[[], bool],
    claim: Callable[[str], bool],
) -> None:
    """Evaluate ``program`` on ``valset`` from the last example backwards while ``wanted()``.

    Only for the side effect: the replies fill the shared response cache for the process
    that evaluates the same program from the front. ``claim(uid)`` is false for examples
    another prefetching process took already, so two of them never pay for the same one.
    """
    chunk_size = max(4, evaluate.num_threads)
    chunk: list[Example] = []
    for example in reversed(valset):
        if not wanted():
            return
        if claim(example.uid):
            chunk.append(example)
        if len(chunk) == chunk_size:
            evaluate(program, chunk)
            chunk = []
    if chunk and wanted():
        evaluate(program, chunk)


def _progress_of_others(study: SearchStudy, space: SearchSpace, combo: Combo) -> list[tuple[float, int]]:
    """(mean so far, examples scored) of the running evaluations of other combinations."""
    progress = []
    for trial in study.running():
        reported = progress_of(trial)
        if reported is not None and space.combo_from_params(params_of(trial)) != combo:
            progress.append(reported)
    return progress


def _scores_by_kind(
    study: SearchStudy, space: SearchSpace, kinds: tuple[TrialKind, ...], pruned: bool | None = None
) -> dict[Combo, list[float]]:
    """Scores of the finished trials of ``kinds``, by combination, in trial order."""
    scores: dict[Combo, list[float]] = {}
    for trial in study.finished(kinds, pruned):
        scores.setdefault(space.combo_from_params(trial.params), []).append(value_of(trial))
    return scores
