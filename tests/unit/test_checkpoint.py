"""Run state shared between processes: which RUNNING trials a new run may declare dead."""

from __future__ import annotations

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
