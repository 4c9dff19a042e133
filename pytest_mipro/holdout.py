"""Honest final selection for ``--mipro-optimize``: a holdout slice the search never sees.

The best of many candidates on the validation set that chose it looks better than it is.
:func:`optimize_with_holdout` therefore

1. keeps a holdout slice apart: the target's ``mipro_holdout`` fixture (or ``holdout=``),
   else a quarter of its labeled examples when it has at least 40, else none. The quarter
   is the examples whose hash (of the target name and the example id) is smallest: a
   split seeded by the name that ignores file order and the optimizer seed, so an example
   stays held out run after run and a prompt locked earlier never saw the holdout;
2. runs MIPROv2 on the rest (:func:`targets.optimize`);
3. among the candidates within one paired standard error of the best on validation, takes
   the one with the shortest prompt (:func:`selection.prefer_shorter`);
4. adopts it over the current prompt (the target's lock entry when its program structure
   still matches, else the unoptimized program) only when its paired improvement on the
   holdout has a one-sided 95% lower bound above 0 (:func:`selection.holdout_decision`);
   otherwise the current prompt is locked again, with a fresh fingerprint and scores.

Without a holdout the search's pick (step 3) is locked, as before. Library code, no pytest.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import MiproError
from .example import Example
from .gate import score_bounds
from .lockfile import LockEntry
from .optimizer.presets import DEFAULT_MINIBATCH_SIZE, default_val_split
from .program import Module
from .selection import HoldoutDecision, holdout_decision, prefer_shorter
from .targets import (
    Assisted,
    Evaluation,
    Optimized,
    RunConfig,
    Target,
    add_counts,
    evaluate_program,
    locked_program,
    optimize,
    predictor_locks,
    prefetch_program,
    stale_parts,
    target_fingerprint,
)

HOLDOUT_FRACTION = 0.25
MIN_EXAMPLES_TO_SPLIT = 40  # below this a quarter is too few examples to show a real improvement
_MIN_TRAIN = 2  # MIPROv2 needs two training examples when it splits off its own valset


@dataclass(frozen=True)
class HoldoutSplit:
    """The target the search sees, and the slice kept from it. ``source``: fixture, split or none."""

    search: Target
    examples: list[Example]
    source: str
    labeled: int  # every labeled example of the target (examples, valset and a holdout fixture)


def split_holdout(target: Target) -> HoldoutSplit:
    """The holdout slice: the declared one, else a hash-seeded quarter of the labeled examples (>= 40)."""
    valset = list(target.valset or [])
    if target.holdout is not None:
        labeled = len(target.examples) + len(valset) + len(target.holdout)
        return HoldoutSplit(target, list(target.holdout), "fixture", labeled)
    labeled = len(target.examples) + len(valset)
    if labeled < MIN_EXAMPLES_TO_SPLIT:
        return HoldoutSplit(target, [], "none", labeled)
    # Draw from examples and valset together, but leave the search enough of each.
    pool = [("examples", i, ex) for i, ex in enumerate(target.examples)] + [("valset", i, ex) for i, ex in enumerate(valset)]
    pool.sort(key=lambda item: (_rank(target.name, item[2]), item[0], item[1]))
    room = {"examples": len(target.examples) - _MIN_TRAIN, "valset": len(valset) - 1}
    held: set[tuple[str, int]] = set()
    for part, index, _ in pool:
        if len(held) == round(HOLDOUT_FRACTION * labeled):
            break
        if room[part] > 0:
            held.add((part, index))
            room[part] -= 1
    search = replace(
        target,
        examples=[ex for i, ex in enumerate(target.examples) if ("examples", i) not in held],
        valset=None if target.valset is None else [ex for i, ex in enumerate(valset) if ("valset", i) not in held],
    )
    search = replace(search, options=_fit_minibatch(search))
    chosen = [target.examples[i] if part == "examples" else valset[i] for part, i in sorted(held)]
    return HoldoutSplit(search, chosen, "split", labeled)


def _fit_minibatch(search: Target) -> dict[str, Any]:
    """The search's options, with full evaluations when the split left fewer validation
    examples than a minibatch: MIPROv2 refuses a minibatch larger than its valset, and the
    target's author, who had enough examples, did not cause that."""
    options = search.options
    size = options.get("minibatch_size", DEFAULT_MINIBATCH_SIZE)
    if not options.get("minibatch", True) or _search_valset_size(search) >= size:
        return options
    return {**options, "minibatch": False}


