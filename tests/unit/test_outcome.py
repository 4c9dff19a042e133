"""TargetOutcome: a typed value that crosses processes and files as plain data, and back."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_mipro import Example, Prediction, Usage
from pytest_mipro.fingerprint import Fingerprint
from pytest_mipro.gate import GateStats, Judgement
from pytest_mipro.lockfile import Counts, ExampleScores, LockEntry, PredictorLock
from pytest_mipro.optimizer.evaluate import ExampleResult
from pytest_mipro.optimizer.search import TrialLog
from pytest_mipro.optimizer.study import TrialKind
from pytest_mipro.outcome import HoldoutVerdict, Mode, Outcome, Selection, ShorterPick, TargetOutcome
from pytest_mipro.report import json_report
from pytest_mipro.scoring import Evaluation
from pytest_mipro.stats import RegressionResult


def example(item: str, kind: str) -> Example:
    return Example(item=item, kind=kind).with_inputs("item")


def results() -> tuple[ExampleResult, ...]:
    right = ExampleResult(example("apple", "fruit"), Prediction(kind="fruit"), 1.0)
    unparsed = Prediction.failed("reply has no value for kind", "???", ["kind"])
    return (
        right,
        ExampleResult(example("leek", "vegetable"), unparsed, 0.0),
        ExampleResult(example("kale", "vegetable"), None, 0.0, error="LMError: boom"),
    )


def entry() -> LockEntry:
    return LockEntry(
        name="food",
        predictors={"self": PredictorLock("item -> kind", "Label the food.", [{"item": "plum", "kind": "fruit"}])},
        score=0.5,
        fingerprint=Fingerprint({"structure": "a", "instructions": "b"}),
        baseline_score=0.0,
        threshold=0.4,
        n=2,
        task_model="fake/task",
        prompt_model="fake/prompt",
        optimizer={"auto": None, "seed": 9, "trials": 3},
        counts=Counts(Usage(calls=12, cache_hits=3, prompt_tokens=100, completion_tokens=10), 1.5),
        results=ExampleScores(("a1", "b2"), (1.0, 0.0)),
        bounds=(0.1, 0.9),
        holdout={"source": "split", "n": 2, "adopted": True},
        extra={"owner": "support"},
    )


def optimized() -> TargetOutcome:
    regression = RegressionResult(0.0, 1.0, "mcnemar", False, False, 3, 0.333333, 0.333333, 0, 0)
    return TargetOutcome(
        target="food",
        nodeid="test_food.py::test_food",
        mode=Mode.OPTIMIZE,
        outcome=Outcome.PASSED,
        message="mipro target 'food': INCONCLUSIVE: ...",
        threshold=0.4,
        threshold_source="marker",
        entry=entry(),
        evaluation=Evaluation(1 / 3, results(), Counts(Usage(calls=3, errors=1), 0.25)),
        judgement=Judgement("INCONCLUSIVE", 1 / 3, 3, 3, 0.4, 0.05, 0.8, 25, regression, False, None),
        gate=GateStats(repeats=2, min_drop=0.02, pass_rate=0.5, pass_all=0.25, saved_calls=4),
        selection=Selection(
            "split", 48, 12, 28, 40, ShorterPick(0.4, 100, 0.45, 300), HoldoutVerdict("lock", False, False, 12, 0.4, 0.5, -0.1, -0.3)
        ),
        trials=(
            TrialLog(
                number=0,
                kind=TrialKind.FULL,
                pruned=False,
                params={"0_predictor_instruction": 1},
                score=0.5,
                num_examples=4,
                best_full_score=0.5,
                lm_calls=4,
                elapsed=0.1,
            ),
            TrialLog(
                number=1,
                kind=TrialKind.BASELINE,
                pruned=True,
                params={"0_predictor_instruction": 0},
                score=0.0,
                num_examples=1,
                best_full_score=0.5,
                lm_calls=5,
                elapsed=0.2,
            ),
        ),
        counts=Counts(Usage(calls=40, cache_hits=2, prompt_tokens=900, completion_tokens=80, cost=0.01), 3.5),
    )


def schema() -> dict[str, Any]:
    return json.loads(files("pytest_mipro").joinpath("schema/report.schema.json").read_text(encoding="utf-8"))


def test_an_outcome_survives_plain_data_and_json() -> None:
    outcome = optimized()

    data = json.loads(json.dumps(outcome.to_dict()))
    back = TargetOutcome.from_dict(data)

    assert back == outcome
    assert back.evaluation is not None and back.evaluation.results[1].parse_error == "reply has no value for kind"
    assert back.trials[1].kind is TrialKind.BASELINE and back.trials[1].pruned


def test_reports_of_every_mode_match_the_schema() -> None:
    missing = TargetOutcome("food", "t.py::t", Mode.GATE, Outcome.MISSING, "no entry")
    checked = TargetOutcome("food", "t.py::t", Mode.CHECK, Outcome.PASSED, entry=entry())
    never_scored = TargetOutcome(
        "food", "t.py::t", Mode.CHECK, Outcome.PASSED, entry=LockEntry("food", entry().predictors, float("nan"), Fingerprint({}))
    )

    report = json_report([optimized(), missing, checked, never_scored], lockfile=Path("prompts.lock"), mode="gate")

    jsonschema.validate(json.loads(json.dumps(report, allow_nan=False)), schema())


def test_a_malformed_outcome_names_the_key() -> None:
    data = optimized().to_dict()
    data["judgement"] = {**data["judgement"], "verdict": "MAYBE"}  # type: ignore[dict-item]

    with pytest.raises(ValueError, match="'verdict' must be one of 'PASS', 'FAIL', 'INCONCLUSIVE', got 'MAYBE'"):
        TargetOutcome.from_dict(data)


def test_the_deprecated_record_keeps_the_old_flat_keys() -> None:
    record = optimized().legacy_record()

    assert record["target"] == "food" and record["mode"] == "optimize" and record["outcome"] == "passed"
    assert (record["calls"], record["cache_hits"], record["tokens"], record["seconds"]) == (40, 2, 980, 3.5)
    assert record["verdict"] == "INCONCLUSIVE" and record["n"] == 3 and len(record["examples"]) == 3  # type: ignore[arg-type]
    assert [t["kind"] for t in record["trials"]] == ["full", "baseline"]  # type: ignore[attr-defined,index]
