"""Run state shared between processes: which RUNNING trials a new run may declare dead, and the setup lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from pytest_mipro.optimizer.checkpoint import Checkpoint, fail_stale_trials


def _study(checkpoint: Checkpoint) -> optuna.Study:
    return optuna.create_study(storage=checkpoint.storage(), study_name="s", load_if_exists=True)


def test_the_first_process_of_a_run_fails_a_dead_runs_trials_and_later_ones_touch_nothing(tmp_path: Path) -> None:
    dead = _study(Checkpoint(tmp_path, run_id="old")).ask()
    dead.set_user_attr("run_id", "old")  # left RUNNING by a killed run
    first, second = Checkpoint(tmp_path, run_id="new"), Checkpoint(tmp_path, run_id="new")
    study = _study(first)

    assert fail_stale_trials(study, first) == 1
    fresh = study.ask()  # the first process's trial, before it is tagged with the run id

    assert fail_stale_trials(study, second) == 0  # a worker arriving late: it is not dead
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states == {dead.number: TrialState.FAIL, fresh.number: TrialState.RUNNING}


def test_a_waiting_process_prepares_once_the_lock_holder_has_prepared_not_once_it_is_done(tmp_path: Path) -> None:
    log: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with Checkpoint(tmp_path, run_id="run").setup_lock(prepare=lambda: log.append("first prepared")):
            holding.set()
            time.sleep(0.5)  # the one-time steps
            log.append("first done")

    def second() -> None:
        holding.wait(5)
        with Checkpoint(tmp_path, run_id="run").setup_lock(prepare=lambda: log.append("second prepared")):
            log.append("second holds")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert log == ["first prepared", "second prepared", "first done", "second holds"]


def test_a_waiting_process_prepares_when_it_gets_the_lock_if_the_holder_never_said_so(tmp_path: Path) -> None:
    from filelock import FileLock

    held = FileLock(str(tmp_path / "setup.lock"))  # e.g. an older version of us, or a crashed run's leftovers
    held.acquire()
    log: list[str] = []

    def waiter() -> None:
        with Checkpoint(tmp_path, run_id="run").setup_lock(prepare=lambda: log.append("prepared")):
            log.append("holds")

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(0.3)
    assert log == []  # neither a claim nor the lock yet
    held.release()
    thread.join(5)
    assert log == ["prepared", "holds"]
