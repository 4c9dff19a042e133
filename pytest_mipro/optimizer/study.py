"""The search's Optuna study behind named methods: the one module that calls Optuna.

The study is the search's database, shared by every process working on a target and kept
for a resume. Its schema: each trial's user attributes say

- ``kind``: a :class:`TrialKind` value;
- ``pruned``: whether racing stopped the evaluation before its last example;
- ``n``, ``lm_calls``, ``elapsed``: examples scored, the process's LM calls and seconds so far;
- ``run_id``, ``worker``: the run and process that ran it;
- ``claimed``: set on trials TPE asked for (search trials, as opposed to queued evaluations);
- ``params``: on a queued trial, its parameters (Optuna shows them only once a process
  suggests them).

Intermediate values (``trial.report``) carry the running mean of an evaluation in a shared
study, by number of examples scored. Candidate instructions and demo sets ride on one FAILED
placeholder trial (samplers ignore failed trials): trial numbers are assigned by the
storage, so when two machines publish at once both read back the lowest-numbered set,
where a study-level attribute would be last-writer-wins.

Bump :data:`STUDY_SCHEMA` when any of this changes: it is part of the study's name, so no
run resumes a study written in another schema.
"""

from __future__ import annotations

import datetime
import enum
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..example import Example

if TYPE_CHECKING:
    from optuna import Study
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial, Trial

STUDY_SCHEMA = 2

Params = dict[str, int]
Instructions = dict[str, list[str]]
DemoSets = dict[str, list[list[Example]]]


class TrialKind(enum.Enum):
    """What a trial of the study evaluates."""

    BASELINE = "baseline"  # the unoptimized program, scored on the whole valset
    MINIBATCH = "minibatch"  # a search trial on a seeded minibatch
    FULL = "full"  # a whole-valset evaluation
    QUEUED_FULL = "full-queued"  # a full evaluation queued for whichever process is free; FULL once run


EVALUATED = (TrialKind.BASELINE, TrialKind.MINIBATCH, TrialKind.FULL)
WHOLE_VALSET = (TrialKind.BASELINE, TrialKind.FULL)


def new_study(
    *, seed: int, n_startup_trials: int, constant_liar: bool, storage: BaseStorage | str | None = None, name: str | None = None
) -> Study:
    """A maximizing study with a seeded multivariate TPE sampler; loads an existing one by name."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=n_startup_trials, constant_liar=constant_liar
    )
    return optuna.create_study(direction="maximize", sampler=sampler, storage=storage, study_name=name, load_if_exists=True)


def open_storage(journal: Path, url: str | None, attempts: int = 5) -> BaseStorage:
    """The database at ``url`` if one is given, else a journal file at ``journal``.

    Opening a database is retried: processes starting together race to create its schema.
    """
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if not url:
        return JournalStorage(JournalFileBackend(str(journal)))
    for attempt in range(attempts):
        try:
            return RDBStorage(url)
        except Exception as exc:  # sqlalchemy and the drivers raise many kinds
            if attempt == attempts - 1:
                raise ConfigError(f"--mipro-storage {url!r}: cannot open the study storage: {exc}") from exc
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- reading one trial


def kind_of(trial: FrozenTrial | Trial) -> TrialKind | None:
    """A trial's kind; None for one just asked for and not labelled yet."""
    value = trial.user_attrs.get("kind")
    return TrialKind(value) if value is not None else None


def is_pruned(trial: FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("pruned"))


def value_of(trial: FrozenTrial) -> float:
    """A finished trial's score (every COMPLETE trial has one)."""
    if trial.value is None:
        raise ValueError(f"trial {trial.number} is complete but has no value")
    return float(trial.value)


def params_of(trial: FrozenTrial) -> Params:
    """A trial's parameters, also for a queued trial another process has taken but not yet started."""
    params = trial.params or trial.user_attrs.get("params", {})
    return {str(k): int(v) for k, v in params.items()}


def examples_scored(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get("n", 0))


def lm_calls_of(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get("lm_calls", 0))


def elapsed_of(trial: FrozenTrial) -> float:
    return float(trial.user_attrs.get("elapsed", 0.0))


def run_id_of(trial: FrozenTrial) -> str | None:
    value = trial.user_attrs.get("run_id")
    return None if value is None else str(value)


def progress_of(trial: FrozenTrial) -> tuple[float, int] | None:
    """(mean so far, examples scored) an evaluation in progress last reported, if any."""
    if not trial.intermediate_values:
        return None
    n = max(trial.intermediate_values)
    return float(trial.intermediate_values[n]), int(n)


# ---------------------------------------------------------------- the study


