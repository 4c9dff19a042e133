"""Hooks the plugin calls, for conftest.py files and other plugins to implement.

Added with ``pytest_addhooks``. Implement them in a ``conftest.py`` or a plugin, taking
any subset of the documented arguments::

    def pytest_mipro_trial_finished(target_name, trial):
        print(target_name, trial.trial.kind, trial.trial.score)

    def pytest_mipro_lock_entry(target_name, entry):
        return {"optimized_by": os.environ.get("USER", "ci")}

    def pytest_mipro_target_finished(target_name, outcome):
        dashboard.send(outcome.to_dict())

Under pytest-xdist, the first two run in the worker that optimizes the target (so extra
lock fields travel with the entry to the controller); ``pytest_mipro_target_finished``
runs in the process that ran the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .lockfile import LockEntry
    from .outcome import TargetOutcome
    from .pipeline import TrialProgress


@pytest.hookspec
def pytest_mipro_trial_finished(target_name: str, trial: TrialProgress) -> None:
    """Called after every evaluation of an optimization search (``--mipro-optimize``).

    :param target_name: the lock key of the target being optimized.
    :param trial: a :class:`pytest_mipro.pipeline.TrialProgress`: ``trial.trial`` is the
        optimizer's ``TrialLog`` (``number``, ``kind``: a ``TrialKind`` (baseline, minibatch
        or full), ``pruned``: whether racing stopped it early, ``params``, ``score``,
        ``num_examples``, ``best_full_score``, ``lm_calls``, ``elapsed``); ``number`` /
        ``total`` count search trials; ``usage`` is the target's :class:`pytest_mipro.Usage`
        so far (``calls``, ``cache_hits``, ``prompt_tokens``, ``completion_tokens``,
        ``cost``, ``errors``); ``elapsed`` is in seconds.

    Return value is ignored. Use it for custom progress output or experiment tracking.
    """


@pytest.hookspec
def pytest_mipro_lock_entry(target_name: str, entry: LockEntry) -> Mapping[str, object] | None:
    """Called once per newly optimized target, before its entry is kept for writing.

    :param target_name: the lock key.
    :param entry: the :class:`pytest_mipro.lockfile.LockEntry` about to be locked (frozen).

    Return a mapping of fields to add under ``extra:`` in the target's lock entry (plain
    YAML data: strings, numbers, lists, mappings), or None. The mappings of every
    implementation are merged. (Filling ``entry.extra`` in place still works for this
    release, with a ``DeprecationWarning``.)
    """


@pytest.hookspec(
    warn_on_impl_args={
        "record": DeprecationWarning(
            "pytest_mipro_target_finished: the record argument is deprecated and will be removed in the next release; "
            "use outcome (outcome.to_dict() for the same data as JSON)"
        )
    }
)
def pytest_mipro_target_finished(target_name: str, outcome: TargetOutcome, record: dict[str, object] | None) -> None:
    """Called after every target has been gated, checked or optimized, pass or fail.

    :param target_name: the lock key.
    :param outcome: the :class:`pytest_mipro.outcome.TargetOutcome`: ``mode``, ``outcome``
        (an ``Outcome``: passed, failed, missing, stale or error), ``message``, ``score``,
        ``threshold``, ``verdict``, ``bounds``, ``evaluation`` (per-example results),
        ``judgement``, ``entry``, ``selection``, ``trials`` and ``counts``.
        ``outcome.to_dict()`` is the JSON report's per-target object.
    :param record: **deprecated** (to be removed in the next release; use ``outcome``): the
        flat dict earlier releases passed: ``target``, ``nodeid``, ``mode``, ``outcome``,
        ``message``, ``score``, ``threshold``, ``n``, ``calls``, ``cache_hits``, ``tokens``,
        ``cost``, ``seconds``, per-example ``examples``, ``baseline_score``, ``verdict``,
        ``lower``, ``upper`` and, when optimized, ``trials``. Built only when an
        implementation asks for it.

    Return value is ignored. Use it to send results to a dashboard.
    """
