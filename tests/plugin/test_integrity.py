"""Nothing lost, nothing passed by accident: the lock and the gate under faults and bad input.

Each test here reproduces a defect of issue 18 (see docs/integrity.md for the whole table).
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_mipro import Example

from .conftest import FOOD_TEST, INNER_CONFTEST, Project


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without the seconds of backoff between them (the runs are in-process)."""
    monkeypatch.setattr("pytest_mipro.lm.client._backoff", lambda attempt: 0.0)


def _forget_the_run(project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stored study and an empty response cache: the next run asks the model again."""
    shutil.rmtree(project.path / ".mipro", ignore_errors=True)
    fresh = tmp_path / "fresh-cache"
    fresh.mkdir(exist_ok=True)
    monkeypatch.setenv("MIPRO_CACHE_DIR", str(fresh))


# ---------------------------------------------------------------- provider errors


@pytest.mark.parametrize("share", ["1", "0.8"])
def test_a_provider_outage_stops_the_target_and_leaves_its_lock_entry_alone(
    optimized: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_backoff: None, share: str
) -> None:
    before = optimized.lockfile.read_bytes()
    _forget_the_run(optimized, monkeypatch, tmp_path)
    monkeypatch.setenv("FAKE_FAIL", share)

    result = optimized.run("--mipro-optimize")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*failed with a provider error after retries*fake/plugin-task*500*"])
    assert optimized.lockfile.read_bytes() == before
    assert "mipro: updated" not in result.stdout.str()

    monkeypatch.delenv("FAKE_FAIL")
    optimized.run("--mipro-optimize").assert_outcomes(passed=1)  # the study resumes once the provider is back
    assert optimized.lock()["targets"]["food"]["score"] == 1.0


def test_a_provider_outage_writes_no_new_entry(project: Project, monkeypatch: pytest.MonkeyPatch, no_backoff: None) -> None:
    monkeypatch.setenv("FAKE_FAIL", "1")

    result = project.run("--mipro-optimize")

    result.assert_outcomes(errors=1)
    assert not project.lockfile.exists()


def test_a_provider_outage_in_the_gate_is_an_error_not_a_verdict(
    optimized: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_backoff: None
) -> None:
    _forget_the_run(optimized, monkeypatch, tmp_path)
    monkeypatch.setenv("FAKE_FAIL", "1")

    result = optimized.run()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*provider error*fake/plugin-task*"])


def test_a_provider_error_in_the_gate_is_not_a_wrong_answer(
    optimized: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_backoff: None
) -> None:
    optimized.write_test(
        FOOD_TEST.replace("assert mipro.score >= 0.5", "assert mipro.score == 1.0 and mipro.verdict == 'PASS'")
    )
    _forget_the_run(optimized, monkeypatch, tmp_path)
    monkeypatch.setenv("FAKE_DOWN", "kale 0")  # one gate example gets no answer

    result = optimized.run()

    result.assert_outcomes(passed=1)


def test_a_run_with_a_few_provider_errors_keeps_the_locked_entry_as_it_was(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_backoff: None
) -> None:
    project.pytester.makeconftest(INNER_CONFTEST.replace("for i in range(2)", "for i in range(8)"))  # 48: a holdout
    project.run("--mipro-optimize").assert_outcomes(passed=1)
    before = project.lockfile.read_bytes()
    locked = project.lock()["targets"]["food"]
    kinds = {"kale": "vegetable", "leek": "vegetable", "pear": "fruit", "plum": "fruit"}
    items = {Example(item=f"{word} {i}", kind=kind).uid: f"{word} {i}" for i in range(8) for word, kind in kinds.items()}
    validated = [items[uid] for uid in locked["results"]["ids"] if uid in items]
    held_out = [items[uid] for uid in locked["holdout"]["ids"] if uid in items]
    _forget_the_run(project, monkeypatch, tmp_path)
    # One validation and one holdout example get no answer: under the rate that stops a run.
    monkeypatch.setenv("FAKE_DOWN", f"{validated[0]},{held_out[0]}")

    result = project.run("--mipro-optimize")

    result.assert_outcomes(passed=1)
    assert project.lockfile.read_bytes() == before


# ---------------------------------------------------------------- the metric's contract

BROKEN_METRICS = {
    "above one": ("lambda example, prediction, trace=None: 2.0", r"returned 2\.0 on example [0-9a-f]{12}; metrics must return"),
    "negative": ("lambda example, prediction, trace=None: -1", r"returned -1 on example [0-9a-f]{12}"),
    "none": ("lambda example, prediction, trace=None: None", r"returned None on example [0-9a-f]{12}"),
    "nan": ("lambda example, prediction, trace=None: float('nan')", r"returned nan on example [0-9a-f]{12}"),
    "a string": ("lambda example, prediction, trace=None: 'yes'", r"returned 'yes' on example [0-9a-f]{12}"),
    "raises": ("lambda example, prediction, trace=None: 1 / 0", r"raised on example [0-9a-f]{12}: ZeroDivisionError: division by zero"),
    "wrong signature": ("lambda example, prediction: True", r"raised on example [0-9a-f]{12}: TypeError: .*2 positional arguments"),
}


@pytest.mark.parametrize("case", list(BROKEN_METRICS))
def test_a_metric_that_breaks_its_contract_fails_the_target_naming_the_example(
    optimized: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: str
) -> None:
    source, message = BROKEN_METRICS[case]
    before = optimized.lockfile.read_bytes()
    _forget_the_run(optimized, monkeypatch, tmp_path)
    optimized.write_test(FOOD_TEST + f"\n\n@pytest.fixture\ndef mipro_metric():\n    return {source}\n")

    result = optimized.run("--mipro-optimize")

    result.assert_outcomes(errors=1)
    assert re.search(r"test_food: metric mipro_metric\.<locals>\.<lambda> " + message, result.stdout.str())
    assert optimized.lockfile.read_bytes() == before


# The metric's source stays the same (the lock entry stays fresh); what it returns changes.
METRIC_BY_ENV = """

import os

@pytest.fixture
def mipro_metric():
    def metric(example, prediction, trace=None):
        return float(os.environ.get("METRIC_VALUE", prediction.kind.strip().lower() == example.kind))
    return metric
"""


def test_a_metric_that_breaks_its_contract_in_the_gate_fails_the_target(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project.write_test(FOOD_TEST + METRIC_BY_ENV)
    project.run("--mipro-optimize").assert_outcomes(passed=1)
    _forget_the_run(project, monkeypatch, tmp_path)
    monkeypatch.setenv("METRIC_VALUE", "2")

    result = project.run()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_food: metric mipro_metric.<locals>.metric returned 2.0 on example * metrics must return*"])


def test_examples_without_the_output_field_are_a_setup_error_before_any_lm_call(project: Project) -> None:
    project.write_test(
        FOOD_TEST
        + textwrap.dedent(
            """

            @pytest.fixture
            def mipro_examples():
                return [{"item": "apple 0", "kind": "fruit"}, {"item": "kale 0"}, {"item": "pear 0", "kind": "fruit"}]
            """
        )
    )

    result = project.run("--mipro-optimize")

    result.assert_outcomes(errors=1)
    expected = r"examples: example 1 \(id [0-9a-f]{12}, fields \['item'\]\) lacks the signature field\(s\) \['kind'\]"
    assert re.search(expected, result.stdout.str())
    assert project.lm_calls("task") == project.lm_calls("prompt") == 0
    assert not project.lockfile.exists()


# ---------------------------------------------------------------- bad declarations, found before any LM call

MARKER = 'food, name="food", auto=None, num_candidates=3, num_trials=3, minibatch=False'


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('food, name="food", auto="extreme"', "auto='extreme' must be one of light, medium, heavy or None"),
        ('food, name="food", seed="abc"', "seed='abc' must be a whole number >= 0"),
        (MARKER + ", seed=1.5", "seed=1.5 must be a whole number >= 0"),
        ('food, name="food", auto=None, num_candidates=3, num_trials=-5', "num_trials=-5 must be a whole number >= 1"),
        ('food, name="food", auto=None, num_candidates=0, num_trials=3', "num_candidates=0 must be a whole number >= 1"),
        (MARKER + ', minibatch_size="big"', "minibatch_size='big' must be a whole number >= 1"),
    ],
)
def test_a_bad_marker_value_is_a_one_line_error_naming_the_argument(project: Project, marker: str, message: str) -> None:
    project.write_test(FOOD_TEST.replace(MARKER, marker))

    result = project.run("--mipro-optimize")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"test_food.py::test_food: mipro target 'food': {message}"])
    assert "Traceback" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()
    assert project.lm_calls("task") == project.lm_calls("prompt") == 0


def test_two_tests_with_the_same_name_are_a_name_clash(project: Project) -> None:
    other = FOOD_TEST.replace("def test_food(", "def test_other_food(").replace("food, name=", "food, threshold=0.5, name=")
    project.write_test(other, name="test_other")

    result = project.run("--mipro-optimize")

    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*mipro target name clash: 2 tests declare name='food' (test_food.py::test_food, test_other.py::test_other_food);*own name=*"]
    )
    assert project.lm_calls("task") == project.lm_calls("prompt") == 0
    assert not project.lockfile.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\ntargets:\n  food:\n    score: [0.5\n", "*prompts.lock:*malformed lockfile*"),
        ("version: 2\ntargets: {}\n", "*prompts.lock:1: unsupported lockfile version 2*"),
    ],
)
def test_an_unusable_lockfile_stops_optimize_before_any_lm_call(project: Project, text: str, message: str) -> None:
    project.lockfile.write_text(text, encoding="utf-8")

    result = project.run("--mipro-optimize")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
    assert project.lm_calls("task") == project.lm_calls("prompt") == 0
    assert project.lockfile.read_text(encoding="utf-8") == text


# ---------------------------------------------------------------- duplicate examples

REPEATED = """

@pytest.fixture
def mipro_examples():
    rows = [{"item": f"{w} {i}", "kind": k} for i in range(2) for w, k in
            {"apple": "fruit", "pear": "fruit", "plum": "fruit", "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable"}.items()]
    return rows * 5  # 12 distinct examples, 60 rows
"""


def test_duplicate_examples_are_dropped_before_splitting_with_a_warning(project: Project) -> None:
    project.write_test(FOOD_TEST + REPEATED)

    result = project.run("--mipro-optimize")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*mipro target 'food': dropped 48 duplicate example(s) with the same id*"])
    entry = project.lock()["targets"]["food"]
    ids = entry["results"]["ids"]
    assert len(ids) == len(set(ids)) == entry["n"]
    assert not entry.get("holdout")  # 12 distinct examples: too few for a holdout split, whatever the rows


def test_no_example_is_in_two_of_train_validation_and_holdout(project: Project) -> None:
    project.write_test(
        FOOD_TEST
        + textwrap.dedent(
            """

            @pytest.fixture
            def mipro_holdout(mipro_examples):
                return mipro_examples[:4]

            @pytest.fixture
            def mipro_valset(mipro_examples):
                return mipro_examples[2:8]
            """
        )
    )

    result = project.run("--mipro-optimize")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*dropped 10 duplicate example(s)*(valset, already in holdout)*"])
    entry = project.lock()["targets"]["food"]
    assert not set(entry["results"]["ids"]) & set(entry["holdout"]["ids"])
    assert len(entry["results"]["ids"]) == 4 and len(entry["holdout"]["ids"]) == 4


# ---------------------------------------------------------------- budgets


def test_a_budget_too_small_for_the_final_evaluations_is_an_error_before_any_lm_call(project: Project) -> None:
    result = project.run("--mipro-optimize", "--mipro-budget", "5")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mipro target 'food': max_lm_calls=5 cannot pay for the final evaluations (9 calls*"])
    assert project.lm_calls("task") + project.lm_calls("prompt") == 0


@pytest.mark.parametrize(("rows", "budget"), [(2, "15"), (8, "130")])  # 8 rows: 48 examples, a holdout of 12
def test_no_request_beyond_the_budget_reaches_the_provider_and_the_lock_counts_them_all(
    project: Project, rows: int, budget: str
) -> None:
    project.pytester.makeconftest(INNER_CONFTEST.replace("for i in range(2)", f"for i in range({rows})"))

    result = project.run("--mipro-optimize", "--mipro-budget", budget)

    sent = project.lm_calls("task") + project.lm_calls("prompt")
    assert sent <= int(budget), result.stdout.str()
    assert project.lock()["targets"]["food"]["counts"]["calls"] == sent
    result.stdout.fnmatch_lines([f"food*{sent}*"])  # the summary's calls column


def test_a_resumed_run_counts_what_the_interrupted_run_spent(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_resume import _with_faults

    _with_faults(project)
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "outer")  # leaked by an outer xdist run: each run must still be its own
    monkeypatch.setenv("FAKE_CRASH_AFTER", "20")  # the one-time steps and a trial or two, then the process dies
    assert project.run_subprocess("--mipro-optimize", "--mipro-no-cache").ret == 17
    before = project.lm_calls("task") + project.lm_calls("prompt")

    monkeypatch.delenv("FAKE_CRASH_AFTER")
    project.run_subprocess("--mipro-optimize", "--mipro-no-cache").assert_outcomes(passed=1)

    total = project.lm_calls("task") + project.lm_calls("prompt")
    counted = project.lock()["targets"]["food"]["counts"]["calls"]
    # Everything but the calls the killed process made after its last record (at most one trial's).
    assert total - before < counted <= total
    assert counted >= total - 9
