"""The HTML report (``--mipro-report report.html``): one self-contained page for a person.

No network assets: the style, the charts (inline SVG) and a few lines of JavaScript (the
example filters) are in the page. Readable at desktop width and on a phone: long text wraps,
and tables turn into cards on a narrow screen. Targets come failures first, each in a
collapsible section (failed and warned ones open) holding a verdict badge, a chart of the
score with its bounds against the threshold and the locked score, the locked prompt (in
optimize mode with its diff against the entry it replaces), the trial history and the
per-example results with a filter (all / failed / flipped).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence

from .diff import PredictorDiff, TargetDiff
from .lockfile import PredictorLock
from .optimizer.evaluate import ExampleResult
from .optimizer.search import TrialLog
from .optimizer.study import TrialKind
from .outcome import Mode, TargetOutcome, example_result_to_dict
from .report import FAILING, RunReport, by_kind, headline, kind_label, note_lines, result_kind

OPEN_ALL_UP_TO = 10  # with this many targets or fewer, every section starts open
OPEN_FAILING_UP_TO = 25  # else the first failing or warned sections start open, up to this many

_STYLE = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--pass:#1a7f37;--fail:#cf222e;--warn:#9a6700;--blue:#0969da}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);margin:0 auto;padding:1rem 1.25rem 3rem;max-width:76rem}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.1rem;margin:0;display:inline}h3{font-size:1rem;margin:1.2rem 0 .4rem}
h4{font-size:.95rem;margin:.8rem 0 .3rem}
p,li,td,th,pre,code,summary,div{overflow-wrap:anywhere}
pre{white-space:pre-wrap;background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem;font-size:.85rem}
code{font-size:.88em}
.muted{color:var(--muted)}.small{font-size:.85rem}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:.78rem;font-weight:600;color:#fff;
 vertical-align:middle;white-space:nowrap}
.b-pass{background:var(--pass)}.b-fail{background:var(--fail)}.b-warn{background:var(--warn)}.b-none{background:#6e7781}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem}
th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.88rem}
th{background:var(--bg);font-weight:600;white-space:nowrap;overflow-wrap:normal}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
details.target{border:1px solid var(--line);border-radius:8px;margin:.8rem 0;padding:.2rem .9rem .6rem}
details.target>summary{cursor:pointer;padding:.4rem 0;list-style-position:outside}
details.target[open]>summary{border-bottom:1px solid var(--line);margin-bottom:.4rem}
.fields div{white-space:pre-wrap}.fields b{font-weight:600;color:var(--muted)}
del{background:#ffebe9;color:#82071e}ins{background:#dafbe1;color:#116329;text-decoration:none}
.demo{border-left:3px solid var(--line);padding:.1rem .6rem;margin:.3rem 0}
.demo.added{border-color:var(--pass);background:#f0fff4}.demo.removed{border-color:var(--fail);background:#fff5f5}
.filters{display:flex;flex-wrap:wrap;gap:.4rem;margin:.3rem 0}
.filters button{font:inherit;font-size:.85rem;border:1px solid var(--line);background:#fff;border-radius:6px;
 padding:.15rem .6rem;cursor:pointer}
.filters button[aria-pressed=true]{background:var(--blue);border-color:var(--blue);color:#fff}
[data-show=failed] tbody tr:not(.failed),[data-show=flipped] tbody tr:not(.flipped){display:none}
tr.failed td.score{color:var(--fail);font-weight:600}
tr.flipped td.id::after{content:" flipped";color:var(--warn);font-size:.78rem;font-weight:600}
svg{max-width:100%;height:auto;display:block}
.legend{font-size:.8rem;color:var(--muted)}.legend span{margin-right:1rem;white-space:nowrap}
.kinds span{margin-right:1rem;white-space:nowrap}
@media (max-width:700px){
 body{padding:.6rem .7rem 2rem}
 table.cards thead{display:none}
 table.cards tr{display:block;border:1px solid var(--line);border-radius:6px;margin:.5rem 0;padding:.2rem .4rem}
 table.cards td{display:block;border:0;padding:.1rem .2rem}
 table.cards td:empty{display:none}
 table.cards td::before{content:attr(data-label);font-weight:600;color:var(--muted);margin-right:.5rem}
 details.target{padding:.2rem .5rem .5rem}
}
"""

# The filters: a click on a button sets its container's data-show; CSS hides the other rows.
_SCRIPT = """
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("button[data-filter]") : null;
  if (!button) return;
  var box = button.closest("[data-show]");
  box.setAttribute("data-show", button.getAttribute("data-filter"));
  box.querySelectorAll("button[data-filter]").forEach(function (other) {
    other.setAttribute("aria-pressed", String(other === button));
  });
});
"""

