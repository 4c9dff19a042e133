"""What CI shows of a run: the Markdown summary (``--mipro-report summary.md``, or appended to
``$GITHUB_STEP_SUMMARY``) and the ``mipro_*`` JUnit properties of each gated test.

The lockfiles are real: ``--mipro-optimize`` with seed 1, then again with seed 2 while the task
model labels ``kale`` wrongly (two of the nine gate examples flip), as a pull request that
re-tunes a prompt would. The marker's threshold 0.9 lies inside 7/9's bounds, so the second
lock's verdict is INCONCLUSIVE; a gate run where ``leek`` goes wrong too scores 5/9: FAIL.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_mipro.lockfile import Lockfile
from pytest_mipro.stats import mcnemar_exact_p

from .conftest import FOOD_TEST, Project

THRESHOLD_TEST = FOOD_TEST.replace('name="food",', 'name="food", threshold=0.9,')


@pytest.fixture
def relocked(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The project after two optimize runs: seed 1 (all right), then seed 2 with kale wrong."""
    project.write_test(THRESHOLD_TEST)
    project.run("--mipro-optimize", "--mipro-seed", "1", "-q").assert_outcomes(passed=1)
    shutil.copy(project.lockfile, project.path / "seed1.lock")
    monkeypatch.setenv("FAKE_WRONG", "kale")
    project.run("--mipro-optimize", "--mipro-seed", "2", "--mipro-no-cache", "--mipro-report", "optimize.md", "-q").assert_outcomes(
        passed=1, warnings=1
    )
    return project


def _kale_ids(lock: Path) -> list[str]:
    results = Lockfile.read(lock).require("food").results
    return [uid for uid, score in zip(results.ids, results.scores, strict=True) if score == 0.0]


def test_optimize_summary_compares_the_new_lock_with_the_previous_one(relocked: Project) -> None:
    summary = (relocked.path / "optimize.md").read_text(encoding="utf-8")

    lines = summary.splitlines()
    assert lines[:2] == ["<!-- pytest-mipro summary -->", "### pytest-mipro (optimize): 1 target: 0 failed, 1 passed"]
    assert "| | target | verdict | score [bounds] | threshold | vs lock | n | calls | cost |" in lines
    # 2 of the 9 shared examples got worse: exact McNemar, one-sided p = 0.25.
    assert mcnemar_exact_p(2, 0) == 0.25
    row = next(line for line in lines if line.startswith("| ⚠️ | food |"))
    assert row.startswith("| ⚠️ | food | INCONCLUSIVE | 0.778 [0.504, 0.924] | 0.900 | -0.222 (p=0.25) | 9 | ")
    # The warned target's details: its message and its worst examples, the kale ones.
    assert "<details><summary><code>food</code>: INCONCLUSIVE, the worst 2 examples</summary>" in summary
    assert "```text\nmipro target 'food': INCONCLUSIVE: the threshold 0.900 (marker)" in summary
    for uid in _kale_ids(relocked.lockfile):
        assert f"| `{uid}` | 0.00 | item: \"kale " in summary
    assert summary.rstrip().endswith("</details>")


def test_step_summary_is_appended_and_junit_carries_the_numbers(relocked: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    step_summary = relocked.path / "step_summary.md"
    step_summary.write_text("## Earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    monkeypatch.setenv("FAKE_WRONG", "kale,leek")

    result = relocked.run("--mipro-report", "gate.json", "--junitxml", "junit.xml")

    result.assert_outcomes(failed=1)
    (record,) = json.loads((relocked.path / "gate.json").read_text())["targets"]
    judgement = record["judgement"]
    assert judgement["verdict"] == "FAIL"
    summary = step_summary.read_text(encoding="utf-8")
    assert summary.startswith("## Earlier step\n\n<!-- pytest-mipro summary -->\n### pytest-mipro (gate): 1 target: 1 failed, 0 passed")
    n = str(judgement["evaluated"]) if not judgement["curtailed"] else f"{judgement['evaluated']}/{judgement['total']}"
    scored = f"{record['score']:.3f} [{judgement['lower']:.3f}, {judgement['upper']:.3f}]"
    assert f"| ❌ | food | FAIL | {scored} | 0.900 | " in summary and f" | {n} | " in summary
    assert "<details><summary><code>food</code>: FAIL, the worst " in summary

    (case,) = ET.parse(relocked.path / "junit.xml").getroot().iter("testcase")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["mipro_verdict"] == "FAIL" and properties["mipro_outcome"] == "failed" and properties["mipro_mode"] == "gate"
    assert float(properties["mipro_score"]) == pytest.approx(record["score"], abs=1e-6)
    assert float(properties["mipro_lower"]) == pytest.approx(judgement["lower"], abs=1e-6)
    assert float(properties["mipro_upper"]) == pytest.approx(judgement["upper"], abs=1e-6)
    assert float(properties["mipro_threshold"]) == 0.9
    assert int(properties["mipro_calls"]) == record["counts"]["calls"] > 0
    assert float(properties["mipro_cost"]) == record["counts"]["cost"]


def test_passing_gate_properties_and_no_summary_without_the_variable(relocked: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "")  # set but empty: no summary

    relocked.run("--junitxml", "junit.xml", "--mipro-threads", "1").assert_outcomes(passed=1, warnings=1)

    (case,) = ET.parse(relocked.path / "junit.xml").getroot().iter("testcase")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["mipro_verdict"] == "INCONCLUSIVE" and properties["mipro_outcome"] == "passed"
    assert float(properties["mipro_score"]) == pytest.approx(7 / 9, abs=1e-6)
    assert not list(relocked.path.glob("*.md"))[1:]  # only the optimize run's summary


def test_no_targets_no_step_summary(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    step_summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")

    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)

    assert not step_summary.exists()
