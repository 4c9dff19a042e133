"""What changed between two lockfiles, target by target: the review of a ``prompts.lock`` change.

:func:`compare` takes two :class:`~pytest_mipro.lockfile.Lockfile` objects (typically the base
branch's and the pull request's) and returns a :class:`LockDiff`: per target, the instruction
diff and demos added or removed per predictor, score and bounds before and after, the paired
comparison on the example ids both entries were scored on, and the models, optimizer settings
and fingerprint parts that changed. :func:`render_markdown` writes it for a pull request
comment; :meth:`LockDiff.to_dict` is the JSON form (``format: 1``).

Entries from older versions lack ``bounds`` (and ``holdout``); their bounds are computed from
their per-example results, the way the gate computes them, and flagged as such. An entry
without per-example results gets no paired comparison.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from .lockfile import LockEntry, Lockfile, PredictorLock
from .stats import clustered_mean_interval, mcnemar_exact_p, paired_t_p

__all__ = [
    "FORMAT",
    "Change",
    "Flip",
    "LockDiff",
    "Paired",
    "PredictorDiff",
    "Score",
    "TargetDiff",
    "compare",
    "render_markdown",
]

FORMAT = 1  # version of the JSON form; bumped when a key changes meaning or goes away
ALPHA = 0.05  # one-sided significance level, the gate's
MARKER = "<!-- pytest-mipro diff -->"  # lets a CI job find and update its own comment
_MAX_FLIPS_SHOWN = 25
_MAX_CELL = 160

Status = Literal["added", "removed", "changed", "unchanged"]


@dataclass(frozen=True)
class Score:
    """One entry's locked score. ``bounds_computed``: the lock had no bounds (older version)."""

    score: float | None
    lower: float | None
    upper: float | None
    n: int
    threshold: float | None
    baseline: float | None
    bounds_computed: bool = False


@dataclass(frozen=True)
class Flip:
    """An example scored on both sides whose score changed."""

    id: str
    before: float
    after: float


@dataclass(frozen=True)
class Paired:
    """The two entries' per-example scores on the ids they share.

    ``method`` is ``mcnemar`` (exact, when every shared score is 0 or 1) or ``paired_t``.
    ``p_worse`` / ``p_better``: one-sided p-values that the new lock scores lower / higher
    on these examples. ``worse`` and ``better`` list the flips, largest change first.
    """

    n: int
    only_old: int
    only_new: int
    method: Literal["mcnemar", "paired_t"]
    before_mean: float
    after_mean: float
    p_worse: float
    p_better: float
    worse: tuple[Flip, ...]
    better: tuple[Flip, ...]

    @property
    def change(self) -> float:
        return self.after_mean - self.before_mean

    @property
    def significant(self) -> Literal["worse", "better"] | None:
        """The direction of a significant change (one-sided p < 0.05), if any."""
        if self.p_worse < ALPHA:
            return "worse"
        if self.p_better < ALPHA:
            return "better"
        return None


@dataclass(frozen=True)
class Change:
    """A setting that differs: ``key`` (dotted), its old and new value (None when absent)."""

    key: str
    before: object
    after: object


@dataclass(frozen=True)
class PredictorDiff:
    """One predictor's prompt, old against new. ``status`` is added/removed/changed/unchanged.

    ``instruction_diff`` is a line diff (``-``/``+``/space prefixed lines);
    ``instruction_words`` the same change word by word, which is what shows the edit in a
    one-paragraph instruction (most are: a line diff there replaces the whole paragraph).
    """

    name: str
    status: Status
    signature: tuple[str | None, str | None]
    instructions: tuple[str | None, str | None]
    instruction_diff: tuple[str, ...]
    instruction_words: tuple[tuple[str, str], ...]  # word diff: ("=" | "-" | "+", text) runs
    demos_added: tuple[dict[str, object], ...]
    demos_removed: tuple[dict[str, object], ...]
    demos_reordered: bool


