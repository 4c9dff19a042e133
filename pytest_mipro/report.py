"""Text for people and files for machines, rendered from :class:`TargetOutcome` values.

Progress lines, failure messages, the summary table, and the JSON and HTML reports.
Nothing here writes to the terminal, and nothing here decides: the pipeline builds the
outcomes, this module only renders them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .diff import TargetDiff, compare_entries
from .fingerprint import describe
from .gate import Judgement
from .lockfile import LockEntry
from .optimizer.evaluate import ExampleResult
from .optimizer.search import TrialLog
from .optimizer.study import TrialKind
from .outcome import Mode, Outcome, Selection, TargetOutcome, example_result_to_dict
from .stats import RegressionResult

if TYPE_CHECKING:
    from .pipeline import TrialProgress
    from .scoring import Evaluation

REPORT_VERSION = 2
WORST = 5  # examples shown in a failure message
_VALUE_CHARS = 60


# ---------------------------------------------------------------- progress lines


def start_line(name: str) -> str:
    return f"mipro {name}: optimizing"


def trial_line(progress: TrialProgress) -> str:
    trial, usage = progress.trial, progress.usage
    if progress.counted:
        step = f"trial {progress.number}/{progress.total or '?'} ({kind_label(trial)})"
    else:
        step = kind_label(trial) if trial.kind is TrialKind.BASELINE else f"{kind_label(trial)} eval"
    return (
        f"mipro {progress.target}: {step} score {trial.score:.3f} on {trial.num_examples}"
        f" | best full {trial.best_full_score:.3f} | calls {usage.calls} ({usage.cache_hits} cached)"
        f" | tokens {_si(usage.tokens)} | cost ${usage.cost:.4f} | {progress.elapsed:.1f}s"
    )


def kind_label(trial: TrialLog) -> str:
    """``minibatch``, or ``minibatch-pruned`` when racing stopped the evaluation early."""
    return trial.label


def done_line(outcome: TargetOutcome) -> str:
    return (
        f"mipro {outcome.target}: {_score(outcome.baseline_score)} -> {_score(outcome.score)}"
        f" in {_trials_planned(outcome)} trials, {outcome.counts.calls} calls, {outcome.counts.seconds:.1f}s"
    )


def _trials_planned(outcome: TargetOutcome) -> str:
    trials = None if outcome.entry is None else outcome.entry.optimizer.get("trials")
    return "?" if trials is None else str(trials)


def _si(number: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(number) >= size:
            return f"{number / size:.1f}{unit}"
    return str(int(number))


def _score(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{float(value):.3f}"


# ---------------------------------------------------------------- failure messages


def missing_message(name: str, lockfile: Path, detail: str) -> str:
    return (
        f"mipro target {name!r} has no entry in {lockfile}.\n"
        f"Run `pytest --mipro-optimize` to optimize it and write the entry, then commit the lockfile.\n({detail})"
    )


def stale_message(name: str, changed: Sequence[str], lockfile: Path) -> str:
    return (
        f"mipro target {name!r}: the entry in {lockfile} is stale: {describe(changed)} since it was optimized.\n"
        f"Run `pytest --mipro-optimize` to re-optimize it (changed fingerprint part(s): {', '.join(changed)})."
    )


def verdict_message(name: str, judgement: Judgement, evaluation: Evaluation, *, source: str, min_drop: float, strict: bool = False) -> str:
    """Why a gate failed or was inconclusive: score, bounds, threshold, the regression check, the worst examples."""
    lines = [_verdict_head(name, judgement, source, strict), score_line(judgement, source)]
    if judgement.regression is not None:
        lines.append(regression_line(judgement.regression, min_drop, judgement.regression_bound))
    if judgement.curtailed:
        lines.append(f"Stopped after {judgement.evaluated} of {judgement.total} examples: the rest could not change the verdict.")
    worst = evaluation.failures[:WORST]
    if worst:
        lines += [f"Worst {len(worst)} examples:", *(f"  {line}" for line in map(describe_example, worst))]
    return "\n".join(lines)


def _verdict_head(name: str, judgement: Judgement, source: str, strict: bool) -> str:
    threshold = judgement.threshold
    if judgement.verdict == "INCONCLUSIVE" and threshold is not None:
        consequence = "failing because of --mipro-strict" if strict else "--mipro-strict would make this a failure"
        return (
            f"mipro target {name!r}: INCONCLUSIVE: the threshold {threshold:.3f} ({source}) lies inside the score's"
            f" one-sided 95% bounds {_interval(judgement.bounds)}; {_decide(judgement)} ({consequence})."
        )
    reasons = []
    if judgement.threshold_verdict == "FAIL" and threshold is not None:
        reasons.append(f"the score's upper bound {judgement.upper:.3f} is below the threshold {threshold:.3f} ({source})")
    if judgement.regressed and judgement.regression is not None:
        reasons.append(f"the score dropped significantly from the locked {judgement.regression.before_mean:.3f}")
    return f"mipro target {name!r}: {judgement.verdict}: {' and '.join(reasons) or 'see below'}."


def _decide(judgement: Judgement) -> str:
    if judgement.curtailed:
        return f"all {judgement.total} examples could not decide it"
    if judgement.needed_n is None:
        return "the score equals the threshold, so no number of examples would decide it"
    return f"about {judgement.needed_n} examples at this score would decide it (the gate has {judgement.total})"


def score_line(judgement: Judgement, source: str) -> str:
    threshold = "no threshold" if judgement.threshold is None else f"threshold {judgement.threshold:.3f} ({source})"
    of_total = "" if judgement.evaluated == judgement.total else f" (of {judgement.total})"
    return (
        f"Score {judgement.score:.3f} on {judgement.evaluated} examples{of_total},"
        f" one-sided 95% bounds {_interval(judgement.bounds)}, {threshold}."
    )


def regression_line(result: RegressionResult, min_drop: float, bound: str | None = None) -> str:
    if result.method == "mcnemar":
        test = f"exact McNemar p = {result.p_value:.3g} ({result.b} passed before and fail now, {result.c} the other way)"
    else:
        test = f"paired t-test p = {result.p_value:.3g}"
    if result.regressed:
        finding = f"a significant drop larger than --mipro-min-drop {min_drop:g}"
    elif result.significant:
        finding = f"significant, but not larger than --mipro-min-drop {min_drop:g}"
    else:
        finding = "not significant (p >= 0.05)"
    where = f" (if every unscored example {_BOUND_WORDS[bound]})" if bound else ""
    return (
        f"Against the lock{where}: {result.before_mean:.3f} -> {result.after_mean:.3f} on the same {result.n} examples"
        f" (drop {result.drop:.3f}); {test}: {finding}."
    )


_BOUND_WORDS = {"worst": "failed", "best": "passed"}


def _interval(bounds: tuple[float, float] | None) -> str:
    if bounds is None:
        return "-"
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def describe_example(result: ExampleResult) -> str:
    record = example_result_to_dict(result)
    inputs = _fields(record["inputs"])
    text = f"[{record['id']}] score {result.score:.2f}: {_listed(inputs)} | expected {_listed(_fields(record['expected']))}"
    prediction = record["prediction"]
    if prediction is not None:
        text += f" | got {_listed({k: v for k, v in _fields(prediction).items() if k not in inputs})}"
    error = result.error or result.parse_error
    if error:
        text += f" | error: {_short(error)}"
    return text


def _fields(value: object) -> dict[str, object]:
    return dict(value) if isinstance(value, dict) else {}


def _listed(fields: dict[str, object]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in fields.items())


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."


def unused_message(names: Iterable[str], lockfile: Path) -> str:
    listed = ", ".join(repr(n) for n in names)
    return f"{lockfile} has entries that no collected test uses: {listed}. Remove them, or rename the marker back."


# ---------------------------------------------------------------- end-of-run summary


TABLE_LIMIT = 20  # more targets than this: the terminal gets counts per kind, the report files the tables


def summary_lines(outcomes: Sequence[TargetOutcome], *, report: Path | None = None) -> list[str]:
    """The end-of-run summary (empty when no target ran).

    Up to :data:`TABLE_LIMIT` targets: tables of optimized and gated targets and their notes.
    Always: one line per kind of result with its count, failures first and named.
    """
    if not outcomes:
        return []
    if len(outcomes) > TABLE_LIMIT:
        where = f"in {report}" if report is not None else "with --mipro-report report.html (or .md, .json)"
        return [*kind_lines(outcomes), f"mipro: the per-target table is {where}"]
    lines: list[str] = []
    optimized = [o for o in outcomes if o.mode is Mode.OPTIMIZE and o.entry is not None]
    gated = [o for o in outcomes if not (o.mode is Mode.OPTIMIZE and o.entry is not None)]
    if optimized:
        lines += _table(
            ["target", "baseline -> optimized", "threshold", "trials", "calls", "cache hits", "tokens", "cost", "time"],
            [_optimized_row(o) for o in sorted(optimized, key=lambda o: o.target)],
        )
    if gated:
        lines += _table(
            ["target", "mode", "score", "bounds", "threshold", "vs lock", "n", "calls", "cache hits", "verdict", "outcome"],
            [_gated_row(o) for o in sorted(gated, key=lambda o: (o.target, o.nodeid))],
        )
    notes = [line for o in outcomes for line in note_lines(o)]
    return lines + notes + (kind_lines(outcomes) if len(outcomes) > 1 else [])


def _optimized_row(outcome: TargetOutcome) -> list[str]:
    usage = outcome.counts.usage
    return [
        outcome.target,
        f"{_score(outcome.baseline_score)} -> {_score(outcome.score)}",
        _score(outcome.threshold),
        _trials_planned(outcome).replace("?", "-"),
        str(usage.calls),
        str(usage.cache_hits),
        _si(usage.tokens),
        f"${usage.cost:.4f}",
        f"{outcome.counts.seconds:.1f}s",
    ]


def _gated_row(outcome: TargetOutcome) -> list[str]:
    usage = outcome.counts.usage
    judgement = outcome.judgement
    return [
        outcome.target,
        outcome.mode.value,
        _score(outcome.score),
        _interval(outcome.bounds),
        _score(outcome.threshold),
        _versus_lock(judgement),
        _examples(outcome),
        str(usage.calls),
        str(usage.cache_hits),
        outcome.verdict or "-",
        outcome.outcome.value,
    ]


def note_lines(outcome: TargetOutcome) -> list[str]:
    """What a target's table row cannot say: early stopping, repeated samples, the holdout decision."""
    name, notes = outcome.target, []
    judgement, stats = outcome.judgement, outcome.gate
    if judgement is not None and judgement.curtailed and stats is not None:
        notes.append(
            f"mipro {name}: stopped after {judgement.evaluated} of {judgement.total} examples once the verdict was settled;"
            f" skipped {outcome.skipped} (about {_plural(stats.saved_calls, 'LM call')} saved)"
        )
    if stats is not None and stats.repeats > 1:
        notes.append(
            f"mipro {name}: {stats.repeats} samples per example: pass rate {stats.pass_rate or 0.0:.3f},"
            f" pass^{stats.repeats} {stats.pass_all or 0.0:.3f} (every sample of an example passes)"
        )
    if outcome.selection is not None:
        notes.append(f"mipro {name}: {selection_line(outcome.selection)}")
    usage = outcome.counts.usage
    if usage.retries or usage.errors:
        notes.append(
            f"mipro {name}: provider faults: {_plural(usage.retries, 'request')} retried"
            f" (rate limits, timeouts, 5xx, broken replies), {_plural(usage.errors, 'call')} failed after retries"
        )
    return notes


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_AGAINST = {"lock": "the current locked prompt", "unoptimized": "the unoptimized program"}


