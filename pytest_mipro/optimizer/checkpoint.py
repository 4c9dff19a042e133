"""Run state that outlives one process: candidate prompts and the Optuna study.

Several processes optimizing the same target (pytest-xdist workers, or CI jobs sharing a
PostgreSQL study) and a rerun after a crash all find here what was already done: the
first process to arrive bootstraps demos and proposes instructions under a file lock and
saves them; the others load them. The study holds every finished trial, so a rerun
continues where the last one stopped instead of starting over.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..lm.client import Usage
from .study import SearchStudy, open_storage

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

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

    def storage(self) -> BaseStorage:
        """The Optuna storage: the given database URL, else a journal file in the folder."""
        return open_storage(self.directory / "study.journal", self.storage_url)


def _alive(mark: Path) -> bool:
    """Whether the process that made a ``busy-<pid>-...`` mark is still running."""
    try:
        os.kill(int(mark.name.split("-")[1]), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def fail_stale_trials(study: SearchStudy, checkpoint: Checkpoint) -> int:
    """Mark trials left RUNNING by an interrupted run as failed; returns how many.

    Without this a killed worker's unfinished trials would count against the trial budget
    forever. Only the first process of a run looks: when a later one arrives, the run's own
    trials are under way, and one just asked for carries no run id yet; it would look dead.
    """
    if not checkpoint.claim("stale-trials-checked"):
        return 0
    return study.fail_stale(checkpoint.run_id, bool(checkpoint.storage_url), checkpoint.stale_after)


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