def _search_valset_size(search: Target) -> int:
    if search.valset is not None:
        return len(search.valset)
    return len(default_val_split(search.examples)[1])  # what MIPROv2 cuts from the examples


def _rank(name: str, example: Example) -> str:
    return hashlib.sha256(f"pytest-mipro holdout {name} {example.uid}".encode()).hexdigest()


@dataclass(frozen=True)
class _Pick:
    """A program to lock, with its validation evaluation."""

    program: Module
    evaluation: Evaluation


def optimize_with_holdout(target: Target, run: RunConfig, current: LockEntry | None) -> Optimized:
    """Optimize ``target`` and lock the prompt the holdout supports (see the module docstring).

    ``current`` is the target's entry in the lockfile before this run, if any. The returned
    entry's fingerprint is the whole target's, so a plain ``pytest`` finds it fresh.
    """
    split = split_holdout(target)
    optimized = optimize(split.search, run)
    result = optimized.result
    valset = _valset(split.search, result)
    spent: list[Evaluation] = []
    pick, one_se = _shortest_close(target, optimized, valset, run, spent)
    selection: dict[str, Any] = {
        "holdout_source": split.source,
        "labeled": split.labeled,
        "holdout": len(split.examples),
        "validation": len(valset),
        "min_for_split": MIN_EXAMPLES_TO_SPLIT,
        "one_se": one_se,
        "decision": None,
    }
    holdout: dict[str, Any] = {}
    if split.examples:
        pick, selection["decision"], holdout = _holdout_check(target, current, pick, split, valset, run, spent)
    entry = _lock(target, run, optimized.entry, pick, holdout, spent)
    return replace(optimized, entry=entry, evaluation=pick.evaluation, selection={"selection": selection})


def _valset(search: Target, result: Any) -> list[Example]:
    pool = {ex.uid: ex for ex in list(search.valset or []) + list(search.examples)}
    return [pool[i] for i in result.valset_ids]


def _shortest_close(
    target: Target, optimized: Optimized, valset: list[Example], run: RunConfig, spent: list[Evaluation]
) -> tuple[_Pick, dict[str, Any] | None]:
    """The one-standard-error rule over the search's fully evaluated candidates."""
    best = _Pick(optimized.result.program, optimized.evaluation)
    candidates = optimized.result.candidate_programs
    if len(candidates) < 2:
        return best, None
    chosen, top = _one_se_pick(optimized.result), max(candidates, key=lambda c: c["score"])
    note = {"best_score": top["score"], "best_chars": top["prompt_chars"], "score": chosen["score"], "chars": chosen["prompt_chars"]}
    if _same(chosen["program"], best.program):
        return best, note
    evaluation = evaluate_program(target, chosen["program"], valset, run)
    spent.append(evaluation)
    return _Pick(chosen["program"], evaluation), note


def _one_se_pick(result: Any) -> dict[str, Any]:
    """The candidate the one-standard-error rule takes (the best when there is no choice)."""
    candidates = result.candidate_programs
    if len(candidates) < 2:
        return {"program": result.program}
    return prefer_shorter(candidates)


def prefetch_holdout_check(
    target: Target, split: HoldoutSplit, run: RunConfig, current: LockEntry | None, helped: Assisted
) -> dict[str, Any]:
    """A helping process's last job: fill the response cache for the holdout check.

    The process that locks ``target`` scores the picked program, then the current one, on the
    holdout, from the first example on. Helpers finish the shared search with it and read
    the same study, so they know both programs too; they score them from the last example
    backwards, sharing the work through the run's claims. Returns the counts spent.
    """
    if not split.examples or helped.result is None:
        return {}
    pick = _one_se_pick(helped.result)["program"]
    incumbent, _ = _current_program(target, current, run)
    roles = [("new", pick)] if _same(pick, incumbent) else [("new", pick), ("old", incumbent)]
    spent: dict[str, Any] = {}
    for role, program in roles:
        spent = add_counts(spent, prefetch_program(target, program, split.examples, run, claim=_claims(helped, f"holdout-{role}")))
    return spent


def _claims(helped: Assisted, prefix: str) -> Callable[[str], bool]:
    return lambda uid: helped.claim(f"{prefix}-{uid}")


