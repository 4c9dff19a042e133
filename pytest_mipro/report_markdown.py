"""The run as GitHub-flavoured Markdown: a CI job's summary (``$GITHUB_STEP_SUMMARY``) or ``--mipro-report summary.md``.

One table of every target, failures first (verdict, score with bounds, threshold, the change
against the lock with its p-value, examples, calls, cost), then, for each target that failed
or warned, its message and worst examples in a collapsed ``<details>`` section.
"""

from __future__ import annotations

import html
import json

from .optimizer.evaluate import ExampleResult
from .outcome import TargetOutcome, example_result_to_dict
from .report import FAILING, WORST, RunReport, headline, result_kind

MARKER = "<!-- pytest-mipro summary -->"
DETAILS_LIMIT = 20  # targets whose worst examples are shown; the HTML report has them all
_CELL = 120
_ICONS = {"PASS": "✅", "fresh": "✅", "passed": "✅", "INCONCLUSIVE": "⚠️"}


def markdown_summary(run: RunReport) -> str:
    """The summary: a headline, the table, and the failing or warned targets' details."""
    outcomes = run.ordered()
    lines = [MARKER, f"### pytest-mipro ({run.mode}): {headline(outcomes)}", "", _counts(outcomes), ""]
    lines += _table(run, outcomes)
    noted = [o for o in outcomes if result_kind(o) in FAILING or o.warning]
    for outcome in noted[:DETAILS_LIMIT]:
        lines += ["", *_details(outcome)]
    if len(noted) > DETAILS_LIMIT:
        lines += ["", f"{len(noted) - DETAILS_LIMIT} more targets failed or warned: their details are in the HTML report."]
    return "\n".join(lines) + "\n"


def _counts(outcomes: list[TargetOutcome]) -> str:
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        kinds[result_kind(outcome)] = kinds.get(result_kind(outcome), 0) + 1
    return " · ".join(f"{_icon(kind)} {kind}: {count}" for kind, count in kinds.items())


def _icon(kind: str) -> str:
    return _ICONS.get(kind, "❌")


def _table(run: RunReport, outcomes: list[TargetOutcome]) -> list[str]:
    lines = [
        "| | target | verdict | score [bounds] | threshold | vs lock | n | calls | cost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        change = run.change(outcome)
        kind = result_kind(outcome)
        cells = [
            _icon(kind),
            _cell(outcome.target),
            kind,
            _score_with_bounds(outcome),
            _number(outcome.threshold),
            "-" if change is None else change.text(),
            _examples(outcome),
            str(outcome.counts.calls),
            f"${outcome.counts.usage.cost:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _score_with_bounds(outcome: TargetOutcome) -> str:
    bounds = outcome.bounds
    text = _number(outcome.score)
    return text if bounds is None else f"{text} [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def _number(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def _examples(outcome: TargetOutcome) -> str:
    judgement = outcome.judgement
    if judgement is not None:
        return str(judgement.evaluated) if judgement.evaluated == judgement.total else f"{judgement.evaluated}/{judgement.total}"
    if outcome.evaluation is not None:
        return str(outcome.evaluation.n)
    return "-" if outcome.entry is None else str(outcome.entry.n)


def _details(outcome: TargetOutcome) -> list[str]:
    worst = [] if outcome.evaluation is None else outcome.evaluation.failures[:WORST]
    title = f"<code>{html.escape(outcome.target)}</code>: {html.escape(result_kind(outcome))}"
    if worst:
        title += f", the worst {len(worst)} examples"
    lines = [f"<details><summary>{title}</summary>", ""]
    if outcome.message:
        message = outcome.message.split("\nWorst ")[0] if worst else outcome.message  # the table below lists them
        fence = "`" * max(3, _longest_backticks(message) + 1)
        lines += [f"{fence}text", message, fence, ""]
    if worst:
        lines += ["| example | score | inputs | expected | got |", "|---|---|---|---|---|"]
        lines += [_example_row(result) for result in worst]
        lines.append("")
    return [*lines, "</details>"]


def _example_row(result: ExampleResult) -> str:
    record = example_result_to_dict(result)
    error = result.error or result.parse_error
    got = f"error: {error}" if error else _fields(record["prediction"], exclude=record["inputs"])
    cells = [f"`{record['id']}`", f"{result.score:.2f}", _fields(record["inputs"]), _fields(record["expected"]), got]
    return "| " + " | ".join(_cell(cell) if i > 0 else cell for i, cell in enumerate(cells)) + " |"


def _fields(value: object, exclude: object = None) -> str:
    if not isinstance(value, dict):
        return "-"
    skip = exclude if isinstance(exclude, dict) else {}
    return ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in value.items() if k not in skip)


def _cell(text: str) -> str:
    """Text safe in a table cell: one line, no pipes or HTML, at most ``_CELL`` characters."""
    flat = " ".join(str(text).split())
    if len(flat) > _CELL:
        flat = flat[: _CELL - 1] + "…"
    return html.escape(flat, quote=False).replace("|", "\\|").replace("`", "'")


def _longest_backticks(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest
