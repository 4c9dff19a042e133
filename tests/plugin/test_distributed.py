"""Under pytest-xdist, workers optimize and the controller alone writes the lockfile, once."""

from __future__ import annotations

from .conftest import FAST, Project

# Appended to the inner conftest: every lockfile write is logged with the process's role
# (patched per run, since an in-process run shares the class with this session).
WRITE_LOG = '''

from pytest_mipro.lockfile import Lockfile

_original_write = Lockfile.write


_ROLE = []


def _logged_write(self):
    with open(os.environ["LOCK_WRITE_LOG"], "a") as handle:
        handle.write(_ROLE[-1] + "\\n")
    _original_write(self)


def pytest_configure(config):
    # The role comes from the config, not $PYTEST_XDIST_WORKER, which an outer xdist run leaks.
    _ROLE.append(config.workerinput["workerid"] if hasattr(config, "workerinput") else "controller")
    Lockfile.write = _logged_write


def pytest_unconfigure(config):
    Lockfile.write = _original_write  # in-process runs share the class with the outer session
'''


def test_two_workers_optimize_and_the_controller_writes_the_lock_once(project: Project, monkeypatch, tmp_path) -> None:
    log = tmp_path / "writes.log"
    monkeypatch.setenv("LOCK_WRITE_LOG", str(log))
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + WRITE_LOG)
    project.write_test(
        f'''
        import pytest
        from pytest_mipro import Predict

        @pytest.mark.mipro(Predict("item -> kind", instructions="What kind of food?"), name="other", {FAST})
        def test_other(mipro):
            assert mipro.score == 1.0
        ''',
        name="test_other",
    )

    # An in-process run first fills the LM cache, so the workers need not import litellm (seconds each).
    project.run("--mipro-optimize").assert_outcomes(passed=2)
    project.lockfile.unlink()
    log.unlink()

    result = project.run_subprocess("-n", "2", "--mipro-optimize")

    result.assert_outcomes(passed=4)  # each marked test and its helper item for the other worker
    assert log.read_text().splitlines() == ["controller"]
    assert sorted(project.lock()["targets"]) == ["food", "other"]
    result.stdout.fnmatch_lines(["*baseline -> optimized*", "food*0.000 -> 1.000*", "other*0.000 -> 1.000*"])


def test_one_target_spreads_over_every_worker_and_is_locked_once(project: Project, monkeypatch) -> None:
    from .test_resume import TRIALS, _journal_trials, _with_faults

    _with_faults(project)  # TRIALS search trials; FAKE_LATENCY makes the two workers overlap
    monkeypatch.setenv("FAKE_LATENCY", "0.05")

    result = project.run_subprocess("-n", "2", "--mipro-optimize", "--mipro-no-cache", "-v")

    # The marked test and one helper item, on different workers.
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*PASSED*test_food[[]mipro-helper-1-of-1[]]*"])
    trials = _journal_trials(project)
    assert len(trials) == TRIALS  # the budget is shared between the workers, not doubled
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    entry = project.lock()["targets"]["food"]
    assert entry["optimizer"]["trials"] == TRIALS
    assert entry["score"] == 1.0
    # Both workers' spending is counted (the final scoring of the winner, uncached here, is not).
    assert entry["counts"]["calls"] == project.lm_calls("task") + project.lm_calls("prompt") - entry["n"]