def selection_line(selection: Selection) -> str:
    """How --mipro-optimize chose the locked prompt: the holdout, the one-SE rule, the decision."""
    if selection.holdout_source == "fixture":
        text = f"holdout: {selection.holdout} examples from `mipro_holdout`; the search validated on {selection.validation}"
    elif selection.holdout_source == "split":
        text = (
            f"holdout: {selection.holdout} of {selection.labeled} labeled examples (seeded split);"
            f" the search validated on {selection.validation}"
        )
    else:
        text = (
            f"no holdout: {selection.labeled} labeled examples, and a seeded holdout split needs {selection.min_for_split}"
            " (or define a `mipro_holdout` fixture); locked the search's pick"
        )
    one_se = selection.one_se
    if one_se is not None and one_se.chars < one_se.best_chars:
        text += (
            f"; one-SE rule: took a {one_se.chars}-character prompt scoring {one_se.score:.3f}"
            f" over the best's {one_se.best_chars} characters at {one_se.best_score:.3f}"
        )
    return text + (_decision_text(selection) if selection.decision else "")


def _decision_text(selection: Selection) -> str:
    decision = selection.decision
    assert decision is not None
    against = _AGAINST.get(decision.against, decision.against)
    if decision.same_program:
        return f"; the search's pick is {against} itself (holdout score {_score(decision.new_score)})"
    scores = f"holdout {_score(decision.new_score)} vs {_score(decision.old_score)} for {against}"
    bound = "n/a" if decision.lower_bound is None else f"{decision.lower_bound:+.3f}"
    improvement = f"{decision.improvement:+.3f}" if decision.improvement is not None else "n/a"
    if decision.adopted:
        return f"; adopted the new prompt: {scores}, improvement {improvement} (one-sided 95% lower bound {bound} > 0)"
    return (
        f"; kept {against}: {scores}, improvement {improvement} is not significant"
        f" (one-sided 95% lower bound {bound} <= 0, n={decision.n})"
    )


def _versus_lock(judgement: Judgement | None) -> str:
    # After an early stop the check ran on the completion least favourable to the verdict:
    # the worst one bounds the change from below (and p too), the best one from above.
    change = _gate_change(judgement)
    return "-" if change is None else change.text()


def _examples(outcome: TargetOutcome) -> str:
    judgement = outcome.judgement
    if judgement is not None:
        n, total = judgement.evaluated, judgement.total
        return f"{n}/{total}" if total != n else str(n)
    if outcome.evaluation is not None:
        return str(outcome.evaluation.n)
    return str(outcome.entry.n) if outcome.entry is not None else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, rows), ""]


# ---------------------------------------------------------------- a run, for the report files


@dataclass(frozen=True)
class RunReport:
    """What the report files render: the run's outcomes, and the lock entries before the run.

    ``previous`` holds the lockfile's entries as they were before this run wrote it: in
    optimize mode a new entry is compared with the one it replaces (its prompt diff, the
    examples that flipped); in gate mode the gated entry itself is the reference.
    """

    outcomes: tuple[TargetOutcome, ...]
    lockfile: Path
    mode: str
    previous: Mapping[str, LockEntry] = field(default_factory=dict)

    def ordered(self) -> list[TargetOutcome]:
        """Failures first (errors, missing, stale, FAIL), then warnings, then passes; by name within each kind."""
        return ordered(self.outcomes)

    def reference(self, outcome: TargetOutcome) -> LockEntry | None:
        """The lock entry this run's scores are compared with (None: nothing to compare)."""
        if outcome.mode is Mode.OPTIMIZE:
            return self.previous.get(outcome.target)
        return outcome.entry

    def change(self, outcome: TargetOutcome) -> Change | None:
        """The score's change against the reference on the examples both were scored on."""
        if outcome.mode is not Mode.OPTIMIZE:
            return _gate_change(outcome.judgement)
        before = self.previous.get(outcome.target)
        if before is None or outcome.entry is None:
            return None
        paired = compare_entries(outcome.target, before, outcome.entry).paired
        if paired is None:
            return None
        p_value = paired.p_worse if paired.change < 0 else paired.p_better
        return Change(paired.change, p_value, paired.n)

    def flipped(self, outcome: TargetOutcome) -> dict[str, float]:
        """Example id -> its reference score, for the examples that now score differently."""
        reference = self.reference(outcome)
        if reference is None or outcome.evaluation is None:
            return {}
        before, now = _mean_by_id(reference.results.ids, reference.results.scores), _mean_by_id(
            [r.example.uid for r in outcome.evaluation.results], [r.score for r in outcome.evaluation.results]
        )
        return {uid: before[uid] for uid, score in now.items() if uid in before and not math.isclose(before[uid], score)}

    def prompt_diff(self, outcome: TargetOutcome) -> TargetDiff | None:
        """Optimize mode: the new entry's prompts against the entry they replace."""
        before = self.previous.get(outcome.target)
        if outcome.mode is not Mode.OPTIMIZE or before is None or outcome.entry is None:
            return None
        return compare_entries(outcome.target, before, outcome.entry)


