"""Text for people and files for machines, rendered from :class:`TargetOutcome` values.

Progress lines, failure messages, the summary table, and the JSON and HTML reports.
Nothing here writes to the terminal, and nothing here decides: the pipeline builds the
outcomes, this module only renders them.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .fingerprint import describe
from .gate import Judgement
from .optimizer.evaluate import ExampleResult
from .optimizer.search import TrialLog
from .optimizer.study import TrialKind
from .outcome import Mode, Selection, TargetOutcome, example_result_to_dict
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


def summary_lines(outcomes: Sequence[TargetOutcome]) -> list[str]:
    """Tables of optimized and gated targets (empty when no target ran)."""
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
    return lines + [line for o in outcomes for line in note_lines(o)]


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
    regression = None if judgement is None else judgement.regression
    if judgement is None or regression is None:
        return "-"
    change = 0.0 - regression.drop  # 0.0 - x: no "-0.000" for an unchanged score
    # After an early stop the check ran on the completion least favourable to the verdict:
    # the worst one bounds the change from below (and p too), the best one from above.
    side = {"worst": ">=", "best": "<="}.get(judgement.regression_bound or "", "")
    return f"{side}{change:+.3f} (p{side or '='}{regression.p_value:.2g})"


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


# ---------------------------------------------------------------- report files


def json_report(outcomes: Sequence[TargetOutcome], *, lockfile: Path, mode: str) -> dict[str, object]:
    """The JSON report: every target's outcome as data (schema: pytest_mipro/schema/report.schema.json)."""
    return {"version": REPORT_VERSION, "mode": mode, "lockfile": str(lockfile), "targets": [o.to_dict() for o in outcomes]}


def write_report(path: Path, outcomes: Sequence[TargetOutcome], *, lockfile: Path, mode: str) -> None:
    """``.json``: the outcomes as data; ``.html``: a self-contained page with a plot per target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".html":
        path.write_text(html_report(outcomes, lockfile=lockfile, mode=mode), encoding="utf-8")
    else:
        data = json_report(outcomes, lockfile=lockfile, mode=mode)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}
th{background:#f3f3f3}.passed{color:#166534}.failed,.stale,.missing,.error{color:#b91c1c}
svg{border:1px solid #ddd;background:#fff}.legend span{margin-right:1.5em;font-size:.85em}
"""


def html_report(outcomes: Sequence[TargetOutcome], *, lockfile: Path, mode: str) -> str:
    """One page, no network assets: a summary table, then per target a plot and the worst examples."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>pytest-mipro report</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>pytest-mipro report</h1><p>mode: {_e(mode)} &middot; lockfile: {_e(lockfile)}</p>",
        _html_summary(outcomes),
    ]
    parts += [_html_target(outcome) for outcome in outcomes]
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _html_summary(outcomes: Sequence[TargetOutcome]) -> str:
    columns = ("target", "mode", "outcome", "verdict", "baseline", "score", "bounds", "threshold", "n", "calls", "cost")
    header = "".join(f"<th>{h}</th>" for h in columns)
    rows = []
    for o in outcomes:
        state = _e(o.outcome.value)
        cells = [
            f"<a href='#{_anchor(o)}'>{_e(o.target)}</a>",
            _e(o.mode.value),
            f"<span class='{state}'>{state}</span>",
            _e(o.verdict or "-"),
            _score(o.baseline_score),
            _score(o.score),
            _interval(o.bounds),
            _score(o.threshold),
            _e(_examples(o)),
            _e(o.counts.calls),
            f"${o.counts.usage.cost:.4f}",
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _anchor(outcome: TargetOutcome) -> str:
    return "t-" + "".join(c if c.isalnum() else "-" for c in (outcome.nodeid or outcome.target))


def _html_target(outcome: TargetOutcome) -> str:
    parts = [f"<h2 id='{_anchor(outcome)}'>{_e(outcome.target)}</h2>", f"<p>{_e(outcome.nodeid)}</p>"]
    if outcome.message:
        parts.append(f"<pre>{_e(outcome.message)}</pre>")
    parts += [f"<p>{_e(note)}</p>" for note in note_lines(outcome)]
    if outcome.trials:
        parts.append(trial_plot_svg(outcome.trials))
    if outcome.evaluation is not None and outcome.evaluation.results:
        parts.append(_html_examples(sorted(outcome.evaluation.results, key=lambda r: r.score)))
    return "\n".join(parts)


def _html_examples(results: Sequence[ExampleResult]) -> str:
    rows = []
    for result in results:
        record = example_result_to_dict(result)
        cells = (
            _e(record["id"]),
            f"{result.score:.2f}",
            _e(json.dumps(record["inputs"], ensure_ascii=False)),
            _e(json.dumps(record["expected"], ensure_ascii=False)),
            _e(json.dumps(record["prediction"], ensure_ascii=False)),
            _e(result.error or result.parse_error or ""),
        )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("id", "score", "inputs", "expected", "prediction", "error"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


_KIND_COLORS = {TrialKind.BASELINE: "#6b7280", TrialKind.MINIBATCH: "#60a5fa", TrialKind.FULL: "#16a34a"}
_PRUNED_COLOR = "#f59e0b"


def trial_plot_svg(trials: Sequence[TrialLog], width: int = 640, height: int = 240) -> str:
    """Inline SVG: each evaluation's score as a dot (by kind; pruned ones apart) and the best full score so far as a step line."""
    pad = 36
    n = max(1, len(trials) - 1)

    def x(index: int) -> float:
        return pad + (width - 2 * pad) * index / n

    def y(score: float) -> float:
        return height - pad - (height - 2 * pad) * max(0.0, min(1.0, float(score)))

    dots = "".join(
        f"<circle cx='{x(i):.1f}' cy='{y(t.score):.1f}' r='4' fill='{_PRUNED_COLOR if t.pruned else _KIND_COLORS[t.kind]}'>"
        f"<title>#{t.number} {kind_label(t)}: {t.score:.3f} on {t.num_examples}</title></circle>"
        for i, t in enumerate(trials)
    )
    steps = []  # best so far holds until the next evaluation: a step line, not a slope
    for i, t in enumerate(trials):
        level = y(t.best_full_score)
        steps.append(f"{x(i):.1f},{level:.1f}")
        if i + 1 < len(trials):
            steps.append(f"{x(i + 1):.1f},{level:.1f}")
    best = " ".join(steps)
    axes = (
        f"<line x1='{pad}' y1='{y(0):.1f}' x2='{width - pad}' y2='{y(0):.1f}' stroke='#999'/>"
        f"<line x1='{pad}' y1='{y(0):.1f}' x2='{pad}' y2='{y(1):.1f}' stroke='#999'/>"
        + "".join(
            f"<text x='{pad - 6}' y='{y(v) + 4:.1f}' font-size='10' text-anchor='end'>{v:.1f}</text>" for v in (0.0, 0.5, 1.0)
        )
        + f"<text x='{width / 2:.0f}' y='{height - 6}' font-size='11' text-anchor='middle'>evaluation</text>"
    )
    legend = "".join(f"<span style='color:{c}'>&#9679; {k.value}</span>" for k, c in _KIND_COLORS.items())
    legend += f"<span style='color:{_PRUNED_COLOR}'>&#9679; stopped early (racing)</span>"
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' aria-label='score per trial'>"
        f"{axes}<polyline points='{best}' fill='none' stroke='#16a34a' stroke-width='2' stroke-dasharray='4 2'/>{dots}</svg>"
        f"<div class='legend'>{legend}<span>- - best full score so far</span></div>"
    )
