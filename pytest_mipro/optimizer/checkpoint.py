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
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..example import Example

CANDIDATES_FILE = "candidates.json"


@dataclass
class Checkpoint:
    """A folder (and optionally a database URL) holding one target's optimization state."""

    directory: Path
    storage_url: str | None = None
    study_name: str = "mipro"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    worker: int = 0  # which of the processes sharing this checkpoint; varies the sampler's seed

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def setup_lock(self) -> Iterator[None]:
        """Held while the one-time steps run, so only one process does them."""
        from filelock import FileLock

        with FileLock(str(self.directory / "setup.lock")):
            yield

    def storage(self) -> Any:
        """The Optuna storage: the given database URL, else a journal file in the folder."""
        if self.storage_url:
            from optuna.storages import RDBStorage

            try:
                return RDBStorage(self.storage_url, heartbeat_interval=60, grace_period=180)
            except Exception as exc:  # noqa: BLE001 - sqlalchemy raises many kinds
                raise ConfigError(f"--mipro-storage {self.storage_url!r}: cannot open the study storage: {exc}") from exc
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(self.directory / "study.journal")))

    def load_candidates(self) -> tuple[dict[str, list[str]], dict[str, list[list[Example]]]] | None:
        path = self.directory / CANDIDATES_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        demo_sets = {name: [[Example(d) for d in demos] for demos in sets] for name, sets in data["demo_sets"].items()}
        return data["instructions"], demo_sets

    def save_candidates(self, instructions: dict[str, list[str]], demo_sets: dict[str, list[list[Example]]]) -> None:
        data = {
            "instructions": instructions,
            "demo_sets": {name: [[dict(d) for d in demos] for demos in sets] for name, sets in demo_sets.items()},
        }
        write_atomic(self.directory / CANDIDATES_FILE, json.dumps(data, indent=1, ensure_ascii=False, default=str))


def fail_stale_trials(study: Any, run_id: str) -> int:
    """Mark trials left RUNNING by an earlier, interrupted run as failed; returns how many.

    Without this a killed worker's unfinished trials would count against the trial budget
    of the next run forever.
    """
    from optuna.trial import TrialState

    stale = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.user_attrs.get("run_id") != run_id
    ]
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