@dataclass(frozen=True)
class Change:
    """A score's change against the lock: ``delta`` (new - old), one-sided ``p`` in its direction, on ``n`` examples.

    ``side`` is ``>=`` or ``<=`` when the gate stopped early: the change is bounded, not measured.
    """

    delta: float
    p: float
    n: int
    side: str = ""

    def text(self) -> str:
        return f"{self.side}{0.0 + self.delta:+.3f} (p{self.side or '='}{self.p:.2g})"


def _gate_change(judgement: Judgement | None) -> Change | None:
    regression = None if judgement is None else judgement.regression
    if judgement is None or regression is None:
        return None
    side = {"worst": ">=", "best": "<="}.get(judgement.regression_bound or "", "")
    return Change(0.0 - regression.drop, regression.p_value, regression.n, side)


def _mean_by_id(ids: Sequence[str], scores: Sequence[float]) -> dict[str, float]:
    grouped: dict[str, list[float]] = {}
    for uid, score in zip(ids, scores, strict=True):
        grouped.setdefault(uid, []).append(score)
    return {uid: math.fsum(values) / len(values) for uid, values in grouped.items()}


# ---------------------------------------------------------------- kinds of result


# Failing kinds first: the order of the summary's lines and of every report's targets.
KINDS = ("error", "missing", "stale", "FAIL", "INCONCLUSIVE (strict)", "INCONCLUSIVE", "PASS", "fresh", "passed")
FAILING = frozenset(KINDS[:5])
_NAMES_SHOWN = 10