_BADGES = {"PASS": "b-pass", "fresh": "b-pass", "passed": "b-pass", "INCONCLUSIVE": "b-warn"}


def html_report(run: RunReport) -> str:
    """The page: a headline, the table of every target (failures first), then a section per target."""
    outcomes = run.ordered()
    opened = _opened(outcomes)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>pytest-mipro report: {_e(headline(outcomes))}</title><style>{_STYLE}</style></head><body>",
        "<header id='overview'><h1>pytest-mipro report</h1>",
        f"<p class='muted'>mode <b>{_e(run.mode)}</b> · lockfile <code>{_e(run.lockfile)}</code></p>",
        f"<p><b>{_e(headline(outcomes))}</b></p>{_kinds(outcomes)}</header>",
        _summary_table(run, outcomes),
        "<main id='targets'>",
        *(_target(run, outcome, opened=outcome in opened) for outcome in outcomes),
        "</main>",
        f"<script>{_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _opened(outcomes: Sequence[TargetOutcome]) -> list[TargetOutcome]:
    if len(outcomes) <= OPEN_ALL_UP_TO:
        return list(outcomes)
    return [o for o in outcomes if result_kind(o) in FAILING or o.warning][:OPEN_FAILING_UP_TO]


def _badge(kind: str) -> str:
    css = _BADGES.get(kind, "b-fail" if kind in FAILING else "b-none")
    return f"<span class='badge {css}'>{_e(kind)}</span>"


def _kinds(outcomes: Sequence[TargetOutcome]) -> str:
    groups = by_kind(outcomes)
    return "<p class='kinds'>" + "".join(f"<span>{_badge(k)} {len(g)}</span>" for k, g in groups.items()) + "</p>"


def _anchor(outcome: TargetOutcome) -> str:
    return "t-" + "".join(c if c.isalnum() else "-" for c in (outcome.nodeid or outcome.target))


