"""The pytest plugin (entry point ``mipro``): options, the ``mipro`` marker and fixture, hooks.

Hooks translate between pytest and the library and hold no logic: settings live in
``settings.py``, the run state in ``session.py``, a marker's target in ``declaration.py``,
what happens to it in ``pipeline.py``, text in ``report.py`` and everything about xdist in
``distributed.py``. Importing this module is cheap (no litellm, no optuna), so ``pytest
--help`` stays fast, and it changes nothing in other libraries (the environment variable
litellm reads at import is set only where pytest-mipro itself imports litellm).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from . import distributed, hookspecs
from .errors import ConfigError
from .settings import OPTIONS, REPEATABLE, MiproSettings, Sources, resolve

if TYPE_CHECKING:
    from .declaration import Target
    from .lockfile import LockEntry
    from .outcome import TargetOutcome
    from .session import MiproSession, TargetRun

MARKER = "mipro"
MARKER_HELP = (
    "mipro(program, *, threshold=None, name=None, examples=None, valset=None, holdout=None, metric=None, **optimizer_options): "
    "optimize the program's prompts with MIPROv2 (--mipro-optimize), lock them in prompts.lock and gate on their score"
)
SETTINGS_KEY = pytest.StashKey[MiproSettings]()
SESSION_KEY = pytest.StashKey["MiproSession"]()
COLLECTION_KEY = pytest.StashKey["_Collection"]()
FAILURE_KEY = pytest.StashKey[str]()

# (help, metavar or None for a flag) per option; the ini twin's name is settings.OPTIONS[option].
_OPTION_HELP = {
    "optimize": ("optimize the selected mipro targets with MIPROv2 and update the lockfile", None),
    "check": ("only check that every target has a fresh lock entry; makes no LM call", None),
    "lockfile": ("the prompt lockfile (default: prompts.lock in the rootdir)", "PATH"),
    "model": ("task model as a litellm string, e.g. openai/gpt-4o-mini (default: configure(lm=...), else local/gemma-3-270m)", "MODEL"),
    "prompt-model": ("model that proposes instructions while optimizing (default: the task model)", "MODEL"),
    "auto": ("optimization budget preset: light, medium or heavy (default: light)", "PRESET"),
    "seed": ("optimizer seed (default: MIPROv2's, 9)", "INT"),
    "threads": ("parallel LM calls per evaluation (default: 1)", "N"),
    "tolerance": (
        "for lock entries without per-example results and no marker threshold: gate on the locked score minus this (default: 0.05)",
        "FRACTION",
    ),
    "strict": (
        "fail a target whose gate verdict is INCONCLUSIVE (the threshold lies inside the score's confidence bounds) instead of warning",
        None,
    ),
    "min-drop": ("the regression gate fails only on a significant drop larger than this (default: 0.02; 1 turns it off)", "FRACTION"),
    "repeats": (
        "samples per gate example (distinct sample ids, so the cache keeps them apart); reports pass rate and pass^k (default: 1)",
        "N",
    ),
    "budget": ("LM spending limit per optimized target: '500' calls, 'cost=2.5' dollars, or 'calls=500,cost=2.5'", "LIMITS"),
    "no-cache": ("do not read or write the LM response cache", None),
    "report": ("write a report: .json (machine-readable), .html (a self-contained page) or .md (a Markdown summary)", "PATH"),
    "storage": ("database URL of a shared Optuna study (e.g. PostgreSQL) that several runs or machines join", "URL"),
    "api-base": ("API base URL for the --mipro-model and --mipro-prompt-model models (vLLM, Ollama, LM Studio, a gateway)", "URL"),
    "lm-param": ("an extra litellm parameter for those models, e.g. api_version=2024-10-21; repeatable", "KEY=VALUE"),
    "rpm": ("at most N LM requests per minute for the whole run, all threads and xdist workers together", "N"),
}


class MiproWarning(pytest.PytestWarning):
    """Warnings from pytest-mipro (for example, unused lock entries or an INCONCLUSIVE gate)."""


@dataclass
class _Collection:
    """What collection saw: the lock names of marked tests and whether anything was deselected."""

    used: set[str] = field(default_factory=set)
    deselected: int = 0
    declared_by: dict[str, set[str]] = field(default_factory=dict)  # lock name -> node ids of the tests declaring it

    def clash(self, name: str) -> str | None:
        """Why ``name`` cannot be used: more than one test declares it (their entries would overwrite each other)."""
        nodeids = sorted(self.declared_by.get(name, ()))
        if len(nodeids) < 2:
            return None
        return (
            f"mipro target name clash: {len(nodeids)} tests declare name={name!r} ({', '.join(nodeids)}); "
            "each test needs its own name= (the lockfile keeps one entry per name)"
        )


def _dest(option: str) -> str:
    return "mipro_" + option.replace("-", "_")


# ---------------------------------------------------------------- options and configuration


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mipro", "prompt optimization and CI gating (pytest-mipro)")
    for option, (text, metavar) in _OPTION_HELP.items():
        ini = OPTIONS[option]
        if metavar is None:
            group.addoption(f"--mipro-{option}", action="store_true", default=None, dest=_dest(option), help=text)
            parser.addini(ini, f"{text} (the --mipro-{option} flag)", type="bool", default=False)
        elif option in REPEATABLE:
            group.addoption(f"--mipro-{option}", action="append", default=None, dest=_dest(option), metavar=metavar, help=text)
            parser.addini(ini, f"{text} (like --mipro-{option}, one a line)", type="linelist", default=[])
        else:
            group.addoption(f"--mipro-{option}", action="store", default=None, dest=_dest(option), metavar=metavar, help=text)
            parser.addini(ini, f"{text} (like --mipro-{option})", default="")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    try:
        config.stash[SETTINGS_KEY] = _settings(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[COLLECTION_KEY] = _Collection()
    distributed.register(config, lambda: _session(config))


def _settings(config: pytest.Config) -> MiproSettings:
    cli = {option: config.getoption(_dest(option)) for option in OPTIONS}
    ini = {name: config.getini(name) for name in OPTIONS.values()}
    sources = Sources(
        invocation_dir=config.invocation_params.dir,
        ini_dir=config.inipath.parent if config.inipath else config.rootpath,
        rootdir=config.rootpath,
    )
    return resolve(cli, ini, sources, verbosity=int(config.getoption("verbose")), environ=os.environ)


def _session(config: pytest.Config) -> MiproSession:
    """The run state, created on first use so runs without mipro targets never import the library."""
    if SESSION_KEY not in config.stash:
        from .session import Callbacks, MiproSession

        callbacks = Callbacks(
            progress=lambda line: _progress(config, line),
            trial_finished=lambda progress: config.hook.pytest_mipro_trial_finished(target_name=progress.target, trial=progress),
            lock_extra=lambda entry: _lock_extra(config, entry),
            target_finished=lambda outcome: _target_finished(config, outcome),
        )
        settings = config.stash[SETTINGS_KEY]
        peers = 1 + (distributed.helpers_per_target(config) if settings.optimize else 0)
        run_id, worker_id = distributed.run_identity(config)
        config.stash[SESSION_KEY] = MiproSession(settings, callbacks, peers=peers, run_id=run_id, worker_id=worker_id)
    return config.stash[SESSION_KEY]


def _lock_extra(config: pytest.Config, entry: LockEntry) -> dict[str, object]:
    """The fields ``pytest_mipro_lock_entry`` implementations return for ``extra``, merged."""
    extra: dict[str, object] = {}
    for fields in config.hook.pytest_mipro_lock_entry(target_name=entry.name, entry=entry):
        if fields is not None:
            extra.update(fields)
    return extra


def _target_finished(config: pytest.Config, outcome: TargetOutcome) -> None:
    # ``record`` is the deprecated flat dict; pluggy passes each implementation only the
    # arguments it names, so building it is skipped when no implementation asks for it.
    hook = config.hook.pytest_mipro_target_finished
    wants_record = any("record" in impl.argnames for impl in hook.get_hookimpls())
    record = outcome.legacy_record() if wants_record else None
    hook(target_name=outcome.target, outcome=outcome, record=record)


def _progress(config: pytest.Config, line: str) -> None:
    """Live progress on the terminal (not under -q, and not from xdist workers, whose output is hidden)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.stash[SETTINGS_KEY].verbosity < 0 or distributed.is_worker(config):
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