@dataclass(frozen=True)
class TargetDiff:
    """One target, old entry against new."""

    name: str
    status: Status
    before: Score | None
    after: Score | None
    predictors: tuple[PredictorDiff, ...] = ()
    paired: Paired | None = None
    models: tuple[Change, ...] = ()
    optimizer: tuple[Change, ...] = ()
    fingerprint: tuple[str, ...] = ()  # fingerprint parts that differ
    holdout: tuple[dict[str, object], dict[str, object]] = ({}, {})  # each side's holdout check, without ids/scores
    cost: dict[str, object] = field(default_factory=dict)  # the new entry's optimization counts

    @property
    def prompts_changed(self) -> bool:
        return any(p.status != "unchanged" for p in self.predictors)


@dataclass(frozen=True)
class LockDiff:
    """Every target of either lockfile, sorted by name."""

    old: str
    new: str
    targets: tuple[TargetDiff, ...]

    def by_status(self, status: Status) -> list[TargetDiff]:
        return [t for t in self.targets if t.status == status]

    def to_dict(self) -> dict[str, object]:
        """The JSON form: ``format``, ``old``, ``new``, ``summary`` and ``targets``."""
        summary = {status: [t.name for t in self.by_status(status)] for status in ("changed", "added", "removed", "unchanged")}
        return {"format": FORMAT, "old": self.old, "new": self.new, "summary": summary, "targets": [_target_dict(t) for t in self.targets]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


def _target_dict(target: TargetDiff) -> dict[str, object]:
    data = asdict(target)
    data["prompts_changed"] = target.prompts_changed
    data["holdout"] = dict(zip(("before", "after"), target.holdout, strict=True))
    if target.paired is not None:
        data["paired"].update(change=target.paired.change, significant=target.paired.significant)
    return {key: _finite(value) for key, value in data.items()}


def _finite(value: object) -> object:
    """JSON has no NaN: a score never measured is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------


def compare(old: Lockfile, new: Lockfile) -> LockDiff:
    """Compare every target of ``old`` and ``new`` (the union of their names, sorted)."""
    names = sorted(set(old.entries) | set(new.entries))
    return LockDiff(str(old.path), str(new.path), tuple(compare_entries(name, old.get(name), new.get(name)) for name in names))


def compare_entries(name: str, old: LockEntry | None, new: LockEntry | None) -> TargetDiff:
    """One target; either side may be missing (the target was added or removed)."""
    if old is None and new is None:
        raise ValueError(f"target {name!r} is in neither lockfile")
    if old is not None and new is not None:
        status: Status = "unchanged" if _data(old) == _data(new) else "changed"
    else:
        status = "added" if old is None else "removed"
    return TargetDiff(
        name,
        status,
        None if old is None else _score(old),
        None if new is None else _score(new),
        predictors=_predictors(old, new),
        paired=None if old is None or new is None else _paired(old, new),
        models=_changes(_models(old), _models(new)),
        optimizer=_changes(old.optimizer if old else {}, new.optimizer if new else {}, prefix="optimizer."),
        fingerprint=_fingerprint_changes(old, new) if old is not None and new is not None else (),
        holdout=(_holdout_summary(old), _holdout_summary(new)),
        cost=_counts(new) if new is not None and status != "unchanged" else {},
    )


def _models(entry: LockEntry | None) -> dict[str, object]:
    return {} if entry is None else {"task_model": entry.task_model, "prompt_model": entry.prompt_model}


def _fingerprint_changes(old: LockEntry, new: LockEntry) -> tuple[str, ...]:
    before, after = old.fingerprint.parts, new.fingerprint.parts
    return tuple(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)))


def _data(entry: LockEntry) -> dict[str, object]:
    """The entry as locked, without its run counts (how the run went, not what it found)."""
    data = entry.to_dict()
    data.pop("counts", None)
    return data


def _counts(entry: LockEntry) -> dict[str, object]:
    return dict(entry.counts.to_dict())


def _score(entry: LockEntry) -> Score:
    score = None if math.isnan(entry.score) else entry.score
    lower = upper = None
    computed = False
    if entry.bounds is not None:
        lower, upper = entry.bounds
    else:
        scores = list(_per_example(entry).values())
        if scores:
            _, lower, upper = clustered_mean_interval(scores)
            computed = True
    return Score(score, lower, upper, entry.n, entry.threshold, entry.baseline_score, computed)


def _per_example(entry: LockEntry) -> dict[str, float]:
    """Example id -> score (the mean, for an id scored more than once)."""
    grouped: dict[str, list[float]] = {}
    for uid, value in zip(entry.results.ids, entry.results.scores, strict=True):
        grouped.setdefault(uid, []).append(value)
    return {uid: math.fsum(values) / len(values) for uid, values in grouped.items() if values}


def _paired(old: LockEntry, new: LockEntry) -> Paired | None:
    before, after = _per_example(old), _per_example(new)
    shared = [uid for uid in before if uid in after]
    if not shared:
        return None
    b, a = [before[u] for u in shared], [after[u] for u in shared]
    if all(v in (0.0, 1.0) for v in b + a):
        worse_n = sum(x > y for x, y in zip(b, a, strict=True))
        better_n = sum(x < y for x, y in zip(b, a, strict=True))
        method: Literal["mcnemar", "paired_t"] = "mcnemar"
        p_worse, p_better = mcnemar_exact_p(worse_n, better_n), mcnemar_exact_p(better_n, worse_n)
    else:
        method = "paired_t"
        p_worse, p_better = paired_t_p(b, a), paired_t_p(a, b)
    flips = [Flip(u, before[u], after[u]) for u in shared if before[u] != after[u]]
    return Paired(
        n=len(shared),
        only_old=len(before) - len(shared),
        only_new=len(after) - len(shared),
        method=method,
        before_mean=math.fsum(b) / len(b),
        after_mean=math.fsum(a) / len(a),
        p_worse=p_worse,
        p_better=p_better,
        worse=tuple(sorted((f for f in flips if f.after < f.before), key=lambda f: f.after - f.before)),
        better=tuple(sorted((f for f in flips if f.after > f.before), key=lambda f: f.before - f.after)),
    )


def _predictors(old: LockEntry | None, new: LockEntry | None) -> tuple[PredictorDiff, ...]:
    before = old.predictors if old is not None else {}
    after = new.predictors if new is not None else {}
    names = list(before) + [n for n in after if n not in before]
    return tuple(_predictor(name, before.get(name), after.get(name)) for name in names)


def _predictor(name: str, old: PredictorLock | None, new: PredictorLock | None) -> PredictorDiff:
    old_demos = [_demo_key(d) for d in (old.demos if old else [])]
    new_demos = [_demo_key(d) for d in (new.demos if new else [])]
    added = Counter(new_demos) - Counter(old_demos)
    removed = Counter(old_demos) - Counter(new_demos)
    instructions = (old.instructions if old else None, new.instructions if new else None)
    signature = (old.signature if old else None, new.signature if new else None)
    if old is None or new is None:
        status: Status = "added" if old is None else "removed"
    elif old == new:
        status = "unchanged"
    else:
        status = "changed"
    return PredictorDiff(
        name=name,
        status=status,
        signature=signature,
        instructions=instructions,
        instruction_diff=_line_diff(*instructions) if old and new and instructions[0] != instructions[1] else (),
        instruction_words=_word_diff(*instructions) if old and new and instructions[0] != instructions[1] else (),
        demos_added=tuple(json.loads(k) for k in _expand(added, new_demos)),
        demos_removed=tuple(json.loads(k) for k in _expand(removed, old_demos)),
        demos_reordered=not added and not removed and old_demos != new_demos,
    )


def _demo_key(demo: Mapping[str, object]) -> str:
    return json.dumps(dict(demo), sort_keys=True, ensure_ascii=False, default=str)


def _expand(counts: Counter[str], order: Sequence[str]) -> list[str]:
    """The demos in ``counts`` (a multiset), in the order they appear in their lock."""
    left = Counter(counts)
    found = []
    for key in order:
        if left[key] > 0:
            left[key] -= 1
            found.append(key)
    return found


def _line_diff(old: str | None, new: str | None) -> tuple[str, ...]:
    """A whole-text diff: ``-``/``+``/`` `` prefixed lines, every line kept as context."""
    before, after = (old or "").splitlines(), (new or "").splitlines()
    lines = difflib.unified_diff(before, after, lineterm="", n=max(len(before), len(after)))
    return tuple(line for line in lines if not line.startswith(("---", "+++", "@@")))


def _word_diff(old: str | None, new: str | None) -> tuple[tuple[str, str], ...]:
    """Runs of kept (``=``), removed (``-``) and added (``+``) text; whitespace stays attached."""
    before, after = re.findall(r"\S+\s*|\s+", old or ""), re.findall(r"\S+\s*|\s+", new or "")
    runs: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            runs.append(("=", "".join(before[i1:i2])))
            continue
        if i2 > i1:
            runs.append(("-", "".join(before[i1:i2])))
        if j2 > j1:
            runs.append(("+", "".join(after[j1:j2])))
    return tuple(runs)


def _changes(old: Mapping[str, object], new: Mapping[str, object], prefix: str = "") -> tuple[Change, ...]:
    keys = list(old) + [k for k in new if k not in old]
    return tuple(Change(prefix + str(k), old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


def _holdout_summary(entry: LockEntry | None) -> dict[str, object]:
    """The holdout check's decision, without its per-example lists."""
    return {} if entry is None else {k: v for k, v in entry.holdout.items() if k not in ("ids", "scores")}


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def render_markdown(diff: LockDiff) -> str:
    """The diff as GitHub-flavoured Markdown: a summary table, then a section per changed target."""
    lines = [MARKER, "## Prompt lockfile changes", "", _headline(diff), ""]
    shown = [t for t in diff.targets if t.status != "unchanged"]
    if shown:
        lines += _summary_table(shown) + [""]
    for target in shown:
        lines += _target_section(target) + [""]
    unchanged = diff.by_status("unchanged")
    if unchanged:
        lines.append("Unchanged: " + ", ".join(_code(t.name) for t in unchanged) + ".")
    return _squeeze(lines)


def _squeeze(lines: Sequence[str]) -> str:
    """Join lines, with never more than one blank line in a row."""
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).rstrip() + "\n"


