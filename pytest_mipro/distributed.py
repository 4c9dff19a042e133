"""Everything the plugin knows about pytest-xdist, in one place.

Workers run targets and never write the lockfile: at session end each puts its new lock
entries and target records (JSON-able) on ``config.workeroutput``. The controller merges
them in ``pytest_testnodedown`` and writes the lockfile once. :class:`ControllerHooks` is
registered only on an xdist controller, so the plugin also loads under ``-p no:xdist``
(xdist itself is never imported here).

With ``--mipro-optimize -n N``, every marked test is followed by N - 1 :class:`StudyHelper`
items. xdist's load scheduling hands them to other workers, and each joins the target's
shared study, taking trials until the budget is spent: one big target keeps all workers busy.
The marked test itself locks the result once the study is done.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .session import MiproSession

PAYLOAD_KEY = "pytest_mipro"
DIST_KEY = "pytest_mipro_dist"  # the controller's --dist mode, for workers (xdist sets theirs to "no")
HELPS_KEY = pytest.StashKey[str]()  # on a StudyHelper: the node id of the marked test it helps
# Schedulers that spread consecutive items over workers; under loadscope, loadfile or
# loadgroup a test's helpers would queue on its own worker and only add overhead.
_SPREADING = ("load", "worksteal")


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    """True in the process that distributes tests to xdist workers."""
    if is_worker(config) or not config.pluginmanager.hasplugin("xdist"):
        return False
    dist = getattr(config.option, "dist", "no")
    return dist != "no" and bool(getattr(config.option, "numprocesses", None) or getattr(config.option, "tx", None))


def run_identity(config: pytest.Config) -> tuple[str | None, str]:
    """This run's id (shared by the workers of one xdist run; None: a fresh one) and this worker's id.

    Read from xdist's ``workerinput``, not the environment: a pytest that a worker's test starts
    inherits the worker's ``PYTEST_XDIST_*`` variables but is a run of its own, and sharing the
    run id would make it wait for the trials an interrupted run left behind.
    """
    if not is_worker(config):
        return None, ""
    workerinput = config.workerinput  # type: ignore[attr-defined]
    return str(workerinput.get("testrunuid") or "") or None, str(workerinput.get("workerid", ""))


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


def helpers_per_target(config: pytest.Config) -> int:
    """How many helper items each marked test gets: the other workers of this run."""
    if not is_worker(config) or config.workerinput.get(DIST_KEY) not in _SPREADING:  # type: ignore[attr-defined]
        return 0
    return max(0, int(config.workerinput.get("workercount", 1)) - 1)  # type: ignore[attr-defined]


class StudyHelper(pytest.Function):
    """A copy of a marked test that only works on its target's study.

    The work happens while the ``mipro`` fixture is set up; the test body is not run here
    (it asserts on the locked result, which the marked test itself produces).
    """

    def runtest(self) -> None:
        return None


def add_study_helpers(items: list[pytest.Item], marked: list[pytest.Function], count: int) -> None:
    """Insert ``count`` helpers right after each marked test (every worker collects the same)."""
    helpers = {id(item): [_helper(item, i, count) for i in range(1, count + 1)] for item in marked}
    items[:] = [new for item in items for new in [item, *helpers.get(id(item), [])]]


def _helper(item: pytest.Function, index: int, count: int) -> StudyHelper:
    """A helper named like a parametrization of ``item``: ``test_x[mipro-helper-1-of-3]``."""
    label = f"mipro-helper-{index}-of-{count}"
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        helper = StudyHelper.from_parent(item.parent, name=f"{item.name}[{label}]", callobj=item.obj)
    else:
        # pytest builds a parametrized item's node id from its callspec's ids: add the label there.
        ids = [*callspec._idlist, label]
        callspec = dataclasses.replace(callspec, _idlist=ids)
        name = f"{item.originalname}[{'-'.join(ids)}]"
        helper = StudyHelper.from_parent(
            item.parent,
            name=name,
            callspec=callspec,
            originalname=item.originalname,
            fixtureinfo=item._fixtureinfo,  # holds the direct parametrization's arguments
        )
    helper.stash[HELPS_KEY] = item.nodeid
    return helper


def helped_nodeid(item: pytest.Item) -> str | None:
    """The node id of the marked test a helper works for; None for any other item."""
    return item.stash.get(HELPS_KEY, None)


class ControllerHooks:
    """Controller-side hooks: collect each worker's payload as it goes down."""

    def __init__(self, get_session: Callable[[], MiproSession]) -> None:
        self.get_session = get_session

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[DIST_KEY] = getattr(node.config.option, "dist", "no")

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get(PAYLOAD_KEY)
        if payload:
            self.get_session().absorb(payload)


def register(config: pytest.Config, get_session: Callable[[], MiproSession]) -> None:
    """Register the controller hooks when this process is an xdist controller."""
    if is_controller(config):
        config.pluginmanager.register(ControllerHooks(get_session), "pytest_mipro_xdist_controller")
