"""Nothing lost, nothing passed by accident: the lock and the gate under faults and bad input.

Each test here reproduces a defect of issue 18 (see docs/integrity.md for the whole table).
"""

from __future__ import annotations

import shutil
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