def _headline(diff: LockDiff) -> str:
    counts = [f"{len(diff.by_status(s))} {s}" for s in ("changed", "added", "removed", "unchanged")]
    return f"{_code(diff.old)} → {_code(diff.new)}: " + ", ".join(counts) + "."


def _summary_table(targets: Sequence[TargetDiff]) -> list[str]:
    rows = ["| target | change | score (bounds) before | score (bounds) after | on shared examples |", "|---|---|---|---|---|"]
    for t in targets:
        change = t.status + (", prompts changed" if t.status == "changed" and t.prompts_changed else "")
        rows.append(f"| {_cell(t.name)} | {change} | {_score_text(t.before)} | {_score_text(t.after)} | {_paired_short(t.paired)} |")
    return rows


def _score_text(score: Score | None) -> str:
    if score is None:
        return "—"
    text = _num(score.score)
    if score.lower is not None and score.upper is not None:
        text += f" [{_num(score.lower)}, {_num(score.upper)}]" + ("\\*" if score.bounds_computed else "")
    return text + f" on {score.n}"


def _paired_short(paired: Paired | None) -> str:
    if paired is None:
        return "—"
    if not paired.worse and not paired.better:
        return f"no flips on {paired.n}"
    text = f"{len(paired.worse)} worse, {len(paired.better)} better of {paired.n}"
    direction = "worse" if paired.change < 0 else "better"
    p = paired.p_worse if direction == "worse" else paired.p_better
    text += f", p = {_p(p)}" + (f" (**significantly {direction}**)" if paired.significant else "")
    return text


