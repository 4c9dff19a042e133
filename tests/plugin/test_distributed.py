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

    result.assert_outcomes(passed=2)
    assert log.read_text().splitlines() == ["controller"]
    assert sorted(project.lock()["targets"]) == ["food", "other"]
    result.stdout.fnmatch_lines(["*baseline -> optimized*", "food*0.000 -> 1.000*", "other*0.000 -> 1.000*"])