def _score(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def _bounds(outcome: TargetOutcome) -> str:
    bounds = outcome.bounds
    return "-" if bounds is None else f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


# ---------------------------------------------------------------- the table of targets


def _summary_table(run: RunReport, outcomes: Sequence[TargetOutcome]) -> str:
    failed = sum(result_kind(o) in FAILING for o in outcomes)
    columns = ("target", "verdict", "score", "bounds", "threshold", "vs lock", "n", "calls", "cost")
    head = "".join(f"<th>{c}</th>" for c in columns)
    rows = "".join(_summary_row(run, o) for o in outcomes)
    return (
        "<section id='summary' data-show='all'><h3>Targets</h3>"
        + _filters([("all", len(outcomes)), ("failed", failed)])
        + f"<table class='cards'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _summary_row(run: RunReport, outcome: TargetOutcome) -> str:
    kind = result_kind(outcome)
    change = run.change(outcome)
    n = outcome.evaluation.n if outcome.evaluation is not None else (outcome.entry.n if outcome.entry else None)
    cells = [
        ("target", f"<a href='#{_anchor(outcome)}'>{_e(outcome.target)}</a>"),
        ("verdict", _badge(kind)),
        ("score", _score(outcome.score)),
        ("bounds", _bounds(outcome)),
        ("threshold", _score(outcome.threshold)),
        ("vs lock", "-" if change is None else _e(change.text())),
        ("n", "-" if n is None else str(n)),
        ("calls", str(outcome.counts.calls)),
        ("cost", f"${outcome.counts.usage.cost:.4f}"),
    ]
    css = " class='failed'" if kind in FAILING else ""
    return f"<tr{css}>" + "".join(_td(label, value, num=label != "target") for label, value in cells) + "</tr>"


def _td(label: str, value: str, *, num: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in (css, "num" if num else "") if c)
    attr = f" class='{classes}'" if classes else ""
    return f"<td data-label='{_e(label)}'{attr}>{value}</td>"


def _filters(choices: Sequence[tuple[str, int]]) -> str:
    buttons = "".join(
        f"<button type='button' data-filter='{name}' aria-pressed='{str(i == 0).lower()}'>{name} ({count})</button>"
        for i, (name, count) in enumerate(choices)
    )
    return f"<div class='filters'>{buttons}</div>"


# ---------------------------------------------------------------- one target


def _target(run: RunReport, outcome: TargetOutcome, *, opened: bool) -> str:
    kind = result_kind(outcome)
    summary = (
        f"<summary>{_badge(kind)} <h2>{_e(outcome.target)}</h2> <span class='muted small'>score {_score(outcome.score)}"
        f" {_bounds(outcome)} · threshold {_score(outcome.threshold)} · {_e(outcome.mode.value)}</span></summary>"
    )
    parts = [f"<details class='target' id='{_anchor(outcome)}'{' open' if opened else ''}>", summary]
    parts.append(f"<p class='muted small'>{_e(outcome.nodeid)}</p>")
    if outcome.message:
        parts.append(f"<pre class='message'>{_e(outcome.message)}</pre>")
    parts += [f"<p class='small'>{_e(line)}</p>" for line in note_lines(outcome)]
    parts.append(_score_section(run, outcome))
    parts.append(_prompt_section(run, outcome))
    if outcome.trials:
        parts.append(f"<section class='trials'><h3>Trial history</h3>{trial_plot_svg(outcome.trials)}</section>")
    parts.append(_examples_section(run, outcome))
    parts.append("</details>")
    return "\n".join(p for p in parts if p)


def _score_section(run: RunReport, outcome: TargetOutcome) -> str:
    if outcome.score is None or outcome.score != outcome.score:
        return ""
    reference = run.reference(outcome)
    locked = None if reference is None else reference.score
    change = run.change(outcome)
    text = f"Score {_score(outcome.score)}, one-sided 95% bounds {_bounds(outcome)}, threshold {_score(outcome.threshold)}"
    if locked is not None and locked == locked:
        text += f", locked score {_score(locked)}"
    if change is not None:
        text += f"; against the lock {change.text()} on {change.n} shared examples"
    chart = score_chart_svg(outcome.score, outcome.bounds, outcome.threshold, locked)
    return f"<section class='score'><h3>Score</h3>{chart}<p class='small'>{_e(text)}.</p></section>"


# ---------------------------------------------------------------- the locked prompt


def _prompt_section(run: RunReport, outcome: TargetOutcome) -> str:
    entry = outcome.entry
    if entry is None:
        return ""
    diff = run.prompt_diff(outcome)
    title = "Locked prompt" if outcome.mode is not Mode.OPTIMIZE else "Prompt locked by this run"
    if diff is not None:
        title += " (changes against the previous lock)" if diff.prompts_changed else " (the same as the previous lock)"
    predictors = [_predictor(name, lock, _predictor_diff(diff, name)) for name, lock in entry.predictors.items()]
    removed = [] if diff is None else [p for p in diff.predictors if p.status == "removed"]
    predictors += [f"<h4><code>{_e(p.name)}</code> <del>removed</del></h4>" for p in removed]
    return f"<section class='prompt'><h3>{_e(title)}</h3>{''.join(predictors)}</section>"


def _predictor_diff(diff: TargetDiff | None, name: str) -> PredictorDiff | None:
    if diff is None:
        return None
    return next((p for p in diff.predictors if p.name == name), None)


def _predictor(name: str, lock: PredictorLock, diff: PredictorDiff | None) -> str:
    status = "" if diff is None or diff.status == "unchanged" else f" <span class='badge b-warn'>{_e(diff.status)}</span>"
    head = f"<h4><code>{_e(name)}</code> <span class='muted small'>{_e(lock.signature)}</span>{status}</h4>"
    if diff is not None and diff.instruction_words:
        instructions = "".join(_word_run(op, text) for op, text in diff.instruction_words)
    else:
        instructions = _e(lock.instructions)
    body = f"<pre class='instructions'>{instructions}</pre>"
    return head + body + _demos(lock, diff)


def _word_run(op: str, text: str) -> str:
    tag = {"-": "del", "+": "ins"}.get(op)
    return _e(text) if tag is None else f"<{tag}>{_e(text)}</{tag}>"


def _demos(lock: PredictorLock, diff: PredictorDiff | None) -> str:
    added = [] if diff is None else [json.dumps(d, sort_keys=True, default=str) for d in diff.demos_added]
    items = []
    for demo in lock.demos:
        key = json.dumps(demo, sort_keys=True, default=str)
        css = "demo added" if key in added else "demo"
        if key in added:
            added.remove(key)
        items.append(f"<div class='{css}'>{_demo_fields(demo)}</div>")
    if diff is not None:
        items += [f"<div class='demo removed'><del>{_demo_fields(d)}</del></div>" for d in diff.demos_removed]
    if not items:
        return "<p class='muted small'>No demos.</p>"
    return f"<p class='small'><b>Demos ({len(lock.demos)})</b></p>" + "".join(items)


def _demo_fields(demo: Mapping[str, object]) -> str:
    """A demo's fields; dspy's ``augmented`` marker (never sent to the model) becomes a tag."""
    tag = "<span class='muted small'>bootstrapped from a teacher run</span>" if demo.get("augmented") else ""
    return _fields({k: v for k, v in demo.items() if k != "augmented"}) + tag


def _fields(values: Mapping[str, object] | object, exclude: Mapping[str, object] | None = None) -> str:
    if not isinstance(values, Mapping):
        return "-"
    shown = [(k, v) for k, v in values.items() if not exclude or k not in exclude]
    return "<div class='fields'>" + "".join(f"<div><b>{_e(k)}:</b> {_e(v)}</div>" for k, v in shown) + "</div>"


# ---------------------------------------------------------------- per-example results


def _examples_section(run: RunReport, outcome: TargetOutcome) -> str:
    evaluation = outcome.evaluation
    if evaluation is None or not evaluation.results:
        return ""
    flipped = run.flipped(outcome)
    results = sorted(evaluation.results, key=lambda r: (r.score, r.example.uid not in flipped))
    failed = sum(_failed(r) for r in results)
    columns = ("example", "score", "locked", "inputs", "expected", "prediction")
    head = "".join(f"<th>{c}</th>" for c in columns)
    rows = "".join(_example_row(r, flipped) for r in results)
    flips = sum(r.example.uid in flipped for r in results)
    return (
        "<section class='examples' data-show='all'><h3>Examples</h3>"
        + _filters([("all", len(results)), ("failed", failed), ("flipped", flips)])
        + f"<table class='cards'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _failed(result: ExampleResult) -> bool:
    return result.score < 1.0 or result.failed


def _example_row(result: ExampleResult, flipped: Mapping[str, float]) -> str:
    record = example_result_to_dict(result)
    uid = result.example.uid
    inputs = record["inputs"] if isinstance(record["inputs"], dict) else {}
    error = result.error or result.parse_error
    prediction = _fields(record["prediction"], exclude=inputs)
    if error:
        prediction += f"<div class='muted'>error: {_e(error)}</div>"
    classes = " ".join(c for c in ("failed" if _failed(result) else "", "flipped" if uid in flipped else "") if c)
    cells = [
        _td("example", f"<code>{_e(uid)}</code>", css="id"),
        _td("score", f"{result.score:.2f}", num=True, css="score"),
        _td("locked", _score(flipped[uid]) if uid in flipped else "", num=True),
        _td("inputs", _fields(inputs)),
        _td("expected", _fields(record["expected"])),
        _td("prediction", prediction),
    ]
    return f"<tr class='{classes}'>" + "".join(cells) + "</tr>"


# ---------------------------------------------------------------- charts


def score_chart_svg(
    score: float, bounds: tuple[float, float] | None, threshold: float | None, locked: float | None, width: int = 440
) -> str:
    """Inline SVG on a 0..1 axis: the bounds as a band, the score as a dot, the threshold and the locked score as marks.

    Narrow enough (``width`` units, 13-unit labels) to stay readable scaled to a phone's width."""
    left, right, mid = 24.0, width - 24.0, 46.0

    def x(value: float) -> float:
        return left + (right - left) * max(0.0, min(1.0, float(value)))

    parts = [f"<line x1='{left}' y1='{mid}' x2='{right}' y2='{mid}' stroke='#8c959f'/>"]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f"<line x1='{x(tick):.1f}' y1='{mid - 4}' x2='{x(tick):.1f}' y2='{mid + 4}' stroke='#8c959f'/>")
        parts.append(f"<text x='{x(tick):.1f}' y='{mid + 18}' font-size='13' text-anchor='middle' fill='#59636e'>{tick:g}</text>")
    if bounds is not None:
        lo, hi = x(bounds[0]), x(bounds[1])
        parts.append(
            f"<rect class='bounds' x='{lo:.1f}' y='{mid - 9}' width='{max(hi - lo, 1.0):.1f}' height='18' rx='4'"
            f" fill='#0969da' fill-opacity='.18'><title>one-sided 95% bounds [{bounds[0]:.3f}, {bounds[1]:.3f}]</title></rect>"
        )
    if threshold is not None:
        tx = x(threshold)
        parts.append(
            f"<line class='threshold' x1='{tx:.1f}' y1='12' x2='{tx:.1f}' y2='{mid + 10}'"
            " stroke='#cf222e' stroke-width='2' stroke-dasharray='4 3'/>"
        )
        parts.append(_label(tx, 10, f"threshold {threshold:.3f}", "#cf222e", width))
    if locked is not None and locked == locked:
        lx = x(locked)
        diamond = f"{lx:.1f},{mid - 7} {lx + 7:.1f},{mid} {lx:.1f},{mid + 7} {lx - 7:.1f},{mid}"
        parts.append(
            f"<polygon class='locked' points='{diamond}' fill='#fff' stroke='#59636e' stroke-width='2'>"
            f"<title>locked score {locked:.3f}</title></polygon>"
        )
        parts.append(_label(lx, mid + 34, f"locked {locked:.3f}", "#59636e", width))
    parts.append(f"<circle class='score' cx='{x(score):.1f}' cy='{mid}' r='6' fill='#0969da'><title>score {score:.3f}</title></circle>")
    label = f"score {score:.3f}, bounds, threshold and locked score"
    return f"<svg viewBox='0 0 {width} 88' width='{width}' role='img' aria-label='{_e(label)}'>{''.join(parts)}</svg>"


def _label(x: float, y: float, text: str, color: str, width: int) -> str:
    anchor = "start" if x < 80 else "end" if x > width - 80 else "middle"
    return f"<text x='{x:.1f}' y='{y}' font-size='13' text-anchor='{anchor}' fill='{color}'>{_e(text)}</text>"


_KIND_COLORS = {TrialKind.BASELINE: "#6e7781", TrialKind.MINIBATCH: "#54aeff", TrialKind.FULL: "#1a7f37"}
_PRUNED_COLOR = "#d4a72c"


def trial_plot_svg(trials: Sequence[TrialLog], width: int = 560, height: int = 240) -> str:
    """Inline SVG: each evaluation's score as a dot (by kind; pruned ones apart), the best full score so
    far as a step line, and the best full evaluation ringed."""
    pad = 36
    n = max(1, len(trials) - 1)

    def x(index: int) -> float:
        return pad + (width - 2 * pad) * index / n

    def y(score: float) -> float:
        return height - pad - (height - 2 * pad) * max(0.0, min(1.0, float(score)))

    dots = "".join(
        f"<circle class='trial {t.kind.value}{' pruned' if t.pruned else ''}' cx='{x(i):.1f}' cy='{y(t.score):.1f}' r='4'"
        f" fill='{_PRUNED_COLOR if t.pruned else _KIND_COLORS[t.kind]}'>"
        f"<title>#{t.number} {kind_label(t)}: {t.score:.3f} on {t.num_examples}</title></circle>"
        for i, t in enumerate(trials)
    )
    steps = []  # best so far holds until the next evaluation: a step line, not a slope
    for i, t in enumerate(trials):
        level = y(t.best_full_score)
        steps.append(f"{x(i):.1f},{level:.1f}")
        if i + 1 < len(trials):
            steps.append(f"{x(i + 1):.1f},{level:.1f}")
    axes = (
        f"<line x1='{pad}' y1='{y(0):.1f}' x2='{width - pad}' y2='{y(0):.1f}' stroke='#8c959f'/>"
        f"<line x1='{pad}' y1='{y(0):.1f}' x2='{pad}' y2='{y(1):.1f}' stroke='#8c959f'/>"
        + "".join(
            f"<text x='{pad - 6}' y='{y(v) + 4:.1f}' font-size='13' text-anchor='end'>{v:.1f}</text>" for v in (0.0, 0.5, 1.0)
        )
        + f"<text x='{width / 2:.0f}' y='{height - 6}' font-size='13' text-anchor='middle'>evaluation</text>"
    )
    legend = "".join(f"<span style='color:{c}'>&#9679; {k.value}</span>" for k, c in _KIND_COLORS.items())
    legend += f"<span style='color:{_PRUNED_COLOR}'>&#9679; stopped early (racing)</span>"
    return (
        f"<svg viewBox='0 0 {width} {height}' width='{width}' role='img' aria-label='score per trial'>"
        f"{axes}<polyline points='{' '.join(steps)}' fill='none' stroke='#1a7f37' stroke-width='2' stroke-dasharray='4 2'/>"
        f"{dots}{_pick_ring(trials, x, y)}</svg>"
        f"<div class='legend'>{legend}<span>- - best full score so far</span><span>&#9711; best full evaluation</span></div>"
    )


def _pick_ring(trials: Sequence[TrialLog], x: Callable[[int], float], y: Callable[[float], float]) -> str:
    full = [(i, t) for i, t in enumerate(trials) if t.kind is TrialKind.FULL and not t.pruned]
    if not full:
        return ""
    index, best = max(full, key=lambda pair: (pair[1].score, -pair[0]))
    return (
        f"<circle class='pick' cx='{x(index):.1f}' cy='{y(best.score):.1f}' r='8' fill='none' stroke='#1f2328' stroke-width='1.5'>"
        f"<title>best full evaluation: #{best.number}, {best.score:.3f}</title></circle>"
    )