def _target_section(target: TargetDiff) -> list[str]:
    lines = [f"### {_code(target.name)}: {target.status}", ""]
    lines += _score_lines(target)
    if target.paired is not None:
        lines += _paired_lines(target.paired)
    for predictor in target.predictors:
        lines += _predictor_lines(predictor)
    lines += _settings_lines(target)
    return lines


def _score_lines(target: TargetDiff) -> list[str]:
    lines = []
    for label, score in (("before", target.before), ("after", target.after)):
        if score is not None:
            extra = [f"threshold {_num(score.threshold)}"] if score.threshold is not None else []
            extra += [f"unoptimized {_num(score.baseline)}"] if score.baseline is not None else []
            lines.append(f"- Score {label}: {_score_text(score)}" + (f" ({', '.join(extra)})" if extra else ""))
    if any(s is not None and s.bounds_computed for s in (target.before, target.after)):
        lines.append("- \\* bounds computed from the per-example results (the lock, from an older version, has none)")
    return lines + [""]


def _paired_lines(paired: Paired) -> list[str]:
    head = f"**Paired on {paired.n} shared examples**"
    flips = list(paired.worse) + list(paired.better)
    if not flips:
        text = f"{head}: every one scored the same as before."
    else:
        test = "exact McNemar" if paired.method == "mcnemar" else "paired t-test"
        text = (
            f"{head} ({test}): {_num(paired.before_mean)} → {_num(paired.after_mean)}; {len(paired.worse)} got worse, "
            f"{len(paired.better)} got better; one-sided p = {_p(paired.p_worse)} for a drop, {_p(paired.p_better)} for a gain."
        )
        text += f" **Significantly {paired.significant}.**" if paired.significant else ""
    if paired.only_old or paired.only_new:
        text += f" Not compared: {paired.only_old} examples only in the old lock, {paired.only_new} only in the new."
    return [text, "", *_flip_table(flips)]


