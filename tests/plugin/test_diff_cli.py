"""``pytest-mipro diff OLD NEW`` on real lockfiles.

Two ``--mipro-optimize`` runs of the fake-model project with different seeds give two
lockfiles of one target with different instructions; in the second run the task model gets
``kale`` wrong, so two examples flip. The committed example project's lock is compared with
one written by the first released layout (``tests/data/prompts-ffbd370.lock``, from commit
ffbd370: no ``bounds``, no ``holdout``, more gate examples).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from pytest_mipro.lockfile import Lockfile
from pytest_mipro.stats import mcnemar_exact_p

from .conftest import Project

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_LOCK = ROOT / "example_project" / "prompts.lock"
OLD_LAYOUT_LOCK = ROOT / "tests" / "data" / "prompts-ffbd370.lock"


def diff(pytester: pytest.Pytester, *args: str | Path) -> pytest.RunResult:
    """Run ``python -m pytest_mipro diff ...`` in a subprocess, as CI would."""
    return pytester.run(sys.executable, "-m", "pytest_mipro", "diff", *map(str, args))


@pytest.fixture
def two_locks(project: Project, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(old, new): seed 1, then seed 2 with a task model that now labels kale wrongly."""
    project.run("--mipro-optimize", "--mipro-seed", "1", "-q").assert_outcomes(passed=1)
    old = project.path / "old.lock"
    shutil.copy(project.lockfile, old)
    monkeypatch.setenv("FAKE_WRONG", "kale")
    project.run("--mipro-optimize", "--mipro-seed", "2", "--mipro-no-cache", "-q").assert_outcomes(passed=1)
    return old, project.lockfile


def _kale_ids(lock: Path) -> set[str]:
    results = Lockfile.read(lock).require("food").results
    return {uid for uid, score in zip(results.ids, results.scores, strict=True) if score == 0.0}


def test_markdown_shows_instructions_scores_flips_and_settings(pytester: pytest.Pytester, two_locks: tuple[Path, Path]) -> None:
    old, new = two_locks
    flipped = _kale_ids(new)
    assert len(flipped) == 2 and not _kale_ids(old)

    result = diff(pytester, old, new)

    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    for line in (
        "<!-- pytest-mipro diff -->",
        ": 1 changed, 0 added, 0 removed, 0 unchanged.",
        "| food | changed, prompts changed | 1.000 [0.769, 1.000] on 9 | 0.778 [0.504, 0.924] on 9 | 2 worse, 0 better of 9, p = 0.250 |",
        "### `food`: changed",
        (
            "**Paired on 9 shared examples** (exact McNemar): 1.000 → 0.778; 2 got worse, 0 got better; "
            "one-sided p = 0.250 for a drop, 1.000 for a gain."
        ),
        "<details><summary>Examples that flipped (2)</summary>",
        "#### Predictor `self`: changed",
        "```diff\n-Label the food as fruit or vegetable, following RULE-42 (draw ",
        "\n+Label the food as fruit or vegetable, following RULE-42 (draw ",
        "Changed words: … fruit or vegetable, following RULE-42 (draw ~~",
        "| `optimizer.seed` | `1` | `2` |",
        "Optimizing the new entry took ",
    ):
        assert line in out, line
    for uid in flipped:
        assert f"| `{uid}` | 1.000 | 0.000 |" in out
    assert mcnemar_exact_p(2, 0) == 0.25
    assert "Fingerprint parts that changed" not in out  # same code, examples, metric and model
    assert "Significantly" not in out  # 2 of 9 is not enough evidence


def test_json_has_every_flip_and_both_p_values(pytester: pytest.Pytester, two_locks: tuple[Path, Path]) -> None:
    old, new = two_locks

    result = diff(pytester, "--format", "json", old, new)

    assert result.ret == 0, result.stderr.str()
    data = json.loads(result.stdout.str())
    assert data["format"] == 1 and data["summary"] == {"changed": ["food"], "added": [], "removed": [], "unchanged": []}
    (food,) = data["targets"]
    assert food["status"] == "changed" and food["prompts_changed"] is True
    assert food["before"]["score"] == 1.0 and food["after"]["score"] == pytest.approx(7 / 9, abs=1e-6)
    paired = food["paired"]
    assert paired["method"] == "mcnemar" and paired["n"] == 9
    assert paired["p_worse"] == 0.25 and paired["p_better"] == 1.0 and paired["significant"] is None
    assert {flip["id"] for flip in paired["worse"]} == _kale_ids(new) and paired["better"] == []
    assert food["optimizer"] == [{"key": "optimizer.seed", "before": 1, "after": 2}]
    assert food["models"] == [] and food["fingerprint"] == []
    (predictor,) = food["predictors"]
    assert predictor["name"] == "self" and predictor["status"] == "changed"
    # Word by word: the same sentence, only the draw number at its end differs.
    assert [op for op, _ in predictor["instruction_words"]] == ["=", "-", "+"]
    assert predictor["instruction_words"][0][1] == "Label the food as fruit or vegetable, following RULE-42 (draw "
    assert food["holdout"] == {"before": {}, "after": {}}  # 9 examples: too few to hold any out


