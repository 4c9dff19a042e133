"""Everything the plugin knows about pytest-xdist, in one place.

Workers run targets and never write the lockfile: at session end each puts its new lock
entries and target records (JSON-able) on ``config.workeroutput``. The controller merges
them in ``pytest_testnodedown`` and writes the lockfile once. :class:`ControllerHooks` is
registered only on an xdist controller, so the plugin also loads under ``-p no:xdist``
(xdist itself is never imported here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .session import MiproSession

PAYLOAD_KEY = "pytest_mipro"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    """True in the process that distributes tests to xdist workers."""
    if is_worker(config) or not config.pluginmanager.hasplugin("xdist"):
        return False
    dist = getattr(config.option, "dist", "no")
    return dist != "no" and bool(getattr(config.option, "numprocesses", None) or getattr(config.option, "tx", None))


def reports_collection(config: pytest.Config) -> bool:
    """Whether this process reports collection-wide findings (unused lock entries).

    A plain run's only process does; under xdist the controller collects nothing and every
    worker collects the same items, so only the first worker (gw0) reports.
    """
    if is_worker(config):
        return bool(config.workerinput.get("workerid") == "gw0")  # type: ignore[attr-defined]
    return not is_controller(config)


def publish(config: pytest.Config, session: MiproSession) -> None:
    """On a worker, hand this process's results to the controller."""
    if is_worker(config):
        config.workeroutput[PAYLOAD_KEY] = session.payload()  # type: ignore[attr-defined]


class ControllerHooks:
    """Controller-side hooks: collect each worker's payload as it goes down."""

    def __init__(self, get_session: Callable[[], MiproSession]) -> None:
        self.get_session = get_session

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get(PAYLOAD_KEY)
        if payload:
            self.get_session().absorb(payload)


def register(config: pytest.Config, get_session: Callable[[], MiproSession]) -> None:
    """Register the controller hooks when this process is an xdist controller."""
    if is_controller(config):
        config.pluginmanager.register(ControllerHooks(get_session), "pytest_mipro_xdist_controller")