def _flip_table(flips: Sequence[Flip]) -> list[str]:
    if not flips:
        return []
    lines = [f"<details><summary>Examples that flipped ({len(flips)})</summary>", "", "| example id | before | after |", "|---|---|---|"]
    lines += [f"| {_code_cell(f.id)} | {_num(f.before)} | {_num(f.after)} |" for f in flips[:_MAX_FLIPS_SHOWN]]
    if len(flips) > _MAX_FLIPS_SHOWN:
        lines.append(f"| … {len(flips) - _MAX_FLIPS_SHOWN} more (see `--format json`) | | |")
    return [*lines, "", "</details>", ""]


def _predictor_lines(predictor: PredictorDiff) -> list[str]:
    if predictor.status == "unchanged":
        return [f"Predictor {_code(predictor.name)}: prompt unchanged.", ""]
    lines = [f"#### Predictor {_code(predictor.name)}: {predictor.status}", ""]
    old_sig, new_sig = predictor.signature
    if old_sig != new_sig:
        lines += [f"Signature: {_code(old_sig) if old_sig else '—'} → {_code(new_sig) if new_sig else '—'}", ""]
    if predictor.instruction_diff:
        lines += ["Instructions:", "", *_fenced("diff", predictor.instruction_diff), ""]
        lines += ["Changed words: " + _words_text(predictor.instruction_words), ""]
    elif predictor.status != "changed":
        text = predictor.instructions[1] if predictor.status == "added" else predictor.instructions[0]
        lines += ["Instructions:", "", *_fenced("text", (text or "").splitlines()), ""]
    lines += _demo_lines(predictor)
    return lines


def _words_text(runs: Sequence[tuple[str, str]], context: int = 6) -> str:
    """The word diff on one line: removed text struck through, added text in bold, and at most
    ``context`` kept words either side of a change."""
    parts = []
    for index, (op, text) in enumerate(runs):
        words = text.split()
        if op == "=":
            head = words[:context] if index > 0 else []
            tail = words[-context:] if index < len(runs) - 1 else []
            kept = words if len(words) <= len(head) + len(tail) else [*head, "…", *tail]
            parts.append(_cell(" ".join(kept)) if kept != ["…"] else "…")
        elif words:
            mark = "~~" if op == "-" else "**"
            parts.append(f"{mark}{_cell(' '.join(words))}{mark}")
    return " ".join(p for p in parts if p)


