"""Hooks the plugin calls, for conftest.py files and other plugins to implement.

Added with ``pytest_addhooks``. Implement them in a ``conftest.py`` or a plugin, taking
any subset of the documented arguments::

    def pytest_mipro_trial_finished(target_name, trial):
        print(target_name, trial.trial.kind, trial.trial.score)

    def pytest_mipro_lock_entry(target_name, entry):
        entry.extra["optimized_by"] = os.environ.get("USER", "ci")

Under pytest-xdist, the first two run in the worker that optimizes the target (so extra
lock fields travel with the entry to the controller); ``pytest_mipro_target_finished``
runs in the process that ran the target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .lockfile import LockEntry
    from .targets import TrialProgress


@pytest.hookspec
def pytest_mipro_trial_finished(target_name: str, trial: TrialProgress) -> None:
    """Called after every evaluation of an optimization search (``--mipro-optimize``).

    :param target_name: the lock key of the target being optimized.
    :param trial: a :class:`pytest_mipro.targets.TrialProgress`: ``trial.trial`` is the
        optimizer's ``TrialLog`` (``number``, ``kind`` = baseline / minibatch / full, with
        ``-pruned`` when racing stopped it, ``params``, ``score``, ``num_examples``, ``best_full_score``,
        ``lm_calls``, ``elapsed``); ``number`` / ``total`` count search trials;
        ``usage`` holds the target's ``calls``, ``cache_hits``, ``prompt_tokens``,
        ``completion_tokens`` and ``cost`` so far; ``elapsed`` is in seconds.

    Return value is ignored. Use it for custom progress output or experiment tracking.
    """


@pytest.hookspec
def pytest_mipro_lock_entry(target_name: str, entry: LockEntry) -> None:
    """Called once per newly optimized target, before the entry is kept for writing.

    :param target_name: the lock key.
    :param entry: the :class:`pytest_mipro.lockfile.LockEntry` about to be locked. It is
        frozen, but ``entry.extra`` is a dict that implementations may fill with extra
        fields (plain YAML data: strings, numbers, lists, mappings); they are written under
        ``extra:`` in the target's lock entry and read back by ``Lockfile.read``.

    Return value is ignored.
    """


@pytest.hookspec
def pytest_mipro_target_finished(target_name: str, record: dict[str, Any]) -> None:
    """Called after every target has been gated, checked or optimized, pass or fail.

    :param target_name: the lock key.
    :param record: the JSON-able record also written to ``--mipro-report`` files:
        ``target``, ``nodeid``, ``mode`` (gate / check / optimize), ``outcome`` (passed /
        failed / missing / stale / error), ``message``, ``score``, ``threshold``, ``n``,
        ``calls``, ``cache_hits``, ``tokens``, ``cost``, ``seconds``, per-example
        ``examples`` and, when optimized, ``baseline_score`` and ``trials``.

    Return value is ignored. Use it to send results to a dashboard.
    """
