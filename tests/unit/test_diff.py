"""pytest_mipro.diff: comparing two lockfiles, and the Markdown and JSON a reviewer reads.

Entries are built from their data form (``LockEntry.from_dict``), the form a lockfile holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_mipro.diff import compare, compare_entries, render_markdown
from pytest_mipro.lockfile import LockEntry, Lockfile
from pytest_mipro.stats import mcnemar_exact_p, paired_t_p, wilson_interval


def data(instructions: str = "Route the ticket.", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "program": {
            "self": {"signature": "ticket -> team", "instructions": instructions, "demos": [{"ticket": "charged twice", "team": "billing"}]}
        },
        "score": 0.5,
        "bounds": [0.3, 0.7],
        "baseline_score": 0.1,
        "threshold": 0.4,
        "n": 4,
        "task_model": "fake/task",
        "prompt_model": "fake/prompt",
        "optimizer": {"auto": "light", "seed": 9, "trials": 10},
        "fingerprint": {"hash": "h", "parts": {"structure": "s", "examples": "e"}},
        "counts": {"calls": 12, "cost": 0.25, "seconds": 3.0},
        "results": {"ids": ["a", "b", "c", "d"], "scores": [1.0, 1.0, 0.0, 0.0]},
    }
    values.update(changes)
    return values


def entry(name: str = "triage", **changes: Any) -> LockEntry:
    return LockEntry.from_dict(name, data(**changes))


def lock(path: str, **entries: LockEntry) -> Lockfile:
    return Lockfile(Path(path), dict(entries))


def test_same_entries_but_run_counts_are_unchanged() -> None:
    target = compare_entries("triage", entry(), entry(counts={"calls": 99}))

    assert target.status == "unchanged" and not target.prompts_changed
    assert target.cost == {}


def test_mcnemar_on_shared_ids_with_flips_listed_largest_first() -> None:
    before = entry(results={"ids": ["a", "b", "c", "d", "x"], "scores": [1.0, 1.0, 1.0, 0.0, 1.0]})
    after = entry(results={"ids": ["d", "c", "b", "a", "y"], "scores": [1.0, 0.0, 0.0, 1.0, 0.0]})

    paired = compare_entries("t", before, after).paired

    assert paired is not None
    assert (paired.n, paired.only_old, paired.only_new, paired.method) == (4, 1, 1, "mcnemar")
    assert [f.id for f in paired.worse] == ["b", "c"] and [f.id for f in paired.better] == ["d"]
    assert paired.p_worse == mcnemar_exact_p(2, 1) and paired.p_better == mcnemar_exact_p(1, 2)
    assert paired.before_mean == 0.75 and paired.after_mean == 0.5
    assert paired.significant is None


def test_a_significant_drop_is_flagged_like_the_gate_would() -> None:
    # docs/verdicts.md's example: 12 passed before and fail now, 3 the other way, on 100 examples.
    ids = [f"e{i}" for i in range(100)]
    before = [1.0] * 12 + [0.0] * 3 + [1.0] * 50 + [0.0] * 35
    after = [0.0] * 12 + [1.0] * 3 + [1.0] * 50 + [0.0] * 35
    target = compare_entries("t", entry(results={"ids": ids, "scores": before}), entry(results={"ids": ids, "scores": after}))

    assert target.paired is not None
    assert round(target.paired.p_worse, 3) == 0.018 and target.paired.significant == "worse"
    assert "**Significantly worse.**" in render_markdown(
        compare(lock("a", t=entry(results={"ids": ids, "scores": before})), lock("b", t=entry(results={"ids": ids, "scores": after})))
    )


def test_graded_scores_use_the_paired_t_test_and_average_repeats() -> None:
    before = entry(results={"ids": ["a", "b", "c"], "scores": [0.5, 1.0, 0.25]})
    after = entry(results={"ids": ["a", "b", "c", "a"], "scores": [1.0, 0.75, 1.0, 0.0]})  # "a" twice

    paired = compare_entries("t", before, after).paired

    assert paired is not None and paired.method == "paired_t"
    assert paired.after_mean == pytest.approx((0.5 + 0.75 + 1.0) / 3)  # a: mean of 1 and 0
    assert paired.p_worse == paired_t_p([0.5, 1.0, 0.25], [0.5, 0.75, 1.0])
    assert [f.id for f in paired.worse] == ["b"] and [f.id for f in paired.better] == ["c"]


def test_no_results_means_no_paired_comparison_and_no_computed_bounds() -> None:
    old = entry(results={}, bounds=None)
    target = compare_entries("t", old, entry())

    assert target.paired is None
    assert target.before is not None and target.before.lower is None and not target.before.bounds_computed


def test_missing_bounds_are_computed_from_results_and_marked() -> None:
    target = compare_entries("t", entry(bounds=None), entry())

    assert target.before is not None and target.before.bounds_computed
    assert (target.before.lower, target.before.upper) == pytest.approx(wilson_interval(2, 4))  # what the gate computes
    assert "\\*" in render_markdown(compare(lock("a", t=entry(bounds=None)), lock("b", t=entry())))


def test_demos_added_removed_and_reordered_as_multisets() -> None:
    d1, d2, d3 = ({"ticket": f"t{i}", "team": "billing"} for i in range(3))

    def program(*demos: dict[str, str]) -> dict[str, Any]:
        return {"self": {"signature": "ticket -> team", "instructions": "Route.", "demos": list(demos)}}

    changed = compare_entries("t", entry(program=program(d1, d2, d2)), entry(program=program(d2, d3)))
    reordered = compare_entries("t", entry(program=program(d1, d2)), entry(program=program(d2, d1)))

    (p,) = changed.predictors
    assert p.demos_added == (d3,) and p.demos_removed == (d1, d2) and not p.demos_reordered
    assert p.instruction_diff == () and p.instruction_words == ()
    (r,) = reordered.predictors
    assert r.status == "changed" and r.demos_reordered and not r.demos_added and not r.demos_removed


def test_instruction_diff_by_line_and_by_word() -> None:
    target = compare_entries(
        "t", entry(instructions="Route the ticket.\nBe brief."), entry(instructions="Route the support ticket.\nBe brief.")
    )

    (p,) = target.predictors
    assert p.instruction_diff == ("-Route the ticket.", "+Route the support ticket.", " Be brief.")
    assert ("+", "support ") in p.instruction_words
    text = render_markdown(
        compare(lock("a", t=entry(instructions="Route the ticket.")), lock("b", t=entry(instructions="Route the support ticket.")))
    )
    assert "Changed words: Route the **support** ticket." in text


def test_added_and_removed_targets_and_predictors() -> None:
    two = data(program={
        "first": {"signature": "a -> b", "instructions": "One.", "demos": []},
        "second": {"signature": "b -> c", "instructions": "Two.", "demos": [{"b": "x", "c": "y"}]},
    })
    old = lock("old.lock", gone=entry("gone"), kept=LockEntry.from_dict("kept", two))
    new = lock("new.lock", new=entry("new"), kept=entry("kept", instructions="One."))

    result = compare(old, new)

    assert [(t.name, t.status) for t in result.targets] == [("gone", "removed"), ("kept", "changed"), ("new", "added")]
    kept = result.targets[1]
    assert [(p.name, p.status) for p in kept.predictors] == [("first", "removed"), ("second", "removed"), ("self", "added")]
    added = result.targets[2]
    assert added.before is None and added.after is not None and added.paired is None
    assert [c.key for c in added.models] == ["task_model", "prompt_model"]
    text = render_markdown(result)
    assert ": 1 changed, 1 added, 1 removed, 0 unchanged." in text
    assert "#### Predictor `second`: removed" in text and "Demos (1):" in text
    assert "| gone | removed | 0.500 [0.300, 0.700] on 4 | — | — |" in text


def test_models_optimizer_and_fingerprint_changes() -> None:
    new = entry(
        task_model="openai/gpt-4o-mini",
        optimizer={"auto": "medium", "seed": 9, "extra": [1, 2]},
        fingerprint={"hash": "z", "parts": {"structure": "s", "examples": "E", "metric": "m"}},
    )

    target = compare_entries("t", entry(), new)

    assert [(c.key, c.before, c.after) for c in target.models] == [("task_model", "fake/task", "openai/gpt-4o-mini")]
    assert [(c.key, c.before, c.after) for c in target.optimizer] == [
        ("optimizer.auto", "light", "medium"), ("optimizer.trials", 10, None), ("optimizer.extra", None, [1, 2])
    ]
    assert target.fingerprint == ("examples", "metric")
    text = render_markdown(compare(lock("a", t=entry()), lock("b", t=new)))
    assert "| `optimizer.trials` | `10` | — |" in text and "| `optimizer.extra` | — | `[1, 2]` |" in text
    assert "Fingerprint parts that changed: examples, metric." in text
    assert "Optimizing the new entry took 12 LM calls, $0.2500, 3 s." in text


def test_holdout_decision_is_one_sentence() -> None:
    holdout = {"source": "split", "n": 12, "score": 0.917, "compared_with": "unoptimized", "other_score": 0.5,
               "improvement": 0.417, "lower_bound": 0.19, "adopted": True, "ids": ["x"], "scores": [1.0]}
    result = compare(lock("a", t=entry()), lock("b", t=entry(holdout=holdout)))

    assert result.targets[0].holdout[1] == {k: v for k, v in holdout.items() if k not in ("ids", "scores")}
    assert ("Holdout check (12 examples, split): adopted the search's pick, 0.917 against 0.500 for the unoptimized "
            "program (gain +0.417, one-sided 95% lower bound +0.190).") in render_markdown(result)


def test_markdown_escapes_lockfile_text() -> None:
    hostile = "Use ```code``` and | pipes <script>alert(1)</script> *stars*"
    new = entry(instructions=hostile, program={"self": {"signature": "a -> b", "instructions": hostile,
                                                         "demos": [{"a": "x | y <b>", "b": "`z`"}]}})

    text = render_markdown(compare(lock("a", t=entry()), lock("b", t=new)))
    fenced = text[text.index("````diff") : text.index("\n````\n")]  # the fence outgrows the backticks inside

    assert "<script>" in fenced and "<script>" not in text.replace(fenced, "")  # outside fences, HTML is escaped
    assert "Changed words: ~~Route the ticket.~~ **Use \\`\\`\\`code\\`\\`\\` and \\| pipes &lt;script&gt;" in text
    assert "- **a**: x \\| y &lt;b&gt;; **b**: \\`z\\`" in text
    added = render_markdown(compare(lock("a"), lock("b", **{"t|x": new})))
    assert "| t\\|x | added |" in added and "### `t|x`: added" in added and "````text" in added


def test_json_is_strict_json_with_nan_as_null() -> None:
    result = compare(lock("a", t=entry(score=None)), lock("b", t=entry()))

    text = result.to_json()
    parsed = json.loads(text)
    assert parsed["targets"][0]["before"]["score"] is None
    assert parsed["format"] == 1 and parsed["old"] == "a" and parsed["new"] == "b"
    before = result.targets[0].before
    assert before is not None and before.score is None  # never scored: no number to show