def _demo_lines(predictor: PredictorDiff) -> list[str]:
    groups: list[tuple[str, tuple[dict[str, object], ...]]] = [("Demos", predictor.demos_added or predictor.demos_removed)]
    if predictor.status == "changed":
        groups = [("Demos added", predictor.demos_added), ("Demos removed", predictor.demos_removed)]
    lines = []
    for label, demos in groups:
        if demos:
            lines += [f"{label} ({len(demos)}):", "", *[f"- {_demo_text(d)}" for d in demos], ""]
    if predictor.demos_reordered:
        lines += ["Demos: the same, in a new order.", ""]
    return lines


def _demo_text(demo: Mapping[str, object]) -> str:
    return "; ".join(f"**{_cell(str(k))}**: {_cell(_short(str(v)))}" for k, v in demo.items())


def _settings_lines(target: TargetDiff) -> list[str]:
    changes = list(target.models) + list(target.optimizer)
    lines = []
    if changes:
        lines += ["| setting | before | after |", "|---|---|---|"]
        lines += [f"| {_code_cell(c.key)} | {_value(c.before)} | {_value(c.after)} |" for c in changes]
        lines.append("")
    if target.fingerprint:
        lines += ["Fingerprint parts that changed: " + ", ".join(target.fingerprint) + ".", ""]
    before, after = target.holdout
    if after and after != before:
        lines += [_holdout_text(after), ""]
    spent = _cost_text(target.cost)
    if spent:
        lines += [f"Optimizing the new entry took {spent}.", ""]
    return lines


def _holdout_text(check: Mapping[str, object]) -> str:
    """One sentence on the holdout check that chose the new entry's prompt."""
    other = "the unoptimized program" if check.get("compared_with") == "unoptimized" else "the previously locked prompt"
    n, source = check.get("n", "?"), check.get("source", "?")
    gain, lower = _signed(check.get("improvement")), _signed(check.get("lower_bound"))
    if check.get("adopted"):
        return (f"Holdout check ({n} examples, {source}): adopted the search's pick, {_num(check.get('score'))} against "
                f"{_num(check.get('other_score'))} for {other} (gain {gain}, one-sided 95% lower bound {lower}).")
    return (f"Holdout check ({n} examples, {source}): kept {other}, {_num(check.get('score'))} against "
            f"{_num(check.get('other_score'))} for the search's pick (its gain {gain} is not significant: lower bound {lower}).")


def _cost_text(counts: Mapping[str, object]) -> str:
    parts = []
    if isinstance(counts.get("calls"), int):
        parts.append(f"{counts['calls']} LM calls")
    cost = counts.get("cost")
    if isinstance(cost, (int, float)) and cost > 0:
        parts.append(f"${cost:.4f}")
    if isinstance(counts.get("seconds"), (int, float)):
        parts.append(f"{counts['seconds']:.0f} s")
    return ", ".join(parts)


# --------------------------------------------------------------------------
# Markdown helpers: every text from a lockfile is escaped or fenced
# --------------------------------------------------------------------------


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def _signed(value: object) -> str:
    return f"{value:+.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def _p(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else "< 0.001"


def _value(value: object) -> str:
    """A setting's value for a table cell."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(_num(v) for v in value) + "]"
    return _code_cell(_short(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))


def _short(text: str, limit: int = _MAX_CELL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    """Text for a table cell or list item: one line, no table or HTML syntax."""
    text = " ".join(text.split())
    for raw, escaped in (
        ("\\", "\\\\"),
        ("|", "\\|"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("*", "\\*"),
        ("_", "\\_"),
        ("`", "\\`"),
        ("[", "\\["),
        ("]", "\\]"),
    ):
        text = text.replace(raw, escaped)
    return text


def _code(text: str) -> str:
    """Inline code (one line) that survives backticks in ``text``."""
    text = " ".join(text.split())
    ticks = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _code_cell(text: str) -> str:
    """Inline code inside a table row, where GitHub splits cells at every unescaped pipe."""
    return _code(text).replace("|", "\\|")


def _fenced(language: str, lines: Sequence[str]) -> list[str]:
    fence = "`" * max(3, max((_longest_run(line, "`") for line in lines), default=0) + 1)
    return [fence + language, *lines, fence]


def _longest_run(text: str, char: str) -> int:
    longest = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        longest = max(longest, run)
    return longest
