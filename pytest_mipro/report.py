"""Text for people and files for machines: progress lines, failure messages, the summary
table, and the JSON and HTML reports. Nothing here writes to the terminal.

A *record* is a JSON-able dict per target run (built with :func:`new_record`), so it can
travel from xdist workers to the controller and straight into the JSON report.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .fingerprint import describe
from .gate import GateRun, Judgement, score_bounds
from .lockfile import LockEntry
from .optimizer.evaluate import ExampleResult
from .optimizer.search import TrialLog
from .stats import RegressionResult
from .targets import Evaluation, TrialProgress

WORST = 5  # examples shown in a failure message
_VALUE_CHARS = 60

# ---------------------------------------------------------------- records


def new_record(name: str, nodeid: str, mode: str) -> dict[str, Any]:
    return {"target": name, "nodeid": nodeid, "mode": mode, "outcome": None, "message": None}


def fill_from_entry(record: dict[str, Any], entry: LockEntry) -> None:
    """A checked (not evaluated) target: what the lock says, with the locked score's bounds."""
    record.update(score=entry.score, baseline_score=entry.baseline_score, threshold=entry.threshold, n=entry.n, calls=0)
    bounds = entry.bounds
    scores = entry.results.get("scores")
    if bounds is None and scores:
        bounds = score_bounds([float(x) for x in scores])  # entries locked before bounds were stored
    if bounds is not None:
        record.update(lower=round(bounds[0], 6), upper=round(bounds[1], 6))


def fill_from_evaluation(record: dict[str, Any], evaluation: Evaluation, threshold: float | None, source: str) -> None:
    usage = evaluation.usage
    record.update(
        score=evaluation.score,
        threshold=threshold,
        threshold_source=source,
        n=len(evaluation.results),
        calls=int(usage.get("calls", 0)),
        cache_hits=int(usage.get("cache_hits", 0)),
        tokens=int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)),
        cost=float(usage.get("cost", 0.0)),
        seconds=round(evaluation.seconds, 3),
        examples=[example_record(r) for r in evaluation.results],
    )


def fill_from_gate(record: dict[str, Any], gate: GateRun) -> None:
    """A gate run: the evaluation, the verdict with its bounds, early stopping and repeats."""
    policy, judgement = gate.policy, gate.judgement
    fill_from_evaluation(record, gate.evaluation, policy.threshold, policy.threshold_source)
    fill_from_judgement(record, judgement)
    record.update(n=judgement.evaluated, n_total=judgement.total, repeats=policy.repeats, min_drop=policy.min_drop)
    if judgement.curtailed:
        record.update(curtailed=True, skipped=gate.skipped, saved_calls=gate.saved_calls)
    if policy.repeats > 1:
        record.update(pass_rate=round(gate.pass_rate, 6), pass_all=round(gate.pass_all, 6))


def fill_from_judgement(record: dict[str, Any], judgement: Judgement) -> None:
    """The verdict and its evidence, as plain data (also what the JSON report shows)."""
    record.update(
        verdict=judgement.verdict,
        lower=round(judgement.lower, 6),
        upper=round(judgement.upper, 6),
        needed_n=judgement.needed_n,
        regression=None if judgement.regression is None else regression_record(judgement.regression, judgement.regression_bound),
    )


def regression_record(result: RegressionResult, bound: str | None = None) -> dict[str, Any]:
    return {
        "method": result.method,
        "locked_score": round(result.before_mean, 6),
        "score": round(result.after_mean, 6),
        "drop": round(result.drop, 6),
        "p_value": result.p_value,
        "significant": result.significant,
        "regressed": result.regressed,
        "n": result.n,
        "b": result.b,
        "c": result.c,
        "bound": bound,
    }


def fill_from_optimization(record: dict[str, Any], entry: LockEntry, trials: Sequence[TrialLog]) -> None:
    """An optimized target reports what the whole search spent, not just the final evaluation."""
    record.update(
        baseline_score=entry.baseline_score,
        trials_planned=entry.optimizer.get("trials"),
        task_model=entry.task_model,
        prompt_model=entry.prompt_model,
        trials=[t.to_dict() for t in trials],
    )
    fill_counts(record, entry.counts)


def fill_counts(record: dict[str, Any], counts: Mapping[str, Any]) -> None:
    """Spending columns of a record from lock-entry ``counts``."""
    record.update(
        calls=int(counts.get("calls", 0)),
        cache_hits=int(counts.get("cache_hits", 0)),
        tokens=int(counts.get("prompt_tokens", 0)) + int(counts.get("completion_tokens", 0)),
        cost=float(counts.get("cost", 0.0)),
        seconds=float(counts.get("seconds", 0.0)),
    )


