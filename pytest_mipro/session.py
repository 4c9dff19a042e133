"""``MiproSession``: the run state of one pytest process (no pytest import here).

It resolves the run's LMs once, reads the lockfile once, chooses each target's mode and
hands it to the pipeline, and collects the :class:`TargetOutcome` of every target. Under
xdist, each worker's :meth:`payload` reaches the controller's :meth:`absorb`, and only the
controller calls :meth:`finish`, which writes the lockfile once, from the outcomes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import pipeline, report
from .declaration import Target
from .errors import LockfileError
from .gate import GatePolicy
from .lm import LM
from .lockfile import LockEntry, Lockfile
from .optimizer.evaluate import ExampleResult
from .outcome import Mode, Outcome, TargetOutcome
from .pipeline import Hooks, Judging, TrialProgress
from .plain import Plain
from .program import Module
from .scoring import RunConfig, locked_program
from .settings import MiproSettings


def _worker_number(worker_id: str) -> int:
    """``gw3`` -> 3 (an xdist worker's index), else 0: it varies the sampler seed per process."""
    digits = worker_id[2:] if worker_id.startswith("gw") else ""
    return int(digits) if digits.isdigit() else 0


def _ignore(value: object) -> None:
    return None


def _no_extra(entry: LockEntry) -> Mapping[str, object]:
    return {}


@dataclass(frozen=True)
class Callbacks:
    """How the session reaches the outside: progress lines and the plugin's hooks."""

    progress: Callable[[str], None] = _ignore
    trial_finished: Callable[[TrialProgress], None] = _ignore
    lock_extra: Callable[[LockEntry], Mapping[str, object]] = _no_extra
    target_finished: Callable[[TargetOutcome], None] = _ignore


@dataclass(frozen=True)
class TargetRun:
    """What the ``mipro`` fixture returns: the locked program and how the target did.

    In ``--mipro-check`` mode nothing is evaluated: ``score`` is the locked score and
    ``results`` is empty. ``verdict`` is the gate's PASS, FAIL or INCONCLUSIVE with its
    one-sided 95% ``bounds``; ``warning`` says why a verdict was INCONCLUSIVE. When the gate
    stopped early, ``score`` and ``results`` cover the ``skipped``-fewer examples it scored;
    with ``--mipro-repeats`` there are several results per example.
    """

    outcome: TargetOutcome
    program: Module

    @property
    def name(self) -> str:
        return self.outcome.target

    @property
    def mode(self) -> Mode:
        return self.outcome.mode

    @property
    def entry(self) -> LockEntry | None:
        return self.outcome.entry

    @property
    def score(self) -> float | None:
        return self.outcome.score

    @property
    def threshold(self) -> float | None:
        return self.outcome.threshold

    @property
    def results(self) -> list[ExampleResult]:
        return [] if self.outcome.evaluation is None else list(self.outcome.evaluation.results)

    @property
    def failures(self) -> list[ExampleResult]:
        """Examples that did not get full marks (or raised), worst first."""
        return [] if self.outcome.evaluation is None else self.outcome.evaluation.failures

    @property
    def calls(self) -> int:
        """LM requests the evaluation behind ``score`` sent to a provider."""
        return 0 if self.outcome.evaluation is None else self.outcome.evaluation.calls

    @property
    def baseline_score(self) -> float | None:
        return self.outcome.baseline_score

    @property
    def verdict(self) -> str | None:
        return self.outcome.verdict

    @property
    def bounds(self) -> tuple[float, float] | None:
        return None if self.outcome.judgement is None else self.outcome.judgement.bounds

    @property
    def warning(self) -> str | None:
        return self.outcome.warning

    @property
    def skipped(self) -> int:
        return self.outcome.skipped


def target_run(target: Target, outcome: TargetOutcome) -> TargetRun:
    """The fixture's view of a passed target: its outcome and a copy of the program with the locked prompts."""
    program = target.program.deepcopy() if outcome.entry is None else locked_program(target, outcome.entry)
    return TargetRun(outcome, program)


class MiproSession:
    """Runs targets in the mode the settings say, and remembers their outcomes."""

    def __init__(self, settings: MiproSettings, callbacks: Callbacks | None = None, *, peers: int = 1) -> None:
        self.settings = settings
        self.callbacks = callbacks or Callbacks()
        self.outcomes: list[TargetOutcome] = []
        self.notes: list[str] = []  # end-of-run lines: what was written, and any error
        self._lockfile: Lockfile | None = None
        self._models: tuple[LM, LM | None] | None = None
        # xdist workers of one run share the controller's run id; a study's RUNNING trials
        # from any other run id were left by an interrupted run.
        self.run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
        self.worker = _worker_number(os.environ.get("PYTEST_XDIST_WORKER", ""))
        self.peers = peers  # processes working on each target's study: this one and its helpers

    # ------------------------------------------------------------ state

    def lockfile(self) -> Lockfile:
        """The lockfile as it was when first needed (a missing file is an empty lockfile)."""
        if self._lockfile is None:
            self._lockfile = Lockfile.read(self.settings.lockfile, missing_ok=True)
        return self._lockfile

    def run_config(self) -> RunConfig:
        """The LMs are resolved on first use, after conftest files had their chance to configure()."""
        if self._models is None:
            self._models = self._resolve_models()
        task_lm, prompt_lm = self._models
        budget = self.settings.budget
        return RunConfig(
            task_lm=task_lm,
            prompt_lm=prompt_lm,
            auto=self.settings.auto,
            seed=self.settings.seed,
            threads=self.settings.threads,
            max_calls=budget.max_calls if budget else None,
            max_cost=budget.max_cost if budget else None,
            cache=self.settings.cache,
            checkpoint_root=self.settings.lockfile.parent / ".mipro" / "runs",
            storage_url=self.settings.storage,
            run_id=self.run_id,
            worker=self.worker,
            peers=self.peers,
        )

    def _resolve_models(self) -> tuple[LM, LM | None]:
        """--mipro-model beats configure(lm=...), which beats the embedded default model."""
        from . import config
        from .lm import default_lm

        task = LM(self.settings.model) if self.settings.model else default_lm()
        prompt = LM(self.settings.prompt_model) if self.settings.prompt_model else config.current().prompt_model
        return task, prompt

    def _judging(self) -> Judging:
        return Judging(min_drop=self.settings.min_drop, strict=self.settings.strict)

    # ------------------------------------------------------------ running targets

    def run(self, target: Target, *, nodeid: str = "") -> TargetOutcome:
        """Gate, check or optimize ``target``; the outcome says whether it passed and why not.

        An exception (a bad declaration, an unreadable lockfile, a provider failure) is
        recorded as an ERROR outcome and raised again.
        """
        try:
            outcome = self._run_mode(target, nodeid)
        except Exception as exc:
            self._finished(TargetOutcome(target.name, nodeid, Mode(self.settings.mode), Outcome.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        self._finished(outcome)
        return outcome

    def assist(self, target: Target) -> None:
        """Work on ``target``'s shared study next to the process that locks it (xdist helpers)."""
        pipeline.assist(target, self._current_entry(target), self.run_config())

    def _run_mode(self, target: Target, nodeid: str) -> TargetOutcome:
        entries = {outcome.target: outcome.entry for outcome in self.outcomes if outcome.mode is Mode.OPTIMIZE and outcome.entry}
        if self.settings.optimize and target.name not in entries:
            return self._optimize(target, nodeid)
        lockfile = self.lockfile()  # a malformed file raises here: an error, not a missing entry
        entry = entries.get(target.name) or lockfile.get(target.name)
        run = self.run_config()
        if self.settings.check:
            return pipeline.check(target, nodeid, entry, lockfile, run)
        policy = self._policy(target, entry)
        return pipeline.gate(target, nodeid, entry, lockfile, run, policy, self._judging())

    def _policy(self, target: Target, entry: LockEntry | None) -> GatePolicy:
        threshold, source = (
            (target.threshold, "marker") if entry is None else pipeline.gate_threshold(target, entry, self.settings.tolerance)
        )
        return GatePolicy(
            threshold=threshold,
            threshold_source=source,
            min_drop=self.settings.min_drop,
            repeats=self.settings.repeats,
            seed=self.settings.seed or 0,
        )

    def _optimize(self, target: Target, nodeid: str) -> TargetOutcome:
        self.callbacks.progress(report.start_line(target.name))
        hooks = Hooks(trial_finished=self._on_trial, lock_extra=self.callbacks.lock_extra)
        outcome = pipeline.optimize(target, nodeid, self._current_entry(target), self.run_config(), hooks, self._judging())
        self.callbacks.progress(report.done_line(outcome))
        return outcome

    def _current_entry(self, target: Target) -> LockEntry | None:
        """The target's entry in the lockfile before this run (None when absent or unreadable)."""
        try:
            return self.lockfile().get(target.name)
        except LockfileError:
            return None

    def _on_trial(self, progress: TrialProgress) -> None:
        self.callbacks.trial_finished(progress)
        self.callbacks.progress(report.trial_line(progress))

    def _finished(self, outcome: TargetOutcome) -> None:
        self.outcomes.append(outcome)
        self.callbacks.target_finished(outcome)

    # ------------------------------------------------------------ the end of the run

    def payload(self) -> dict[str, object]:
        """JSON-able state a worker sends to the controller."""
        return {"outcomes": [outcome.to_dict() for outcome in self.outcomes]}

    def absorb(self, payload: Plain) -> None:
        """Merge a worker's payload (the controller never runs targets itself)."""
        found = payload.get("outcomes") or []
        if not isinstance(found, list):
            raise ValueError("xdist worker payload: 'outcomes' must be a list")
        self.outcomes.extend(TargetOutcome.from_dict(data) for data in found if isinstance(data, Mapping))

    def new_entries(self) -> dict[str, LockEntry]:
        """The entries this run optimized, by target name."""
        return {o.target: o.entry for o in self.outcomes if o.mode is Mode.OPTIMIZE and o.entry is not None}

    def write_lockfile(self) -> bool | None:
        """Merge this run's new entries into the lockfile on disk (re-read now) and write it once.

        Returns None when there was nothing to write, else whether the file changed.
        """
        updates = self.new_entries()
        if not self.settings.optimize or not updates:
            return None
        path = self.settings.lockfile
        merged = Lockfile.read(path, missing_ok=True).merged(updates)
        text = merged.dumps()  # once: rendering a lock of hundreds of targets takes seconds
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return False
        merged.write(text)
        return True

    def finish(self, *, interrupted: bool = False) -> None:
        """The controller's (or only process's) last step: write the lockfile and the report.

        An interrupted run leaves the lockfile alone; rerunning resumes from the stored study.
        """
        if interrupted and self.settings.optimize:
            self.notes.append(f"mipro: interrupted; {self.settings.lockfile} left untouched (rerun to resume)")
            return
        changed = self.write_lockfile()
        names = ", ".join(sorted(self.new_entries()))
        if changed:
            self.notes.append(f"mipro: updated {self.settings.lockfile}: {names}")
        elif changed is False:
            self.notes.append(f"mipro: {self.settings.lockfile} unchanged (re-optimized to the same prompts: {names})")
        if self.settings.report is not None:
            report.write_report(self.settings.report, self.outcomes, lockfile=self.settings.lockfile, mode=self.settings.mode)
            self.notes.append(f"mipro: report written to {self.settings.report}")

    def summary(self) -> list[str]:
        """Lines for the end-of-run summary."""
        return report.summary_lines(self.outcomes) + self.notes

    def unused_entries(self, used: set[str]) -> list[str]:
        """Lock entries no collected target uses (empty when the lockfile cannot be read)."""
        try:
            names = set(self.lockfile().entries)
        except LockfileError:
            return []
        return sorted(names - used)
