"""Run state that outlives one process: candidate prompts and the Optuna study.

Several processes optimizing the same target (pytest-xdist workers, or CI jobs sharing a
PostgreSQL study) and a rerun after a crash all find here what was already done: the
first process to arrive bootstraps demos and proposes instructions under a file lock and
saves them; the others load them. The study holds every finished trial, so a rerun
continues where the last one stopped instead of starting over.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..example import Example
from ..lm.client import Usage

# How long the locking process waits for a helper still working on a sealed study before it
# counts what was recorded so far (a helper finishes the trial in hand, then stops).
HELPER_WAIT_SECONDS = 600.0


@dataclass
class Checkpoint:
    """A folder (and optionally a database URL) holding one target's optimization state."""

    directory: Path
    storage_url: str | None = None
    study_name: str = "mipro"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    worker: int = 0  # which of the processes sharing this checkpoint; varies the sampler's seed
    # Processes of this run that share the study (an xdist run's locking worker and its
    # helpers). While one does the one-time steps the others wait, so it may use their share
    # of concurrent LM calls.
    peers: int = 1
    stale_after: float = 3600.0  # seconds after which a RUNNING trial in a database study is taken as dead

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def setup_lock(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Held while the one-time steps run, so only one process does them.

        ``on_wait`` is called once before waiting, when another process holds the lock.
        """
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.directory / "setup.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release(force=True)

    def claim(self, key: str) -> bool:
        """True for the first process of this run to claim ``key``, False for every later one."""
        folder = self.directory / "claims" / self.run_id
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(folder / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def forget_old_claims(self) -> None:
        """Remove other runs' claims (called under the setup lock of a local study)."""
        claims = self.directory / "claims"
        if claims.is_dir():
            for folder in claims.iterdir():
                if folder.name != self.run_id:
                    shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------ what each process spent
    #
    # Every process working on this run's study (the one that locks the target and its xdist
    # helpers) records what it spent in the run's claims folder. Before it builds the lock
    # entry, the locking process seals the study, waits for helpers still at work, and adds
    # up the records; so the entry is built once, with the whole run's spending.

    def _ledger(self) -> Path:
        folder = self.directory / "claims" / self.run_id / "spending"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def record_spending(self, usage: Usage) -> None:
        """Add ``usage`` to what this run spent on the study."""
        write_atomic(self._ledger() / f"{uuid.uuid4().hex}.json", json.dumps(usage.to_dict()))

    def total_spending(self) -> Usage:
        """Everything this run's processes recorded with :meth:`record_spending`."""
        total = Usage()
        for path in sorted(self._ledger().glob("*.json")):
            total = total + Usage.from_dict(json.loads(path.read_text(encoding="utf-8")))
        return total

    @contextlib.contextmanager
    def helping(self) -> Iterator[bool]:
        """Marks this process as working on the study; yields False once the study is sealed.

        The mark is made before the seal is looked at, so a locking process that seals in
        between sees the mark and waits for it.
        """
        ledger = self._ledger()
        mark = ledger / f"busy-{os.getpid()}-{uuid.uuid4().hex}"
        mark.touch()
        try:
            yield not (ledger / "sealed").exists()
        finally:
            with contextlib.suppress(OSError):
                mark.unlink()

    def seal_and_wait_for_helpers(self, timeout: float = HELPER_WAIT_SECONDS, poll: float = 0.05) -> None:
        """Stop new helpers, then wait until those at work have recorded their spending.

        A mark left by a process that died is ignored; after ``timeout`` seconds what was
        recorded so far is all that counts.
        """
        ledger = self._ledger()
        (ledger / "sealed").touch()
        deadline = time.monotonic() + timeout
        while any(_alive(mark) for mark in ledger.glob("busy-*")) and time.monotonic() < deadline:
            time.sleep(poll)

    def storage(self) -> Any:
        """The Optuna storage: the given database URL, else a journal file in the folder."""
        if self.storage_url:
            return _open_database(self.storage_url)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(self.directory / "study.journal")))


def _alive(mark: Path) -> bool:
    """Whether the process that made a ``busy-<pid>-...`` mark is still running."""
    try:
        os.kill(int(mark.name.split("-")[1]), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _open_database(url: str, attempts: int = 5) -> Any:
    """RDB storage; retried because processes starting together race to create the schema."""
    from optuna.storages import RDBStorage

    for attempt in range(attempts):
        try:
            return RDBStorage(url)
        except Exception as exc:  # sqlalchemy and the drivers raise many kinds
            if attempt == attempts - 1:
                raise ConfigError(f"--mipro-storage {url!r}: cannot open the study storage: {exc}") from exc
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def load_candidates(study: Any) -> tuple[dict[str, list[str]], dict[str, list[list[Example]]]] | None:
    """The candidate instructions and demo sets published in the study, if any (the first wins)."""
    from optuna.trial import TrialState

    published = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if "candidates" in t.user_attrs
    ]
    if not published:
        return None
    data = json.loads(min(published, key=lambda t: t.number).user_attrs["candidates"])
    demo_sets = {name: [[Example(d) for d in demos] for demos in sets] for name, sets in data["demo_sets"].items()}
    return data["instructions"], demo_sets


def publish_candidates(
    study: Any, instructions: dict[str, list[str]], demo_sets: dict[str, list[list[Example]]]
) -> tuple[dict[str, list[str]], dict[str, list[list[Example]]]]:
    """Store candidates in the study, where every process and machine sharing it finds them.

    They ride on a FAILED placeholder trial, which samplers ignore; trial numbers are
    assigned by the storage, so when two machines publish at once both then read back
    the same, lowest-numbered set. Returns the set to use.
    """
    import optuna

    data = {
        "instructions": instructions,
        "demo_sets": {name: [[dict(d) for d in demos] for demos in sets] for name, sets in demo_sets.items()},
    }
    text = json.dumps(data, ensure_ascii=False, default=str)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"candidates": text}))
    loaded = load_candidates(study)
    assert loaded is not None
    return loaded


def fail_stale_trials(study: Any, checkpoint: Checkpoint) -> int:
    """Mark trials left RUNNING by an interrupted run as failed; returns how many.

    Without this a killed worker's unfinished trials would count against the trial budget
    forever. In a local journal, every process of a run shares the run id, so any other
    run's RUNNING trial is dead. A database study is shared by runs on other machines that
    may still be working, so there only trials running for longer than ``stale_after``
    seconds count as dead.

    Only the first process of a run looks: when a later one arrives, the run's own trials
    are under way, and one just asked for carries no run id yet; it would look dead.
    """
    from optuna.trial import TrialState

    if not checkpoint.claim("stale-trials-checked"):
        return 0
    now = datetime.datetime.now()
    stale = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if checkpoint.storage_url:
            started = trial.datetime_start or now
            if (now - started).total_seconds() > checkpoint.stale_after:
                stale.append(trial)
        elif trial.user_attrs.get("run_id") != checkpoint.run_id:
            stale.append(trial)
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
    return len(stale)


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
