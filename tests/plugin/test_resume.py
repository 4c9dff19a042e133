"""`--mipro-optimize` resumes an interrupted run, and runs join a shared PostgreSQL study."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from .conftest import Project

TRIALS = 6
SLOW_TEST = f'''
import pytest
from pytest_mipro import Predict

food = Predict("item -> kind", instructions="Say what kind of food this is.")


@pytest.mark.mipro(food, name="food", auto=None, num_candidates=3, num_trials={TRIALS}, minibatch=False)
def test_food(mipro):
    assert mipro.score >= 0.5
'''

# Appended to the inner conftest: crash (no cleanup at all) after $FAKE_CRASH_AFTER task calls,
# and wait $FAKE_LATENCY seconds per call so concurrent runs overlap.
FAULTS = """

import time as _time

_inner_task = task
_calls = []


def task(messages, params):
    _calls.append(1)
    crash_after = os.environ.get("FAKE_CRASH_AFTER")
    if crash_after and len(_calls) > int(crash_after):
        os._exit(17)
    _time.sleep(float(os.environ.get("FAKE_LATENCY", "0")))
    return _inner_task(messages, params)


register_fake_model("plugin-task", task)
"""


def _with_faults(project: Project) -> None:
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + FAULTS)
    project.write_test(SLOW_TEST)


def _search_trials(storage: object, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=storage)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return [t for t in done if t.user_attrs.get("claimed")]


def _journal_trials(project: Project) -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    (run_dir,) = (project.path / ".mipro" / "runs").iterdir()
    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    return _search_trials(storage, run_dir.name)


def test_a_killed_optimize_run_resumes_without_repeating_trials(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_faults(project)
    monkeypatch.setenv("FAKE_CRASH_AFTER", "12")  # the one-time steps and the first trial, then the process dies
    crashed = project.run_subprocess("--mipro-optimize", "--mipro-no-cache")
    assert crashed.ret == 17
    assert not project.lockfile.exists()  # nothing is written until a run completes
    before = _journal_trials(project)
    assert 0 < len(before) < TRIALS

    monkeypatch.delenv("FAKE_CRASH_AFTER")
    project.run_subprocess("--mipro-optimize", "--mipro-no-cache").assert_outcomes(passed=1)
    after = _journal_trials(project)
    assert len(after) == TRIALS
    assert {t.number for t in before} <= {t.number for t in after}  # kept, not redone
    assert len({t.user_attrs["run_id"] for t in after}) == 2
    assert project.lock()["targets"]["food"]["optimizer"]["trials"] == TRIALS


def test_a_finished_study_makes_a_rerun_free(project: Project) -> None:
    project.run("--mipro-optimize", "--mipro-no-cache").assert_outcomes(passed=1)
    calls = project.lm_calls()
    project.lockfile.unlink()
    project.run("--mipro-optimize", "--mipro-no-cache").assert_outcomes(passed=1)
    assert project.lockfile.exists()
    # Only the final scoring of the chosen program runs again (the cache is off); no search trial does.
    assert project.lm_calls() - calls <= len(project.lock()["targets"]["food"]["results"]["ids"])


def test_bad_storage_url_is_a_usage_error(project: Project) -> None:
    result = project.run("--mipro-optimize", "--mipro-storage", "not-a-url")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mipro-storage*not a database URL*"])


def test_two_pytest_processes_share_one_postgres_study(
    project: Project, postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _with_faults(project)
    monkeypatch.setenv("FAKE_LATENCY", "0.05")
    other = tmp_path / "other-machine"
    shutil.copytree(project.path, other)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mipro-optimize", "--mipro-no-cache",
               "--mipro-storage", postgres_url]
    runs = [subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for cwd in (project.path, other)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    storage = optuna.storages.RDBStorage(postgres_url)
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith("food-")]
    trials = _search_trials(storage, name)
    assert len(trials) == TRIALS  # the budget is shared, not doubled
    assert len({t.user_attrs["run_id"] for t in trials}) == 2  # both processes worked on it
    assert (project.path / "prompts.lock").exists() and (other / "prompts.lock").exists()