# ---------------------------------------------------------------- collection


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    helpers = distributed.helpers_per_target(config) if config.stash[SETTINGS_KEY].optimize else 0
    if helpers:
        marked = [i for i in items if isinstance(i, pytest.Function) and i.get_closest_marker(MARKER)]
        distributed.add_study_helpers(items, marked, helpers)
    collection = config.stash[COLLECTION_KEY]
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            continue
        nodeid = distributed.helped_nodeid(item) or item.nodeid  # a study helper shares the test's target
        name = marker.kwargs.get("name") or nodeid
        collection.used.add(name)
        collection.declared_by.setdefault(str(name), set()).add(nodeid)
        fixturenames = getattr(item, "fixturenames", None)
        if fixturenames is not None and "mipro" not in fixturenames:
            fixturenames.append("mipro")  # a marked test is gated even if it does not ask for the result


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[COLLECTION_KEY].deselected += len(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    collection = config.stash[COLLECTION_KEY]
    if not distributed.reports_collection(config) or not _whole_suite(config, collection):
        return
    lockfile = config.stash[SETTINGS_KEY].lockfile
    if not lockfile.exists():
        return
    unused = _session(config).unused_entries(collection.used)
    if unused:
        from .report import unused_message

        warnings.warn(MiproWarning(unused_message(unused, lockfile)), stacklevel=1)


def _whole_suite(config: pytest.Config, collection: _Collection) -> bool:
    """Unused entries are only meaningful when nothing was left out (no -k, -m, node ids, deselection)."""
    if collection.deselected or config.option.keyword or config.option.markexpr:
        return False
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    root = config.rootpath
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if "::" in arg or not (path == root or path in root.parents):
            return False
    return True


# ---------------------------------------------------------------- the fixture and the test


@pytest.fixture
def mipro(request: pytest.FixtureRequest) -> TargetRun | None:
    """The locked program of the test's ``@pytest.mark.mipro`` target and how it scored.

    Attributes: ``program`` (with the locked prompts), ``score``, ``results`` (per example),
    ``failures``, ``calls``, ``threshold``, ``entry`` (the lock entry), ``mode``, ``verdict``
    (PASS, FAIL or INCONCLUSIVE), ``bounds`` (one-sided 95% lower and upper bounds) and
    ``outcome`` (the full :class:`pytest_mipro.outcome.TargetOutcome`). An INCONCLUSIVE
    verdict is a :class:`MiproWarning` (a failure under ``--mipro-strict``).
    """
    from .errors import MiproError
    from .report import junit_properties
    from .session import target_run

    node = request.node
    helped = distributed.helped_nodeid(node)
    try:
        target = _target(request, default_name=helped or node.nodeid)
        clash = request.config.stash[COLLECTION_KEY].clash(target.name)
        if clash is not None:
            raise ConfigError(clash)
        if helped is not None:
            _session(request.config).assist(target)  # a StudyHelper: work on the study, lock nothing
            return None
        outcome = _session(request.config).run(target, nodeid=node.nodeid)
    except (MiproError, ValueError) as exc:
        problem = f"{node.nodeid}: {exc}"
    else:
        node.user_properties.extend(junit_properties(outcome))  # --junitxml: mipro_score, mipro_verdict, ...
        if not outcome.passed:
            node.stash[FAILURE_KEY] = outcome.message or outcome.outcome.value  # the test's failure, not a setup error
            return None
        if outcome.warning:
            warnings.warn(MiproWarning(outcome.warning), stacklevel=1)
        return target_run(target, outcome)
    pytest.fail(problem, pytrace=False)  # outside the except: no "during handling" noise


def _target(request: pytest.FixtureRequest, default_name: str) -> Target:
    from .declaration import target_from_declaration

    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        raise ConfigError("the `mipro` fixture needs a target: mark the test with @pytest.mark.mipro(program, ...)")

    def lookup(name: str) -> object:
        try:
            return request.getfixturevalue(name)
        except pytest.FixtureLookupError as exc:
            if exc.argname == name:
                raise KeyError(name) from None
            raise

    return target_from_declaration(marker.args, marker.kwargs, default_name=default_name, lookup=lookup)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    failure = item.stash.get(FAILURE_KEY, None)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


# ---------------------------------------------------------------- the end of the run


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if SESSION_KEY not in config.stash and config.stash[SETTINGS_KEY].report is None:
        return  # no target ran and no report was asked for
    from .errors import MiproError

    mipro_session = _session(config)
    if distributed.is_worker(config):
        distributed.publish(config, mipro_session)
        return
    try:
        mipro_session.finish(interrupted=session.exitstatus == pytest.ExitCode.INTERRUPTED)
    except (OSError, MiproError) as exc:
        mipro_session.notes.append(f"mipro: ERROR: {exc}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if SESSION_KEY not in config.stash or distributed.is_worker(config):
        return
    lines = config.stash[SESSION_KEY].summary()
    if lines and config.stash[SETTINGS_KEY].verbosity >= -1:
        terminalreporter.write_sep("-", "mipro")
        for line in lines:
            terminalreporter.write_line(line)