class SearchStudy:
    """An Optuna study read and written in the search's schema (see the module docstring)."""

    def __init__(self, study: Study) -> None:
        self.optuna = study

    def _trials(self, *states: str) -> list[FrozenTrial]:
        from optuna.trial import TrialState

        return self.optuna.get_trials(deepcopy=False, states=tuple(TrialState[s] for s in states))

    # ------------------------------------------------------------ queries

    def finished(self, kinds: tuple[TrialKind, ...], pruned: bool | None = None) -> list[FrozenTrial]:
        """Finished trials of the given kinds; only pruned ones, or only complete ones, unless ``pruned`` is None."""
        return [
            t for t in self._trials("COMPLETE") if kind_of(t) in kinds and (pruned is None or is_pruned(t) == pruned)
        ]

    def running(self) -> list[FrozenTrial]:
        return self._trials("RUNNING")

    def running_for_less_than(self, seconds: float) -> list[FrozenTrial]:
        """Running trials started less than ``seconds`` ago (older ones belong to dead processes)."""
        now = datetime.datetime.now()
        return [t for t in self.running() if (now - (t.datetime_start or now)).total_seconds() < seconds]

    def is_running(self, number: int) -> bool:
        return any(t.number == number for t in self.running())

    def has_waiting(self) -> bool:
        return bool(self._trials("WAITING"))

    def claimed(self) -> list[FrozenTrial]:
        """Search trials (not the baseline, not queued full evals) finished or in progress.

        A trial another process has just asked for carries no attributes yet; it counts too,
        or two processes could both take the last trial.
        """
        from optuna.trial import TrialState

        return [
            t
            for t in self._trials("COMPLETE", "RUNNING")
            if t.user_attrs.get("claimed") or (t.state == TrialState.RUNNING and "kind" not in t.user_attrs)
        ]

    def finished_search_trials(self) -> list[FrozenTrial]:
        """Completed trials TPE asked for (not the baseline, not the full evals queued between them)."""
        return [t for t in self._trials("COMPLETE") if t.user_attrs.get("claimed")]

    def queued_full_params(self) -> list[Params]:
        """Parameters of the full evaluations queued or running."""
        return [params_of(t) for t in self._trials("WAITING", "RUNNING") if kind_of(t) is TrialKind.QUEUED_FULL]

    def has_baseline(self) -> bool:
        """Whether the baseline is queued, running or done."""
        return any(kind_of(t) is TrialKind.BASELINE for t in self._trials("COMPLETE", "RUNNING", "WAITING"))

    # ------------------------------------------------------------ writes

    def enqueue(self, params: Params, kind: TrialKind) -> None:
        """Queue a trial of ``kind``; any process's next ask takes it."""
        self.optuna.enqueue_trial(params, user_attrs={"kind": kind.value, "params": dict(params)})

    def ask(self, choices: Mapping[str, int], run_id: str, worker: int) -> Trial:
        """The next trial (a queued one first), marked with the run and process that takes it.

        ``choices``: per parameter, how many index values it takes (a categorical over 0..n-1).
        """
        from optuna.distributions import CategoricalDistribution

        trial = self.optuna.ask({name: CategoricalDistribution(list(range(n))) for name, n in choices.items()})
        trial.set_user_attr("run_id", run_id)
        trial.set_user_attr("worker", worker)
        return trial

    def claim_for_search(self, trial: Trial, kind: TrialKind) -> None:
        """Label a trial TPE asked for as a search trial of ``kind``."""
        trial.set_user_attr("kind", kind.value)
        trial.set_user_attr("claimed", True)

    def report_progress(self, trial: Trial, mean: float, n: int) -> None:
        """Tell other processes how an evaluation in progress is doing."""
        trial.report(mean, n)

    def label(self, trial: Trial, kind: TrialKind, pruned: bool, stats: Mapping[str, float | int]) -> None:
        """Record what an evaluation was, whether racing stopped it, and its statistics (before it is told)."""
        trial.set_user_attr("kind", kind.value)
        trial.set_user_attr("pruned", pruned)
        for key, stat in stats.items():
            trial.set_user_attr(key, stat)

    def tell(self, trial: Trial, value: float) -> None:
        self.optuna.tell(trial, value)

    def fail(self, trial: Trial | int) -> None:
        from optuna.trial import TrialState

        self.optuna.tell(trial, state=TrialState.FAIL)

    # ------------------------------------------------------------ candidates

    def load_candidates(self) -> tuple[Instructions, DemoSets] | None:
        """The candidate instructions and demo sets published in the study, if any (the first wins)."""
        published = [t for t in self._trials("FAIL") if "candidates" in t.user_attrs]
        if not published:
            return None
        data = json.loads(min(published, key=lambda t: t.number).user_attrs["candidates"])
        demo_sets = {name: [[Example(d) for d in demos] for demos in sets] for name, sets in data["demo_sets"].items()}
        return data["instructions"], demo_sets

    def publish_candidates(self, instructions: Instructions, demo_sets: DemoSets) -> tuple[Instructions, DemoSets]:
        """Store candidates where every process and machine sharing the study finds them; returns the set to use."""
        import optuna

        data = {
            "instructions": instructions,
            "demo_sets": {name: [[dict(d) for d in demos] for demos in sets] for name, sets in demo_sets.items()},
        }
        text = json.dumps(data, ensure_ascii=False, default=str)
        self.optuna.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"candidates": text}))
        loaded = self.load_candidates()
        if loaded is None:
            raise RuntimeError("the candidates just published are not in the study")
        return loaded

    # ------------------------------------------------------------ resume

    def fail_stale(self, run_id: str, shared_database: bool, stale_after: float) -> int:
        """Mark trials left RUNNING by an interrupted run as failed; returns how many.

        In a local journal every process of a run shares the run id, so any other run's
        RUNNING trial is dead. A database study is shared by runs on other machines that may
        still be working, so there only trials running longer than ``stale_after`` count.
        """
        now = datetime.datetime.now()
        stale = []
        for trial in self.running():
            if shared_database:
                if (now - (trial.datetime_start or now)).total_seconds() > stale_after:
                    stale.append(trial)
            elif run_id_of(trial) != run_id:
                stale.append(trial)
        for trial in stale:
            self.fail(trial.number)
        return len(stale)
