"""Run state shared between processes: which RUNNING trials a new run may declare dead."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from pytest_mipro.lm import Usage
from pytest_mipro.optimizer.checkpoint import Checkpoint, fail_stale_trials
from pytest_mipro.optimizer.study import SearchStudy


def _study(checkpoint: Checkpoint) -> optuna.Study:
    return optuna.create_study(storage=checkpoint.storage(), study_name="s", load_if_exists=True)


def test_the_first_process_of_a_run_fails_a_dead_runs_trials_and_later_ones_touch_nothing(tmp_path: Path) -> None:
    dead = _study(Checkpoint(tmp_path, run_id="old")).ask()
    dead.set_user_attr("run_id", "old")  # left RUNNING by a killed run
    first, second = Checkpoint(tmp_path, run_id="new"), Checkpoint(tmp_path, run_id="new")
    study = _study(first)

    assert fail_stale_trials(SearchStudy(study), first) == 1
    fresh = study.ask()  # the first process's trial, before it is tagged with the run id

    assert fail_stale_trials(SearchStudy(study), second) == 0  # a worker arriving late: it is not dead
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states == {dead.number: TrialState.FAIL, fresh.number: TrialState.RUNNING}


def test_the_setup_lock_calls_on_wait_only_when_another_process_holds_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    waited: list[str] = []
    with Checkpoint(tmp_path, run_id="r").setup_lock(on_wait=lambda: waited.append("first")):
        pass
    assert waited == []  # nobody held it

    holder = subprocess.Popen(  # another process holds the lock for a moment
        [sys.executable, "-c", "import sys, time\nfrom filelock import FileLock\n"
         f"with FileLock({str(tmp_path / 'setup.lock')!r}):\n    print('held', flush=True)\n    time.sleep(1)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with Checkpoint(tmp_path, run_id="r").setup_lock(on_wait=lambda: waited.append("second")):
        pass
    assert holder.wait(timeout=30) == 0
    assert waited == ["second"]


def test_the_run_spending_adds_up_every_process_and_the_seal_turns_late_helpers_away(tmp_path: Path) -> None:
    locking, helper = Checkpoint(tmp_path, run_id="r"), Checkpoint(tmp_path, run_id="r")
    with helper.helping() as wanted:
        assert wanted
        helper.record_spending(Usage(calls=3, cost=0.5))
    locking.record_spending(Usage(calls=10, cache_hits=2))
    locking.seal_and_wait_for_helpers(timeout=5)

    assert locking.total_spending() == Usage(calls=13, cache_hits=2, cost=0.5)
    with helper.helping() as wanted:
        assert not wanted  # the entry is being built: nothing left to help with
    # A later run of the same study (a resume) adds to what the earlier ones spent.
    later = Checkpoint(tmp_path, run_id="next")
    later.record_spending(Usage(calls=1))
    assert later.total_spending() == Usage(calls=14, cache_hits=2, cost=0.5)


def test_a_process_record_replaces_its_earlier_one(tmp_path: Path) -> None:
    process = Checkpoint(tmp_path, run_id="r")
    process.record_spending(Usage(calls=3))  # after a trial
    process.record_spending(Usage(calls=7))  # at the end: everything so far, not 7 more
    assert Checkpoint(tmp_path, run_id="r").total_spending() == Usage(calls=7)


def test_sealing_waits_for_a_helper_at_work_but_not_for_a_dead_one(tmp_path: Path) -> None:
    import threading
    import time

    locking, helper = Checkpoint(tmp_path, run_id="r"), Checkpoint(tmp_path, run_id="r")
    (locking.directory / "claims" / "r" / "spending").mkdir(parents=True)
    (locking.directory / "claims" / "r" / "spending" / "busy-999999999-dead").touch()  # a killed helper's mark

    def help_a_while() -> None:
        with helper.helping():
            time.sleep(0.5)
            helper.record_spending(Usage(calls=4))

    worker = threading.Thread(target=help_a_while)
    worker.start()
    time.sleep(0.1)
    locking.seal_and_wait_for_helpers(timeout=30)
    assert locking.total_spending().calls == 4  # waited for the live helper, ignored the dead one
    worker.join()