def example_record(result: ExampleResult) -> dict[str, Any]:
    example = result.example
    inputs = example.inputs() if example.input_keys is not None else example
    return {
        "id": example.uid,
        "score": result.score,
        "inputs": _plain(dict(inputs)),
        "expected": _plain(dict(example.labels())),
        "prediction": None if result.prediction is None else _plain(dict(result.prediction)),
        "error": result.error or result.parse_error,
    }


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in data.items()}


# ---------------------------------------------------------------- progress lines


def start_line(name: str) -> str:
    return f"mipro {name}: optimizing"


def trial_line(progress: TrialProgress) -> str:
    trial, usage = progress.trial, progress.usage
    if progress.counted:
        step = f"trial {progress.number}/{progress.total or '?'} ({trial.kind})"
    else:
        step = trial.kind if trial.kind.startswith("baseline") else f"{trial.kind} eval"
    tokens = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
    return (
        f"mipro {progress.target}: {step} score {trial.score:.3f} on {trial.num_examples}"
        f" | best full {trial.best_full_score:.3f} | calls {usage.get('calls', 0)} ({usage.get('cache_hits', 0)} cached)"
        f" | tokens {_si(tokens)} | cost ${float(usage.get('cost', 0.0)):.4f} | {progress.elapsed:.1f}s"
    )


def done_line(record: Mapping[str, Any]) -> str:
    return (
        f"mipro {record['target']}: {_score(record.get('baseline_score'))} -> {_score(record.get('score'))}"
        f" in {record.get('trials_planned', '?')} trials, {record.get('calls', 0)} calls, {float(record.get('seconds', 0)):.1f}s"
    )