def _holdout_check(
    target: Target,
    current: LockEntry | None,
    pick: _Pick,
    split: HoldoutSplit,
    valset: list[Example],
    run: RunConfig,
    spent: list[Evaluation],
) -> tuple[_Pick, dict[str, Any], dict[str, Any]]:
    """Adopt ``pick`` over the current program only on a significant paired holdout improvement."""
    incumbent, against = _current_program(target, current, run)
    new = evaluate_program(target, pick.program, split.examples, run)
    spent.append(new)
    same = _same(pick.program, incumbent)
    old = new if same else evaluate_program(target, incumbent, split.examples, run)
    if not same:
        spent.append(old)
    decision = holdout_decision(_scores(new), _scores(old))
    adopted = same or decision.adopt
    if not adopted:
        kept = evaluate_program(target, incumbent, valset, run)
        spent.append(kept)
        pick = _Pick(incumbent, kept)
    locked = new if adopted else old
    return pick, _decision_record(decision, against, same, adopted), _holdout_field(locked, split.source, decision, against, adopted)


def _current_program(target: Target, current: LockEntry | None, run: RunConfig) -> tuple[Module, str]:
    """The current lock entry's program when its structure still fits, else the unoptimized one."""
    if current is not None and "structure" not in stale_parts(target, current, run.task_lm):
        try:
            return locked_program(target, current), "lock"
        except MiproError:
            pass  # predictors renamed: the old prompts no longer load
    return target.program.deepcopy(), "unoptimized"


def _decision_record(decision: HoldoutDecision, against: str, same: bool, adopted: bool) -> dict[str, Any]:
    return {
        "against": against,
        "same_program": same,
        "adopted": adopted,
        "n": decision.n,
        "new_score": _round(decision.new_score),
        "old_score": _round(decision.old_score),
        "improvement": _round(decision.improvement),
        "lower_bound": _round(decision.lower_bound),
    }


def _holdout_field(
    evaluation: Evaluation, source: str, decision: HoldoutDecision, against: str, adopted: bool
) -> dict[str, Any]:
    """What the lock keeps of the holdout check: the locked program's holdout score with its bounds."""
    scores = _scores(evaluation)
    return {
        "source": source,
        "n": len(scores),
        "score": _round(evaluation.score),
        "bounds": [_round(b) for b in score_bounds(scores)],
        "compared_with": against,
        "other_score": _round(decision.old_score if adopted else decision.new_score),
        "improvement": _round(decision.improvement),
        "lower_bound": _round(decision.lower_bound),
        "adopted": adopted,
        "ids": [r.example.uid for r in evaluation.results],
        "scores": scores,
    }


def _lock(target: Target, run: RunConfig, entry: LockEntry, pick: _Pick, holdout: dict[str, Any], spent: Sequence[Evaluation]) -> LockEntry:
    """The search's entry with the picked program, its scores and the whole target's fingerprint."""
    scores = _scores(pick.evaluation)
    return replace(
        entry,
        predictors=predictor_locks(pick.program),
        score=pick.evaluation.score,
        bounds=tuple(_round(b) for b in score_bounds(scores)),  # type: ignore[arg-type]
        n=len(scores),
        fingerprint=target_fingerprint(target, run.task_lm).to_dict(),
        counts=_counts(entry.counts, spent),
        results={"ids": [r.example.uid for r in pick.evaluation.results], "scores": scores},
        holdout=holdout,
    )


def _counts(counts: Mapping[str, Any], spent: Sequence[Evaluation]) -> dict[str, Any]:
    """The search's counts plus the evaluations made to select and check the locked program."""
    total = dict(counts)
    for evaluation in spent:
        for key in ("calls", "cache_hits", "prompt_tokens", "completion_tokens"):
            total[key] = total.get(key, 0) + int(evaluation.usage.get(key, 0))
        total["cost"] = round(float(total.get("cost", 0.0)) + float(evaluation.usage.get("cost", 0.0)), 6)
        total["seconds"] = round(float(total.get("seconds", 0.0)) + evaluation.seconds, 2)
    return total


def _same(a: Module, b: Module) -> bool:
    return predictor_locks(a) == predictor_locks(b)


def _scores(evaluation: Evaluation) -> list[float]:
    return [r.score for r in evaluation.results]


def _round(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None
