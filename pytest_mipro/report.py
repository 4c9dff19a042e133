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
from .lockfile import LockEntry
from .optimizer.evaluate import ExampleResult
from .optimizer.search import TrialLog
from .targets import Evaluation, TrialProgress

WORST = 5  # examples shown in a failure message
_VALUE_CHARS = 60

# ---------------------------------------------------------------- records


def new_record(name: str, nodeid: str, mode: str) -> dict[str, Any]:
    return {"target": name, "nodeid": nodeid, "mode": mode, "outcome": None, "message": None}


def fill_from_entry(record: dict[str, Any], entry: LockEntry) -> None:
    record.update(score=entry.score, baseline_score=entry.baseline_score, threshold=entry.threshold, n=entry.n, calls=0)


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
        step = "baseline" if trial.kind == "baseline" else f"{trial.kind} eval"
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


def below_threshold_message(name: str, evaluation: Evaluation, threshold: float, source: str) -> str:
    head = (
        f"mipro target {name!r}: score {evaluation.score:.3f} is below the threshold {threshold:.3f} ({source})"
        f" on {len(evaluation.results)} examples."
    )
    worst = [r for r in sorted(evaluation.results, key=lambda r: r.score) if r.score < 1.0 or r.failed][:WORST]
    if not worst:
        return head
    return "\n".join([head, f"Worst {len(worst)} examples:", *(f"  {line}" for line in map(describe_example, worst))])


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
            ["target", "mode", "score", "threshold", "n", "calls", "cache hits", "outcome"],
            [
                [
                    r["target"],
                    str(r.get("mode")),
                    _score(r.get("score")),
                    _score(r.get("threshold")),
                    str(r.get("n", "-")),
                    str(r.get("calls", 0)),
                    str(r.get("cache_hits", 0)),
                    str(r.get("outcome")),
                ]
                for r in sorted(gated, key=lambda r: (r["target"], r.get("nodeid", "")))
            ],
        )
    return lines


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
    header = "".join(f"<th>{h}</th>" for h in ("target", "mode", "outcome", "baseline", "score", "threshold", "n", "calls", "cost"))
    rows = []
    for r in records:
        outcome = _e(r.get("outcome"))
        cells = [
            f"<a href='#{_anchor(r)}'>{_e(r['target'])}</a>",
            _e(r.get("mode")),
            f"<span class='{outcome}'>{outcome}</span>",
            _score(r.get("baseline_score")),
            _score(r.get("score")),
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

    colors = {"baseline": "#6b7280", "minibatch": "#60a5fa", "full": "#16a34a", "full-pruned": "#f59e0b"}
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