def test_older_lockfile_against_the_committed_example_lock(pytester: pytest.Pytester) -> None:
    result = diff(pytester, OLD_LAYOUT_LOCK, EXAMPLE_LOCK)

    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    # The old layout has no bounds: they are computed from its per-example results, and marked.
    old = Lockfile.read(OLD_LAYOUT_LOCK).require("triage")
    assert old.bounds is None
    assert "| triage | changed | 0.474 [0.347, 0.604]\\* on 38 | 0.429 [0.288, 0.582] on 28 |" in out
    assert "bounds computed from the per-example results" in out
    # Its gate set was larger (no holdout then); only the shared ids are paired.
    assert "Not compared: 10 examples only in the old lock, 0 only in the new." in out
    assert "Holdout check (12 examples, split): kept the previously locked prompt" in out


def test_same_lockfile_twice_is_all_unchanged(pytester: pytest.Pytester) -> None:
    result = diff(pytester, EXAMPLE_LOCK, EXAMPLE_LOCK)

    assert result.ret == 0
    assert ": 0 changed, 0 added, 0 removed, 2 unchanged." in result.stdout.str()
    assert "Unchanged: `escalation`, `triage`." in result.stdout.str()
    assert "###" not in result.stdout.str()


def test_empty_old_lockfile_means_every_target_is_added(pytester: pytest.Pytester) -> None:
    empty = pytester.path / "base.lock"
    empty.write_text("")  # what `git show base:prompts.lock > base.lock || true` leaves without one

    result = diff(pytester, empty, EXAMPLE_LOCK)

    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    assert ": 0 changed, 2 added, 0 removed, 0 unchanged." in out
    assert "#### Predictor `rate_priority`: added" in out and "Demos (4):" in out


def test_old_lockfile_from_standard_input_and_output_file(pytester: pytest.Pytester) -> None:
    out = pytester.path / "diff.md"

    result = pytester.run(
        sys.executable, "-m", "pytest_mipro", "diff", "-", str(EXAMPLE_LOCK), "-o", str(out), stdin=OLD_LAYOUT_LOCK.read_bytes()
    )

    assert result.ret == 0, result.stderr.str()
    assert result.stdout.str() == ""
    assert "`<stdin>` → " in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("version: 1\ntargets:\n  t: [1, 2\n", "bad.lock:4: malformed lockfile"),
        ("version: 7\ntargets: {}\n", "bad.lock:1: unsupported lockfile version 7"),
        ("version: 1\ntargets:\n  t: {score: 1}\n", "bad.lock:3: target 't' has no program, fingerprint"),
    ],
)
def test_invalid_lockfile_is_an_error_naming_file_and_line(pytester: pytest.Pytester, content: str, message: str) -> None:
    bad = pytester.path / "bad.lock"
    bad.write_text(content)

    result = diff(pytester, EXAMPLE_LOCK, bad)

    assert result.ret == 2
    assert result.stdout.str() == ""
    assert "pytest-mipro diff: error: " in result.stderr.str() and message in result.stderr.str()


def test_unreadable_lockfiles_are_one_line_errors(pytester: pytest.Pytester) -> None:
    (pytester.path / "latin1.lock").write_bytes(b"version: 1\ntargets: {caf\xe9: 1}\n")
    (pytester.path / "folder.lock").mkdir()

    for name, message in [("latin1.lock", "latin1.lock:2: not UTF-8 text"), ("folder.lock", "folder.lock is a directory")]:
        result = diff(pytester, EXAMPLE_LOCK, pytester.path / name)
        assert result.ret == 2
        assert message in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_missing_lockfile_is_an_error(pytester: pytest.Pytester) -> None:
    result = diff(pytester, pytester.path / "nope.lock", EXAMPLE_LOCK)

    assert result.ret == 2
    assert "nope.lock does not exist" in result.stderr.str()


def test_usage_errors_exit_2(pytester: pytest.Pytester) -> None:
    assert diff(pytester, EXAMPLE_LOCK).ret == 2  # NEW missing
    assert diff(pytester, "--format", "yaml", EXAMPLE_LOCK, EXAMPLE_LOCK).ret == 2


def test_console_script_is_declared_and_runs() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["pytest-mipro"] == "pytest_mipro.cli:main"
    from pytest_mipro import cli

    assert callable(cli.main)
    # An install of this checkout puts the script next to the interpreter (the CI venv does).
    script = Path(sys.executable).with_name("pytest-mipro")
    if not script.exists():
        pytest.skip("pytest-mipro is not installed in this environment (the package is on PYTHONPATH)")
    import subprocess

    done = subprocess.run([str(script), "diff", str(EXAMPLE_LOCK), str(EXAMPLE_LOCK)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "2 unchanged" in done.stdout
