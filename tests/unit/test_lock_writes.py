"""Lockfile writes from several processes at once: every entry survives, no temp file stays."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from pytest_mipro.lockfile import Lockfile

from .test_lockfile import entry

# One process of an `--mipro-optimize -k ...` run at its end: MiproSession.write_lockfile,
# once per round, each round with an entry of its own (a lost update shows as a missing name).
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[3])
    from test_lockfile import entry

    from pytest_mipro.outcome import Mode, Outcome, TargetOutcome
    from pytest_mipro.session import MiproSession
    from pytest_mipro.settings import MiproSettings

    path, prefix = Path(sys.argv[1]), sys.argv[2]
    for round in range(20):
        name = f"{prefix}{round}"
        session = MiproSession(MiproSettings(mode="optimize", lockfile=path))
        session.outcomes.append(TargetOutcome(name, name, Mode.OPTIMIZE, Outcome.PASSED, entry=entry(name)))
        session.write_lockfile()
    """
)


def test_two_processes_updating_different_targets_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "prompts.lock"
    Lockfile(path, {f"old{i}": entry(f"old{i}") for i in range(5)}).write()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(Path.cwd())) if p)}
    tests = str(Path(__file__).parent)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, tests], env=env, stderr=subprocess.PIPE, text=True)
        for prefix in ("a", "b")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err

    names = set(Lockfile.read(path).entries)
    assert {f"{p}{i}" for p in "ab" for i in range(20)} - names == set()
    assert len(names) == 45
    assert not list(tmp_path.glob(".prompts.lock.*.tmp"))


def test_a_temp_file_left_by_a_killed_write_is_removed_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "prompts.lock"
    stale = tmp_path / ".prompts.lock.k1ll3d.tmp"
    stale.write_text("version: 1\ntargets:\n  half", encoding="utf-8")
    other = tmp_path / ".other.lock.k1ll3d.tmp"  # another lockfile's: not ours to remove
    other.write_text("", encoding="utf-8")

    Lockfile.update(path, {"triage": entry()})

    assert not stale.exists() and other.exists()
    assert set(Lockfile.read(path).entries) == {"triage"}
