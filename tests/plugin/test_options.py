"""Options: resolution into MiproSettings, ini twins, usage errors, --help, loading without xdist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_mipro.plugin import SETTINGS_KEY
from pytest_mipro.settings import OPTIONS, Budget, MiproSettings

from .conftest import Project


def settings_of(pytester: pytest.Pytester, *args: str) -> MiproSettings:
    config = pytester.parseconfigure(*args)
    return config.stash[SETTINGS_KEY]


def test_defaults(pytester: pytest.Pytester) -> None:
    settings = settings_of(pytester)

    assert settings.mode == "gate"
    assert settings.lockfile == pytester.path / "prompts.lock"
    assert (settings.model, settings.prompt_model, settings.seed, settings.threads, settings.budget) == (None, None, None, None, None)
    assert settings.auto == "light" and settings.tolerance == 0.05 and settings.cache is True and settings.report is None
    assert (settings.strict, settings.min_drop, settings.repeats) == (False, 0.02, 1)


def test_command_line_values_are_resolved(pytester: pytest.Pytester) -> None:
    settings = settings_of(
        pytester,
        "--mipro-optimize",
        "--mipro-lockfile", "locks/app.lock",
        "--mipro-model", "openai/gpt-4o-mini",
        "--mipro-prompt-model", "anthropic/claude-3-5-haiku-latest",
        "--mipro-auto", "Medium",
        "--mipro-seed", "0",
        "--mipro-threads", "4",
        "--mipro-tolerance", "0.1",
        "--mipro-budget", "calls=500, cost=2.5",
        "--mipro-no-cache",
        "--mipro-report", "out/report.html",
        "--mipro-strict",
        "--mipro-min-drop", "0.1",
        "--mipro-repeats", "3",
    )  # fmt: skip

    assert settings.mode == "optimize"
    assert settings.lockfile == pytester.path / "locks" / "app.lock"
    assert settings.model == "openai/gpt-4o-mini" and settings.prompt_model == "anthropic/claude-3-5-haiku-latest"
    assert settings.auto == "medium" and settings.seed == 0 and settings.threads == 4 and settings.tolerance == 0.1
    assert settings.budget == Budget(max_calls=500, max_cost=2.5)
    assert settings.cache is False
    assert settings.report == pytester.path / "out" / "report.html"
    assert (settings.strict, settings.min_drop, settings.repeats) == (True, 0.1, 3)


def test_ini_twins_are_read_and_the_command_line_wins(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nmipro_model = ollama_chat/llama3.2\nmipro_auto = heavy\nmipro_check = true\n"
        "mipro_lockfile = conf/prompts.lock\nmipro_budget = 50\nmipro_no_cache = yes\n"
        "mipro_strict = true\nmipro_min_drop = 0.05\nmipro_repeats = 2\n"
    )
    (pytester.path / "sub").mkdir()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(pytester.path / "sub")
    try:
        settings = settings_of(pytester, "--mipro-auto", "light")
    finally:
        monkeypatch.undo()

    assert settings.mode == "check" and settings.model == "ollama_chat/llama3.2" and settings.auto == "light"
    assert settings.lockfile == pytester.path / "conf" / "prompts.lock"  # ini paths: relative to the ini file
    assert settings.budget == Budget(max_calls=50) and settings.cache is False
    assert (settings.strict, settings.min_drop, settings.repeats) == (True, 0.05, 2)


def test_every_option_has_an_ini_twin(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    for option, ini in OPTIONS.items():
        assert config.getini(ini) in ("", False, []), option


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mipro-auto", "huge"], "--mipro-auto 'huge': choose one of light, medium, heavy"),
        (["--mipro-tolerance", "2"], "--mipro-tolerance '2': must be between 0 and 1*"),
        (["--mipro-tolerance", "lots"], "--mipro-tolerance 'lots': expected a number"),
        (["--mipro-min-drop", "2"], "--mipro-min-drop '2': must be between 0 and 1 (scores are fractions)"),
        (["--mipro-min-drop", "-0.1"], "--mipro-min-drop '-0.1': must be between 0 and 1*"),
        (["--mipro-min-drop", "some"], "--mipro-min-drop 'some': expected a number"),
        (["--mipro-repeats", "0"], "--mipro-repeats '0': must be at least 1"),
        (["--mipro-repeats", "2.5"], "--mipro-repeats '2.5': expected a whole number"),
        (["--mipro-budget", "calls=many"], "--mipro-budget 'many': expected a whole number"),
        (["--mipro-budget", "dollars=3"], "--mipro-budget 'dollars=3': expected '500', 'calls=500', 'cost=2.5' or*"),
        (["--mipro-budget", "cost=-1"], "--mipro-budget 'cost=-1': cost must be a positive number of dollars"),
        (["--mipro-seed", "-1"], "--mipro-seed '-1': must be at least 0"),
        (["--mipro-threads", "0"], "--mipro-threads '0': must be at least 1"),
        (["--mipro-model", "gpt-4o"], "--mipro-model 'gpt-4o': expected a litellm model string 'provider/name'*"),
        (["--mipro-report", "out.txt"], "--mipro-report 'out.txt': the file must end in .json*, .html*or .md*"),
        (["--mipro-optimize", "--mipro-check"], "--mipro-optimize and --mipro-check cannot be combined*"),
    ],
)
def test_wrong_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_wrong_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmipro_auto = extreme\n")

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --mipro-auto 'extreme': choose one of light, medium, heavy"])


def test_help_shows_one_group_and_imports_neither_litellm_nor_optuna(tmp_path: Path) -> None:
    code = (
        "import sys, pytest\n"
        "pytest.main(['--help', '-p', 'no:hypothesispytest'])\n"
        "print('HEAVY', sorted(m for m in ('litellm', 'optuna') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    assert "HEAVY []" in out
    group = out.split("prompt optimization and CI gating (pytest-mipro):")[1].split("\n\n")[0]
    for option in OPTIONS:
        assert f"--mipro-{option}" in group
    assert "mipro_model" in out  # ini twins are listed among the ini options


def test_plugin_loads_without_xdist(optimized: Project) -> None:
    result = optimized.run("-p", "no:xdist")

    result.assert_outcomes(passed=1)
