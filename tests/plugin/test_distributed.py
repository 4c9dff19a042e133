"""Under pytest-xdist, workers optimize and the controller alone writes the lockfile, once."""

from __future__ import annotations

import pytest

from .conftest import FAST, Project

# Appended to the inner conftest: every lockfile write is logged with the process's role
# (patched per run, since an in-process run shares the class with this session).
WRITE_LOG = '''

from pytest_mipro.lockfile import Lockfile

_original_write = Lockfile.write


_ROLE = []


def _logged_write(self, *args, **kwargs):
    with open(os.environ["LOCK_WRITE_LOG"], "a") as handle:
        handle.write(_ROLE[-1] + "\\n")
    _original_write(self, *args, **kwargs)


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
    # Both workers' spending is counted, and so is the final scoring of the winner (uncached here).
    assert entry["counts"]["calls"] == project.lm_calls("task") + project.lm_calls("prompt")


# Appended to the inner conftest: every task call is logged with the worker that made it
# and the item it was about, and waits a little so the two workers overlap.
CALLS_BY_WORKER = '''

import time as _time

_logged_task = task


def task(messages, params):
    item = _fields(messages[-1]["content"]).get("item", "")
    with open(os.environ["CALLS_BY_WORKER"], "a") as handle:
        handle.write(os.environ.get("PYTEST_XDIST_WORKER", "none") + "|" + item + "\\n")
    _time.sleep(0.02)
    return _logged_task(messages, params)


register_fake_model("plugin-task", task)
'''

HOLDOUT_TEST = f'''
import pytest
from pytest_mipro import Example, Predict
from conftest import WORDS

food = Predict("item -> kind", instructions="Say what kind of food this is.")


@pytest.fixture
def mipro_examples():
    return [Example(item=f"{{w}} {{i}}", kind=k) for i in range(8) for w, k in WORDS.items()]


@pytest.mark.mipro(food, name="food", {FAST})
def test_food(mipro):
    assert mipro.score >= 0.5
'''


def test_helpers_prefetch_the_holdout_check_and_their_calls_are_counted(project: Project, monkeypatch, tmp_path) -> None:
    from pytest_mipro import Example

    calls = tmp_path / "calls.log"
    monkeypatch.setenv("CALLS_BY_WORKER", str(calls))
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + CALLS_BY_WORKER)
    project.write_test(HOLDOUT_TEST)

    project.run_subprocess("-n", "2", "--mipro-optimize").assert_outcomes(passed=2)

    entry = project.lock()["targets"]["food"]
    assert entry["holdout"]["source"] == "split" and entry["holdout"]["compared_with"] == "unoptimized"
    words = {"apple": "fruit", "pear": "fruit", "plum": "fruit", "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable"}
    items = {Example(item=f"{w} {i}", kind=k).uid: f"{w} {i}" for i in range(8) for w, k in words.items()}
    held = {items[uid] for uid in entry["holdout"]["ids"]}
    assert len(held) == 12  # a quarter of 48, never seen by the search
    by_worker: dict[str, int] = {}
    for line in calls.read_text().splitlines():
        worker, item = line.split("|")
        if item in held:
            by_worker[worker] = by_worker.get(worker, 0) + 1
    # Both workers scored the holdout: the helper from the back while the locking worker went
    # from the front. Two programs (the optimized and the unoptimized one) on 12 examples:
    # at most a prefetch chunk (4) per program is paid twice where the two meet.
    assert set(by_worker) == {"gw0", "gw1"}, by_worker
    assert sum(by_worker.values()) <= 2 * len(held) + 2 * 4, by_worker
    # What the helper spent is in the entry's counts: every call that reached the model.
    assert entry["counts"]["calls"] == project.lm_calls("task") + project.lm_calls("prompt")


def test_a_pytest_started_by_a_worker_is_a_run_of_its_own(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # An outer xdist worker's variables reach every pytest its tests start. Shared, the run id
    # would make a resumed run wait an hour for the trials its interrupted predecessor left.
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "outer-run")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            from pytest_mipro.plugin import _session
            session = _session(config)
            print(f"run id {session.run_id} worker {session.worker}")
        """
    )
    pytester.makepyfile("def test_nothing(): pass")
    first, second = pytester.runpytest_subprocess("-s"), pytester.runpytest_subprocess("-s")
    ids = [line.split()[2] for result in (first, second) for line in result.outlines if line.startswith("run id ")]
    assert len(ids) == 2 and "outer-run" not in ids and ids[0] != ids[1]
    first.stdout.fnmatch_lines(["run id * worker 0"])