def _si(number: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(number) >= size:
            return f"{number / size:.1f}{unit}"
    return str(int(number))


def _score(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
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
    worst = [r for r in sorted(evaluation.results, key=lambda r: r.score) if r.score < 1.0 or r.failed][:WORST]
    if worst:
        lines += [f"Worst {len(worst)} examples:", *(f"  {line}" for line in map(describe_example, worst))]
    return "\n".join(lines)


def _verdict_head(name: str, judgement: Judgement, source: str, strict: bool) -> str:
    threshold = judgement.threshold
    if judgement.verdict == "INCONCLUSIVE" and threshold is not None:
        consequence = "failing because of --mipro-strict" if strict else "--mipro-strict would make this a failure"
        return (
            f"mipro target {name!r}: INCONCLUSIVE: the threshold {threshold:.3f} ({source}) lies inside the score's"
            f" one-sided 95% bounds {_interval(judgement.lower, judgement.upper)}; {_decide(judgement)} ({consequence})."
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
        f" one-sided 95% bounds {_interval(judgement.lower, judgement.upper)}, {threshold}."
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


def _interval(lower: Any, upper: Any) -> str:
    if lower is None or upper is None:
        return "-"
    return f"[{float(lower):.3f}, {float(upper):.3f}]"


def describe_example(result: ExampleResult) -> str:
    record = example_record(result)
    inputs = ", ".join(f"{k}={_short(v)}" for k, v in record["inputs"].items())
    expected = ", ".join(f"{k}={_short(v)}" for k, v in record["expected"].items())
    text = f"[{record['id']}] score {result.score:.2f}: {inputs} | expected {expected}"
    if record["prediction"] is not None:
        got = ", ".join(f"{k}={_short(v)}" for k, v in record["prediction"].items() if k not in record["inputs"])
        text += f" | got {got}"
    if record["error"]:
        text += f" | error: {_short(record['error'])}"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."


def unused_message(names: Iterable[str], lockfile: Path) -> str:
    listed = ", ".join(repr(n) for n in names)
    return f"{lockfile} has entries that no collected test uses: {listed}. Remove them, or rename the marker back."


# ---------------------------------------------------------------- end-of-run summary


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Tables of optimized and gated targets (empty when no target ran)."""
    lines: list[str] = []
    optimized = [r for r in records if r.get("mode") == "optimize" and r.get("trials") is not None]
    gated = [r for r in records if r not in optimized]
    if optimized:
        lines += _table(
            ["target", "baseline -> optimized", "threshold", "trials", "calls", "cache hits", "tokens", "cost", "time"],
            [
                [
                    r["target"],
                    f"{_score(r.get('baseline_score'))} -> {_score(r.get('score'))}",
                    _score(r.get("threshold")),
                    str(r.get("trials_planned", "-")),
                    str(r.get("calls", 0)),
                    str(r.get("cache_hits", 0)),
                    _si(r.get("tokens", 0)),
                    f"${float(r.get('cost', 0.0)):.4f}",
                    f"{float(r.get('seconds', 0.0)):.1f}s",
                ]
                for r in sorted(optimized, key=lambda r: r["target"])
            ],
        )
    if gated:
        lines += _table(
            ["target", "mode", "score", "bounds", "threshold", "vs lock", "n", "calls", "cache hits", "verdict", "outcome"],
            [
                [
                    r["target"],
                    str(r.get("mode")),
                    _score(r.get("score")),
                    _interval(r.get("lower"), r.get("upper")),
                    _score(r.get("threshold")),
                    _versus_lock(r.get("regression")),
                    _examples(r),
                    str(r.get("calls", 0)),
                    str(r.get("cache_hits", 0)),
                    str(r.get("verdict") or "-"),
                    str(r.get("outcome")),
                ]
                for r in sorted(gated, key=lambda r: (r["target"], r.get("nodeid", "")))
            ],
        )
    return lines + [line for r in records for line in note_lines(r)]


def note_lines(record: Mapping[str, Any]) -> list[str]:
    """What a target's table row cannot say: early stopping, repeated samples, the holdout decision."""
    name, notes = record["target"], []
    if record.get("curtailed"):
        notes.append(
            f"mipro {name}: stopped after {record.get('n')} of {record.get('n_total')} examples once the verdict was settled;"
            f" skipped {record.get('skipped')} (about {_plural(int(record.get('saved_calls', 0)), 'LM call')} saved)"
        )
    repeats = int(record.get("repeats") or 1)
    if repeats > 1:
        notes.append(
            f"mipro {name}: {repeats} samples per example: pass rate {float(record.get('pass_rate', 0.0)):.3f},"
            f" pass^{repeats} {float(record.get('pass_all', 0.0)):.3f} (every sample of an example passes)"
        )
    if record.get("selection"):
        notes.append(f"mipro {name}: {selection_line(record['selection'])}")
    return notes


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_AGAINST = {"lock": "the current locked prompt", "unoptimized": "the unoptimized program"}


def selection_line(selection: Mapping[str, Any]) -> str:
    """How --mipro-optimize chose the locked prompt: the holdout, the one-SE rule, the decision."""
    source, labeled, held = selection.get("holdout_source"), selection.get("labeled"), selection.get("holdout")
    if source == "fixture":
        text = f"holdout: {held} examples from `mipro_holdout`; the search validated on {selection.get('validation')}"
    elif source == "split":
        text = f"holdout: {held} of {labeled} labeled examples (seeded split); the search validated on {selection.get('validation')}"
    else:
        text = (
            f"no holdout: {labeled} labeled examples, and a seeded holdout split needs {selection.get('min_for_split')}"
            " (or define a `mipro_holdout` fixture); locked the search's pick"
        )
    one_se = selection.get("one_se")
    if one_se and one_se["chars"] < one_se["best_chars"]:
        text += (
            f"; one-SE rule: took a {one_se['chars']}-character prompt scoring {one_se['score']:.3f}"
            f" over the best's {one_se['best_chars']} characters at {one_se['best_score']:.3f}"
        )
    decision = selection.get("decision")
    return text + (_decision_text(decision) if decision else "")


def _decision_text(decision: Mapping[str, Any]) -> str:
    against = _AGAINST.get(decision["against"], decision["against"])
    if decision["same_program"]:
        return f"; the search's pick is {against} itself (holdout score {_score(decision['new_score'])})"
    scores = f"holdout {_score(decision['new_score'])} vs {_score(decision['old_score'])} for {against}"
    bound = "n/a" if decision["lower_bound"] is None else f"{decision['lower_bound']:+.3f}"
    if decision["adopted"]:
        return f"; adopted the new prompt: {scores}, improvement {decision['improvement']:+.3f} (one-sided 95% lower bound {bound} > 0)"
    return (
        f"; kept {against}: {scores}, improvement {decision['improvement']:+.3f} is not significant"
        f" (one-sided 95% lower bound {bound} <= 0, n={decision['n']})"
    )


def _versus_lock(regression: Mapping[str, Any] | None) -> str:
    if not regression:
        return "-"
    change = 0.0 - float(regression["drop"])  # 0.0 - x: no "-0.000" for an unchanged score
    # After an early stop the check ran on the completion least favourable to the verdict:
    # the worst one bounds the change from below (and p too), the best one from above.
    side = {"worst": ">=", "best": "<="}.get(regression.get("bound") or "", "")
    return f"{side}{change:+.3f} (p{side or '='}{float(regression['p_value']):.2g})"


def _examples(record: Mapping[str, Any]) -> str:
    n, total = record.get("n", "-"), record.get("n_total")
    return f"{n}/{total}" if total is not None and total != n else str(n)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, rows), ""]


# ---------------------------------------------------------------- report files


def json_report(records: Sequence[Mapping[str, Any]], *, lockfile: Path, mode: str) -> dict[str, Any]:
    return {"version": 1, "mode": mode, "lockfile": str(lockfile), "targets": list(records)}


def write_report(path: Path, records: Sequence[Mapping[str, Any]], *, lockfile: Path, mode: str) -> None:
    """``.json``: the records as data; ``.html``: a self-contained page with a plot per target."""
    data = json_report(records, lockfile=lockfile, mode=mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".html":
        path.write_text(html_report(data), encoding="utf-8")
    else:
        path.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}
th{background:#f3f3f3}.passed{color:#166534}.failed,.stale,.missing,.error{color:#b91c1c}
svg{border:1px solid #ddd;background:#fff}.legend span{margin-right:1.5em;font-size:.85em}
"""


def html_report(data: Mapping[str, Any]) -> str:
    """One page, no network assets: a summary table, then per target a plot and the worst examples."""
    records = list(data.get("targets") or [])
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>pytest-mipro report</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>pytest-mipro report</h1><p>mode: {_e(data.get('mode'))} &middot; lockfile: {_e(data.get('lockfile'))}</p>",
        _html_summary(records),
    ]
    for record in records:
        parts.append(_html_target(record))
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _html_summary(records: Sequence[Mapping[str, Any]]) -> str:
    columns = ("target", "mode", "outcome", "verdict", "baseline", "score", "bounds", "threshold", "n", "calls", "cost")
    header = "".join(f"<th>{h}</th>" for h in columns)
    rows = []
    for r in records:
        outcome = _e(r.get("outcome"))
        cells = [
            f"<a href='#{_anchor(r)}'>{_e(r['target'])}</a>",
            _e(r.get("mode")),
            f"<span class='{outcome}'>{outcome}</span>",
            _e(r.get("verdict") or "-"),
            _score(r.get("baseline_score")),
            _score(r.get("score")),
            _interval(r.get("lower"), r.get("upper")),
            _score(r.get("threshold")),
            _e(r.get("n", "-")),
            _e(r.get("calls", 0)),
            f"${float(r.get('cost', 0.0) or 0.0):.4f}",
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _anchor(record: Mapping[str, Any]) -> str:
    return "t-" + "".join(c if c.isalnum() else "-" for c in str(record.get("nodeid") or record["target"]))


def _html_target(record: Mapping[str, Any]) -> str:
    parts = [f"<h2 id='{_anchor(record)}'>{_e(record['target'])}</h2>", f"<p>{_e(record.get('nodeid'))}</p>"]
    if record.get("message"):
        parts.append(f"<pre>{_e(record['message'])}</pre>")
    for note in note_lines(record):
        parts.append(f"<p>{_e(note)}</p>")
    if record.get("trials"):
        parts.append(trial_plot_svg(record["trials"]))
    examples = sorted(record.get("examples") or [], key=lambda x: x["score"])
    if examples:
        parts.append(_html_examples(examples))
    return "\n".join(parts)


def _html_examples(examples: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{c}</td>"
            for c in (
                _e(x["id"]),
                f"{x['score']:.2f}",
                _e(json.dumps(x.get("inputs"), ensure_ascii=False)),
                _e(json.dumps(x.get("expected"), ensure_ascii=False)),
                _e(json.dumps(x.get("prediction"), ensure_ascii=False)),
                _e(x.get("error") or ""),
            )
        )
        + "</tr>"
        for x in examples
    )
    head = "".join(f"<th>{h}</th>" for h in ("id", "score", "inputs", "expected", "prediction", "error"))
    return f"<table><tr>{head}</tr>{rows}</table>"


def trial_plot_svg(trials: Sequence[Mapping[str, Any]], width: int = 640, height: int = 240) -> str:
    """Inline SVG: each evaluation's score as a dot (by kind) and the best full score so far as a step line."""
    pad = 36
    n = max(1, len(trials) - 1)

    def x(index: int) -> float:
        return pad + (width - 2 * pad) * index / n

    def y(score: float) -> float:
        return height - pad - (height - 2 * pad) * max(0.0, min(1.0, float(score)))

    colors = {"baseline": "#6b7280", "minibatch": "#60a5fa", "full": "#16a34a"}
    colors.update({f"{kind}-pruned": "#f59e0b" for kind in colors})
    dots = "".join(
        f"<circle cx='{x(i):.1f}' cy='{y(t['score']):.1f}' r='4' fill='{colors.get(t['kind'], '#000')}'>"
        f"<title>#{t['number']} {t['kind']}: {float(t['score']):.3f} on {t.get('num_examples', '?')}</title></circle>"
        for i, t in enumerate(trials)
    )
    steps = []  # best so far holds until the next evaluation: a step line, not a slope
    for i, t in enumerate(trials):
        level = y(t["best_full_score"])
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
    legend = "".join(f"<span style='color:{c}'>&#9679; {k}</span>" for k, c in colors.items())
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' aria-label='score per trial'>"
        f"{axes}<polyline points='{best}' fill='none' stroke='#16a34a' stroke-width='2' stroke-dasharray='4 2'/>{dots}</svg>"
        f"<div class='legend'>{legend}<span>- - best full score so far</span></div>"
    )
