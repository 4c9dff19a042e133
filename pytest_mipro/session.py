"""``MiproSession``: the run state of one pytest process (no pytest import here).

It holds the settings, the lockfile read once, the lock entries optimized in this
process, and a JSON-able record per target for the summary and reports. The plugin
creates one in ``pytest_configure``; the ``mipro`` fixture calls :meth:`MiproSession.run`.
Under xdist, each worker's :meth:`payload` reaches the controller's :meth:`absorb`,
and only the controller calls :meth:`finish`, which writes the lockfile once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import report
from .errors import LockfileError, MiproError
from .gate import GatePolicy, Judgement, judge, run_gate
from .lm import LM
from .lockfile import LockEntry, Lockfile
from .optimizer.evaluate import ExampleResult
from .program import Module
from .settings import MiproSettings
from .targets import (
    Evaluation,
    RunConfig,
    Target,
    TrialProgress,
    add_counts,
    assist,
    gate_threshold,
    locked_program,
    stale_parts,
)


def _worker_number(worker_id: str) -> int:
    """``gw3`` -> 3 (an xdist worker's index), else 0: it varies the sampler seed per process."""
    digits = worker_id[2:] if worker_id.startswith("gw") else ""
    return int(digits) if digits.isdigit() else 0


class GateFailure(MiproError):
    """A target failed its gate (missing or stale entry, or a score below the threshold)."""


@dataclass
class Callbacks:
    """How the session reaches the outside: progress lines and the plugin's hooks."""

    progress: Callable[[str], None] = lambda line: None
    trial_finished: Callable[[TrialProgress], None] = lambda progress: None
    lock_entry: Callable[[LockEntry], None] = lambda entry: None
    target_finished: Callable[[dict[str, Any]], None] = lambda record: None


@dataclass(frozen=True)
class TargetRun:
    """What the ``mipro`` fixture returns: the locked program and how it scored.

    In ``--mipro-check`` mode nothing is evaluated: ``score`` is the locked score and
    ``results`` is empty. ``verdict`` is the gate's PASS, FAIL or INCONCLUSIVE with its
    one-sided 95% ``bounds``; ``warning`` says why a verdict was INCONCLUSIVE. When the gate
    stopped early, ``score`` and ``results`` cover the ``skipped``-fewer examples it scored;
    with ``--mipro-repeats`` there are several results per example.
    """

    name: str
    mode: str
    program: Module
    entry: LockEntry
    score: float
    threshold: float | None
    results: list[ExampleResult] = field(default_factory=list)
    calls: int = 0
    baseline_score: float | None = None
    verdict: str | None = None
    bounds: tuple[float, float] | None = None
    warning: str | None = None
    skipped: int = 0

    @property
    def failures(self) -> list[ExampleResult]:
        """Examples that did not get full marks (or raised), worst first."""
        return sorted((r for r in self.results if r.score < 1.0 or r.failed), key=lambda r: r.score)


class MiproSession:
    """Runs targets in the mode the settings say, and remembers what happened."""

    def __init__(self, settings: MiproSettings, callbacks: Callbacks | None = None, *, peers: int = 1) -> None:
        self.settings = settings
        self.callbacks = callbacks or Callbacks()
        self.records: list[dict[str, Any]] = []
        self.new_entries: dict[str, LockEntry] = {}
        self.notes: list[str] = []  # end-of-run lines: what was written, and any error
        self.helper_counts: dict[str, dict[str, Any]] = {}  # target -> what helper items spent on it
        self._lockfile: Lockfile | None = None
        self._task_lm: LM | None = None
        self._prompt_lm: LM | None = None
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
        if self._task_lm is None:
            self._task_lm, self._prompt_lm = self._models()
        budget = self.settings.budget
        return RunConfig(
            task_lm=self._task_lm,
            prompt_lm=self._prompt_lm,
            auto=self.settings.auto,
            seed=self.settings.seed,
            threads=self.settings.threads,
            max_calls=budget.max_calls if budget else None,
            max_cost=budget.max_cost if budget else None,
            cache=self.settings.cache,
            on_trial=self._on_trial,
            checkpoint_root=self.settings.lockfile.parent / ".mipro" / "runs",
            storage_url=self.settings.storage,
            run_id=self.run_id,
            worker=self.worker,
            peers=self.peers,
        )

    def _models(self) -> tuple[LM, LM | None]:
        """--mipro-model beats configure(lm=...), which beats the embedded default model."""
        from . import config
        from .lm import default_lm

        current = config.current()
        task = LM(self.settings.model) if self.settings.model else default_lm()
        prompt = LM(self.settings.prompt_model) if self.settings.prompt_model else current.prompt_model
        return task, prompt

    # ------------------------------------------------------------ running targets

    def run(self, target: Target, *, nodeid: str = "") -> TargetRun:
        """Gate, check or optimize ``target``; raises :class:`GateFailure` with the reason."""
        record = report.new_record(target.name, nodeid, self.settings.mode)
        try:
            outcome = self._dispatch(target, record)
        except GateFailure as exc:
            record.update(outcome=record.get("outcome") or "failed", message=str(exc))
            raise
        except Exception as exc:
            record.update(outcome="error", message=f"{type(exc).__name__}: {exc}")
            raise
        else:
            record["outcome"] = "passed"
            return outcome
        finally:
            self.records.append(record)
            self.callbacks.target_finished(record)

    def assist(self, target: Target) -> None:
        """Work on ``target``'s shared study next to the process that locks it (xdist helpers).

        Nothing is locked here; what this process spent is added to the target's counts
        when the lockfile is written (under xdist, after it reached the controller).
        """
        from .holdout import prefetch_holdout_check, split_holdout

        run = self.run_config()
        # The locking process searches without the holdout slice: help with that same study,
        # then with the holdout check that follows it.
        split = split_holdout(target)
        helped = assist(split.search, run)
        checked = prefetch_holdout_check(target, split, run, self._current_entry(target), helped)
        spent = add_counts(add_counts(self.helper_counts.get(target.name, {}), helped.counts), checked)
        self.helper_counts[target.name] = spent

    def _dispatch(self, target: Target, record: dict[str, Any]) -> TargetRun:
        if self.settings.optimize and target.name not in self.new_entries:
            return self._optimize(target, record)
        entry = self._fresh_entry(target, record)
        if self.settings.check:
            report.fill_from_entry(record, entry)
            return TargetRun(target.name, "check", locked_program(target, entry), entry, entry.score, target.threshold)
        return self._gate(target, entry, record)

    def _entry(self, name: str) -> LockEntry:
        if name in self.new_entries:
            return self.new_entries[name]
        lockfile = self.lockfile()  # a malformed file raises here: an error, not a missing entry
        try:
            return lockfile.require(name)
        except LockfileError as exc:
            raise GateFailure(report.missing_message(name, self.settings.lockfile, str(exc))) from None

    def _fresh_entry(self, target: Target, record: dict[str, Any]) -> LockEntry:
        try:
            entry = self._entry(target.name)
        except GateFailure:
            record["outcome"] = "missing"
            raise
        changed = stale_parts(target, entry, self._model_for_check())
        if changed:
            record["outcome"] = "stale"
            record["stale_parts"] = changed
            raise GateFailure(report.stale_message(target.name, changed, self.settings.lockfile))
        return entry

    def _model_for_check(self) -> Any:
        """The task LM (for its model string and parameters); building it calls nothing."""
        return self.run_config().task_lm

    def _gate(self, target: Target, entry: LockEntry, record: dict[str, Any]) -> TargetRun:
        threshold, source = gate_threshold(target, entry, self.settings.tolerance)
        policy = GatePolicy(
            threshold=threshold,
            threshold_source=source,
            min_drop=self.settings.min_drop,
            repeats=self.settings.repeats,
            seed=self.settings.seed or 0,
        )
        gate = run_gate(target, entry, self.run_config(), policy)
        report.fill_from_gate(record, gate)
        record["baseline_score"] = entry.baseline_score
        warning = self._verdict(target, gate.judgement, gate.evaluation, source, record)
        return self._target_run(target, "gate", entry, gate.evaluation, gate.judgement, warning)

    def _optimize(self, target: Target, record: dict[str, Any]) -> TargetRun:
        from .holdout import optimize_with_holdout

        self.callbacks.progress(report.start_line(target.name))
        optimized = optimize_with_holdout(target, self.run_config(), self._current_entry(target))
        entry = optimized.entry
        self.callbacks.lock_entry(entry)  # hooks may add fields to entry.extra before it is kept
        self.new_entries[target.name] = entry
        threshold = target.threshold
        report.fill_from_evaluation(record, optimized.evaluation, threshold, "marker")
        report.fill_from_optimization(record, entry, optimized.trials)
        record.update(optimized.selection)
        self.callbacks.progress(report.done_line(record))
        scores = [[r.score] for r in optimized.evaluation.results]
        judgement = judge(scores, threshold=threshold, before=None, min_drop=self.settings.min_drop)
        report.fill_from_judgement(record, judgement)
        warning = self._verdict(target, judgement, optimized.evaluation, "marker", record)
        return self._target_run(target, "optimize", entry, optimized.evaluation, judgement, warning)

    def _current_entry(self, target: Target) -> LockEntry | None:
        """The target's entry in the lockfile before this run (None when absent or unreadable)."""
        try:
            return self.lockfile().get(target.name)
        except LockfileError:
            return None

    def _verdict(self, target: Target, judgement: Judgement, evaluation: Evaluation, source: str, record: dict[str, Any]) -> str | None:
        """Raise GateFailure on FAIL (and on INCONCLUSIVE under --mipro-strict); else the warning text, if any."""
        if judgement.verdict == "PASS":
            return None
        strict = self.settings.strict
        message = report.verdict_message(target.name, judgement, evaluation, source=source, min_drop=self.settings.min_drop, strict=strict)
        if judgement.verdict == "FAIL" or strict:
            record["outcome"] = "failed"
            raise GateFailure(message)
        record["message"] = message
        return message

    def _target_run(
        self, target: Target, mode: str, entry: LockEntry, evaluation: Evaluation, judgement: Judgement, warning: str | None
    ) -> TargetRun:
        return TargetRun(
            name=target.name,
            mode=mode,
            program=locked_program(target, entry),
            entry=entry,
            score=evaluation.score,
            threshold=judgement.threshold,
            results=list(evaluation.results),
            calls=evaluation.calls,
            baseline_score=entry.baseline_score,
            verdict=judgement.verdict,
            bounds=(judgement.lower, judgement.upper),
            warning=warning,
            skipped=judgement.total - judgement.evaluated,
        )

    def _on_trial(self, progress: TrialProgress) -> None:
        self.callbacks.trial_finished(progress)
        self.callbacks.progress(report.trial_line(progress))

    # ------------------------------------------------------------ the end of the run

    def payload(self) -> dict[str, Any]:
        """JSON-able state a worker sends to the controller."""
        return {
            "entries": {name: e.to_dict() for name, e in self.new_entries.items()},
            "records": list(self.records),
            "helper_counts": self.helper_counts,
        }

    def absorb(self, payload: Mapping[str, Any]) -> None:
        """Merge a worker's payload (the controller never runs targets itself)."""
        for name, data in (payload.get("entries") or {}).items():
            self.new_entries[name] = LockEntry.from_dict(name, data, source="xdist worker payload")
        self.records.extend(payload.get("records") or [])
        for name, counts in (payload.get("helper_counts") or {}).items():
            self.helper_counts[name] = add_counts(self.helper_counts.get(name, {}), counts)

    def _count_helpers(self) -> None:
        """Add what helper items spent to the entries and records of the targets they helped."""
        for name, spent in self.helper_counts.items():
            entry = self.new_entries.get(name)
            if entry is None:
                continue
            entry = replace(entry, counts=add_counts(entry.counts, spent))
            self.new_entries[name] = entry
            for record in self.records:
                if record.get("target") == name and "calls" in record:
                    report.fill_counts(record, entry.counts)
        self.helper_counts = {}

    def write_lockfile(self) -> bool | None:
        """Merge this run's new entries into the lockfile on disk (re-read now) and write it once.

        Returns None when there was nothing to write, else whether the file changed.
        """
        if not self.settings.optimize or not self.new_entries:
            return None
        path = self.settings.lockfile
        merged = Lockfile.read(path, missing_ok=True).merged(self.new_entries)
        if path.exists() and path.read_text(encoding="utf-8") == merged.dumps():
            return False
        merged.write()
        return True

    def finish(self, *, interrupted: bool = False) -> None:
        """The controller's (or only process's) last step: write the lockfile and the report.

        An interrupted run leaves the lockfile alone; rerunning resumes from the stored study.
        """
        if interrupted and self.settings.optimize:
            self.notes.append(f"mipro: interrupted; {self.settings.lockfile} left untouched (rerun to resume)")
            return
        self._count_helpers()
        changed = self.write_lockfile()
        names = ", ".join(sorted(self.new_entries))
        if changed:
            self.notes.append(f"mipro: updated {self.settings.lockfile}: {names}")
        elif changed is False:
            self.notes.append(f"mipro: {self.settings.lockfile} unchanged (re-optimized to the same prompts: {names})")
        if self.settings.report is not None:
            report.write_report(self.settings.report, self.records, lockfile=self.settings.lockfile, mode=self.settings.mode)
            self.notes.append(f"mipro: report written to {self.settings.report}")

    def summary(self) -> list[str]:
        """Lines for the end-of-run summary."""
        return report.summary_lines(self.records) + self.notes

    def unused_entries(self, used: set[str]) -> list[str]:
        """Lock entries no collected target uses (empty when the lockfile cannot be read)."""
        try:
            names = set(self.lockfile().entries)
        except LockfileError:
            return []
        return sorted(names - used)