def result_kind(outcome: TargetOutcome) -> str:
    """How a target ended, in one word: a failure's cause, else its verdict (``fresh`` in check mode)."""
    if outcome.outcome is Outcome.FAILED:
        return "FAIL" if outcome.verdict == "FAIL" else "INCONCLUSIVE (strict)"
    if outcome.outcome is not Outcome.PASSED:
        return str(outcome.outcome.value)
    if outcome.verdict is not None:
        return outcome.verdict
    return "fresh" if outcome.mode is Mode.CHECK else "passed"


def ordered(outcomes: Iterable[TargetOutcome]) -> list[TargetOutcome]:
    return sorted(outcomes, key=lambda o: (KINDS.index(result_kind(o)), o.target, o.nodeid))


def by_kind(outcomes: Iterable[TargetOutcome]) -> dict[str, list[TargetOutcome]]:
    """Kind -> its targets, failing kinds first, only kinds that occurred."""
    found: dict[str, list[TargetOutcome]] = {}
    for outcome in ordered(outcomes):
        found.setdefault(result_kind(outcome), []).append(outcome)
    return found


def headline(outcomes: Sequence[TargetOutcome]) -> str:
    """``3 targets: 1 failed, 2 passed``."""
    failed = sum(result_kind(o) in FAILING for o in outcomes)
    return f"{_plural(len(outcomes), 'target')}: {failed} failed, {len(outcomes) - failed} passed"


def kind_lines(outcomes: Sequence[TargetOutcome]) -> list[str]:
    """One line per kind of result with its count; every kind but a pass names its targets."""
    groups = by_kind(outcomes)
    width = max(map(len, groups), default=0)
    lines = [f"mipro: {headline(outcomes)}"]
    for kind, group in groups.items():
        line = f"  {kind.ljust(width)}  {len(group):>4}"
        if kind not in ("PASS", "fresh", "passed"):
            line += "  " + names_text([o.target for o in group])
        lines.append(line)
    return lines


def names_text(names: Sequence[str], limit: int = _NAMES_SHOWN) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


# ---------------------------------------------------------------- JUnit properties


def junit_properties(outcome: TargetOutcome) -> list[tuple[str, str]]:
    """``mipro_*`` properties of a gated test for ``--junitxml``: what CI dashboards plot."""
    bounds = outcome.bounds
    values: dict[str, object] = {
        "verdict": outcome.verdict or result_kind(outcome),
        "outcome": outcome.outcome.value,
        "mode": outcome.mode.value,
        "score": outcome.score,
        "lower": None if bounds is None else bounds[0],
        "upper": None if bounds is None else bounds[1],
        "threshold": outcome.threshold,
        "calls": outcome.counts.calls,
        "cost": outcome.counts.usage.cost,
    }
    return [(f"mipro_{key}", _property(value)) for key, value in values.items() if _known(value)]


def _known(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _property(value: object) -> str:
    return repr(round(value, 6)) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- report files


def json_report(outcomes: Sequence[TargetOutcome], *, lockfile: Path, mode: str) -> dict[str, object]:
    """The JSON report: every target's outcome as data (schema: pytest_mipro/schema/report.schema.json)."""
    return {"version": REPORT_VERSION, "mode": mode, "lockfile": str(lockfile), "targets": [o.to_dict() for o in outcomes]}


def write_report(path: Path, run: RunReport) -> None:
    """``.json``: the outcomes as data; ``.html``: a self-contained page; ``.md``: a Markdown summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".html":
        from .report_html import html_report

        text = html_report(run)
    elif suffix == ".md":
        from .report_markdown import markdown_summary

        text = markdown_summary(run)
    else:
        data = json_report(run.outcomes, lockfile=run.lockfile, mode=run.mode)
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def append_step_summary(path: Path, run: RunReport) -> None:
    """Append the Markdown summary to a CI job's summary file (GitHub's ``$GITHUB_STEP_SUMMARY``)."""
    from .report_markdown import markdown_summary

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n" + markdown_summary(run))  # a blank line: a heading must not continue an earlier paragraph
