"""``--mipro-report`` files and the plugin's own hooks."""

from __future__ import annotations

import json

from .conftest import Project

HOOKS = '''

def pytest_mipro_trial_finished(target_name, trial):
    with open("trials.log", "a") as handle:
        handle.write(f"{target_name} {trial.trial.kind.value} {trial.number}/{trial.total}\\n")


def pytest_mipro_lock_entry(target_name, entry):
    return {"reviewed_by": "hook", "score_seen": entry.score}


def pytest_mipro_target_finished(target_name, outcome):
    with open("targets.log", "a") as handle:
        handle.write(f"{target_name} {outcome.mode.value} {outcome.outcome.value} {outcome.verdict}\\n")
'''

DEPRECATED_HOOKS = '''

def pytest_mipro_lock_entry(target_name, entry):
    entry.extra["reviewed_by"] = "old hook"


def pytest_mipro_target_finished(target_name, record):
    with open("records.log", "a") as handle:
        handle.write(f"{target_name} {record['mode']} {record['outcome']} {record['score']} {record['calls']}\\n")
'''


def test_json_report_has_per_example_results_and_trials(project: Project) -> None:
    project.run("--mipro-optimize", "--mipro-report", "report.json").assert_outcomes(passed=1)

    data = json.loads((project.path / "report.json").read_text())

    assert data["mode"] == "optimize" and data["version"] == 2
    (record,) = data["targets"]
    assert record["target"] == "food" and record["nodeid"] == "test_food.py::test_food" and record["outcome"] == "passed"
    assert record["score"] == 1.0 and record["baseline_score"] == 0.0 and record["evaluation"]["n"] == 9
    kinds = [t["kind"] for t in record["trials"]]  # racing may stop any early: that is the `pruned` flag
    assert kinds == ["full", "full", "full", "baseline"]
    example = record["evaluation"]["examples"][0]
    assert set(example) == {"id", "score", "inputs", "expected", "prediction", "error", "parse_error"}
    assert example["inputs"]["item"] and example["prediction"]["kind"] == example["expected"]["kind"]


def test_html_report_is_self_contained_with_a_trial_plot(project: Project) -> None:
    project.run("--mipro-optimize", "--mipro-report", "report.html").assert_outcomes(passed=1)

    page = (project.path / "report.html").read_text()

    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<polyline" in page
    assert page.count("r='4' fill=") == 4  # one dot per evaluation: three trials and the baseline
    assert page.count("<script") == 1 and "<script>" in page  # the filters' few lines, inline
    for external in ("<link", "src=", "@import", "url(", "http://", "https://"):
        assert external not in page


def test_report_of_a_failing_gate_records_the_message(project: Project) -> None:
    project.run("--mipro-report", "gate.json").assert_outcomes(failed=1)

    (record,) = json.loads((project.path / "gate.json").read_text())["targets"]

    assert record["outcome"] == "missing" and "pytest --mipro-optimize" in record["message"]


def test_hooks_see_trials_add_lock_fields_and_see_outcomes(project: Project) -> None:
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + HOOKS)

    project.run("--mipro-optimize").assert_outcomes(passed=1)
    project.run().assert_outcomes(passed=1)

    trials = (project.path / "trials.log").read_text().splitlines()
    assert trials == ["food full 1/3", "food full 2/3", "food full 3/3", "food baseline 3/3"]
    assert project.lock()["targets"]["food"]["extra"] == {"reviewed_by": "hook", "score_seen": 1.0}
    assert (project.path / "targets.log").read_text().splitlines() == ["food optimize passed PASS", "food gate passed PASS"]


def test_deprecated_hook_forms_still_work_for_one_release(project: Project) -> None:
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + DEPRECATED_HOOKS)

    result = project.run("--mipro-optimize", "-W", "always::DeprecationWarning")
    result.assert_outcomes(passed=1, warnings=2)
    result.stdout.fnmatch_lines(["*DeprecationWarning: pytest_mipro_lock_entry: filling entry.extra is deprecated*"])
    result.stdout.fnmatch_lines(["*DeprecationWarning: pytest_mipro_target_finished: the record argument is deprecated*"])
    project.run().assert_outcomes(passed=1)

    assert project.lock()["targets"]["food"]["extra"] == {"reviewed_by": "old hook"}
    optimize, gate = (project.path / "records.log").read_text().splitlines()
    assert optimize.startswith("food optimize passed 1.0 ") and gate == "food gate passed 1.0 0"
