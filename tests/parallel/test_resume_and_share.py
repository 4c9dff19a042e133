"""A killed optimization resumes without repeating trials; processes share one study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from .conftest import finish, start_worker

NUM_TRIALS = 9


def _minibatch_trials(storage: object) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="mipro", storage=storage)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return [t for t in done if t.user_attrs.get("kind") == "minibatch"]


def _journal(directory: Path) -> object:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(directory / "study.journal")))


def test_killed_run_resumes_without_repeating_trials(tmp_path: Path) -> None:
    cfg = {"dir": str(tmp_path / "ckpt"), "num_trials": NUM_TRIALS, "run_id": "first", "kill_after": 30}
    code, result, _ = finish(start_worker(cfg))
    assert code == 17 and result is None  # killed mid-run
    before = _minibatch_trials(_journal(tmp_path / "ckpt"))
    assert 0 < len(before) < NUM_TRIALS

    code, result, err = finish(start_worker({**cfg, "run_id": "second", "kill_after": None}))
    assert code == 0, err
    after = _minibatch_trials(_journal(tmp_path / "ckpt"))
    assert len(after) == NUM_TRIALS
    assert result["own_minibatch_trials"] == NUM_TRIALS - len(before)
    assert {t.number for t in before} <= {t.number for t in after}  # finished trials were kept, not redone
    assert result["logged_minibatch_trials"] == NUM_TRIALS


def test_finished_run_reruns_with_no_calls(tmp_path: Path) -> None:
    cfg = {"dir": str(tmp_path / "ckpt"), "num_trials": 4, "run_id": "a"}
    code, first, err = finish(start_worker(cfg))
    assert code == 0, err
    code, second, err = finish(start_worker({**cfg, "run_id": "b"}))
    assert code == 0, err
    assert second["task_calls"] == 0 and second["own_minibatch_trials"] == 0
    assert second["score"] == first["score"]


def test_two_processes_share_one_postgres_study(tmp_path: Path, postgres_url: str) -> None:
    common = {"storage": postgres_url, "num_trials": NUM_TRIALS, "latency": 0.02}
    workers = [
        start_worker({**common, "dir": str(tmp_path / f"machine{i}"), "run_id": f"run{i}", "worker": i}) for i in range(2)
    ]
    results = [finish(w, timeout=300) for w in workers]
    for code, result, err in results:
        assert code == 0, err
        assert result is not None
    own = [result["own_minibatch_trials"] for _, result, _ in results]  # type: ignore[index]
    assert sum(own) == NUM_TRIALS and all(n > 0 for n in own), own
    storage = optuna.storages.RDBStorage(postgres_url)
    assert len(_minibatch_trials(storage)) == NUM_TRIALS
    scores = {result["score"] for _, result, _ in results}  # type: ignore[index]
    assert len(scores) == 1  # both read the same study, so both return the same best program


@pytest.mark.parametrize("num_trials", [4])
def test_budget_of_trials_is_honoured_by_parallel_workers(tmp_path: Path, num_trials: int) -> None:
    cfg = {"dir": str(tmp_path / "ckpt"), "num_trials": num_trials, "run_id": "same-run", "latency": 0.01}
    workers = [start_worker({**cfg, "worker": i}) for i in range(3)]
    results = [finish(w) for w in workers]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    assert sum(r["own_minibatch_trials"] for _, r, _ in results) == num_trials  # type: ignore[index]
    assert len(_minibatch_trials(_journal(tmp_path / "ckpt"))) == num_trials
