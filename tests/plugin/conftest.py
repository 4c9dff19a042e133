"""Helpers for plugin tests: a small project with fake models, run with pytester.

The inner project's conftest registers two fake models (``fake/plugin-task`` labels foods,
``fake/plugin-prompter`` proposes instructions). Every request that really reaches the
task model is appended to a log file, so a test can prove how many LM calls a run made
(cache hits never reach the model). ``FAKE_WRONG`` (comma-separated words, or whole items
such as ``kale 3``) makes the task model answer those items wrongly whatever the prompt
says; ``FAKE_FLAKY`` does the same only for the sample drawn with seed 2 (a task model at
temperature > 0 gets the sample id as its seed). ``FAKE_FAIL`` (a fraction) makes that
share of task requests fail with a 500, the same requests on every retry; ``FAKE_DOWN``
(like ``FAKE_WRONG``) makes the requests about those items fail.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

INNER_CONFTEST = '''
import hashlib
import os
import pytest
from pytest_mipro import Example, register_fake_model

RULE = "RULE-42"
WORDS = {"apple": "fruit", "pear": "fruit", "plum": "fruit", "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable"}


def _fields(text):
    found = {}
    for line in text.splitlines():
        head, sep, rest = line.partition(":")
        if sep:
            found[head.strip().lower()] = rest.strip()
    return found


def _log(kind):
    with open(os.environ["FAKE_LM_LOG"], "a") as handle:
        handle.write(kind + "\\n")


def _outage(messages, item):
    """FAKE_FAIL (a fraction): that share of requests fail with a 500, the same ones on every
    retry; FAKE_DOWN (words or items, like FAKE_WRONG): requests about those fail."""
    share = float(os.environ.get("FAKE_FAIL") or 0)
    down = [w for w in os.environ.get("FAKE_DOWN", "").split(",") if w]
    digest = hashlib.sha256(repr(messages).encode()).digest()
    if (share and int.from_bytes(digest[:4], "big") / 2**32 < share) or (item and (item in down or item.split()[0] in down)):
        import litellm

        raise litellm.InternalServerError("fake outage: 500 Internal Server Error", model="plugin-task", llm_provider="fake")


def task(messages, params):
    _log("task")
    item = _fields(messages[-1]["content"]).get("item", "")
    _outage(messages, item)
    word = item.split()[0] if item else ""
    wrong = [w for w in os.environ.get("FAKE_WRONG", "").split(",") if w]
    if params.get("seed") == 2:
        wrong += [w for w in os.environ.get("FAKE_FLAKY", "").split(",") if w]
    demos = sum(m["role"] == "assistant" for m in messages)
    if word in wrong or item in wrong:
        return "Kind: mineral"
    if RULE in messages[0]["content"] or demos >= 3:
        return "Kind: " + WORDS.get(word, "unknown")
    return "Kind: unknown"


def prompter(messages, params):
    _log("prompt")
    wanted = messages[-1]["content"].rstrip().splitlines()[-1].rstrip(":").strip()
    if wanted.lower() == "proposed instruction":
        return f"{wanted}: Label the food as fruit or vegetable, following {RULE} (draw {params.get('seed')})."
    return f"{wanted}: some observations."


register_fake_model("plugin-task", task)
register_fake_model("plugin-prompter", prompter)


@pytest.fixture
def mipro_examples():
    return [Example(item=f"{w} {i}", kind=k) for i in range(2) for w, k in WORDS.items()]


@pytest.fixture
def mipro_metric():
    return lambda example, prediction, trace=None: prediction.kind.strip().lower() == example.kind
'''

INNER_INI = """
[pytest]
mipro_model = fake/plugin-task
mipro_prompt_model = fake/plugin-prompter
"""

# Small, fast optimizer settings: three candidates, three trials, full evaluation each trial.
FAST = "auto=None, num_candidates=3, num_trials=3, minibatch=False"

FOOD_TEST = f'''
import pytest
from pytest_mipro import Predict

food = Predict("item -> kind", instructions="Say what kind of food this is.")


@pytest.mark.mipro(food, name="food", {FAST})
def test_food(mipro):
    assert mipro.score >= 0.5
'''


class Project:
    """An inner pytest project with fake models; ``run`` runs pytest on it in-process."""

    def __init__(self, pytester: pytest.Pytester, log: Path) -> None:
        self.pytester = pytester
        self.log = log
        self.path = pytester.path

    def write_test(self, source: str = FOOD_TEST, name: str = "test_food") -> Path:
        return self.pytester.makepyfile(**{name: textwrap.dedent(source)})

    def run(self, *args: str) -> pytest.RunResult:
        # Hypothesis's plugin would re-import hypothesis in every in-process run (about a second).
        return self.pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)

    def lm_calls(self, kind: str = "task") -> int:
        """Requests that reached the fake model of ``kind`` ("task" or "prompt") so far."""
        if not self.log.exists():
            return 0
        return sum(line == kind for line in self.log.read_text().splitlines())

    @property
    def lockfile(self) -> Path:
        return self.path / "prompts.lock"

    def lock(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load(self.lockfile.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def _heavy_imports() -> None:
    """Import litellm, optuna and the whole package in this (outer) process first.

    In-process pytester runs drop the modules a run imported when it ends. Two of ours
    cannot take that: numpy (under optuna) refuses to load twice in a process, and litellm
    imports the ``importlib_metadata`` backport, which deletes the stdlib finder's
    ``find_distributions`` and relies on its own finder, which the restored
    ``sys.meta_path`` would lose: later runs would load no entry-point plugin at all.
    """
    import importlib
    import pkgutil

    import optuna  # noqa: F401

    import pytest_mipro
    from pytest_mipro.lm._litellm import get_litellm

    get_litellm()
    for module in pkgutil.walk_packages(pytest_mipro.__path__, "pytest_mipro."):
        importlib.import_module(module.name)


@pytest.fixture
def project(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    _heavy_imports: None,
) -> Iterator[Project]:
    """A project with the fake-model conftest and ini, and one food-labelling target.

    Every JSON report a test makes the project write is checked against the report's
    JSON Schema when the test ends.
    """
    log = tmp_path_factory.mktemp("lm-log") / "calls.log"
    monkeypatch.setenv("FAKE_LM_LOG", str(log))
    monkeypatch.delenv("FAKE_WRONG", raising=False)
    monkeypatch.delenv("FAKE_FLAKY", raising=False)
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    monkeypatch.delenv("FAKE_DOWN", raising=False)
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makeini(INNER_INI)
    created = Project(pytester, log)
    created.write_test()
    yield created
    for report in created.path.rglob("*.json"):
        validate_report(report)


def validate_report(path: Path) -> None:
    """Fail unless ``path`` (when it is a pytest-mipro report) matches the report's JSON Schema."""
    import json
    from importlib.resources import files

    import jsonschema

    data = json.loads(path.read_text(encoding="utf-8"))
    if not (isinstance(data, dict) and "targets" in data and "mode" in data):
        return  # not a report (a study's or a test's own file)
    schema = json.loads(files("pytest_mipro").joinpath("schema/report.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema)


@pytest.fixture
def optimized(project: Project) -> Project:
    """The project after a successful ``--mipro-optimize`` run."""
    result = project.run("--mipro-optimize")
    result.assert_outcomes(passed=1)
    assert project.lockfile.exists()
    return project


# ---------------------------------------------------------------- many targets

# ``count`` trivial targets sharing one program, examples and metric, so one optimized entry,
# copied under every name, is a fresh lock for them all (the fingerprint has no name in it).
# Their thresholds and programs make the kinds of result differ: with ``kale`` answered
# wrongly (7/9 right, bounds [0.504, 0.924]) a threshold of 0.5 passes, 0.8 is INCONCLUSIVE
# and 0.95 fails; a program with other instructions is stale; names past ``locked`` are missing.
MANY_TEST = f'''
import pytest
from pytest_mipro import Predict

food = Predict("item -> kind", instructions="Say what kind of food this is.")
edited = Predict("item -> kind", instructions="Say what kind of food this is, briefly.")


def _test():
    def test(mipro):
        pass

    return test


for _i in range({{count}}):
    _threshold = 0.95 if _i % 10 == 7 else 0.8 if _i % 10 == 3 else 0.5
    _program = edited if _i % 20 == 11 else food
    globals()[f"test_t{{{{_i:03d}}}}"] = pytest.mark.mipro(_program, name=f"t{{{{_i:03d}}}}", threshold=_threshold, {FAST})(_test())
'''


def many_targets(project: Project, count: int = 40, locked: int = 37) -> Project:
    """Rewrite ``project`` into ``count`` targets ``t000``... of which the first ``locked`` have entries."""
    from dataclasses import replace

    from pytest_mipro.lockfile import Lockfile

    project.run("--mipro-optimize", "-q").assert_outcomes(passed=1)
    lock = Lockfile.read(project.lockfile)
    entry = lock.require("food")
    replace(lock, entries={}).merged({f"t{i:03d}": replace(entry, name=f"t{i:03d}") for i in range(locked)}).write()
    (project.path / "test_food.py").unlink()
    project.write_test(MANY_TEST.format(count=count), name="test_many")
    return project
