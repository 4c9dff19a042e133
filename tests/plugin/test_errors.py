"""Clear errors: bad marker arguments, missing fixtures, malformed lockfiles."""

from __future__ import annotations

import pytest

from .conftest import FOOD_TEST, Project


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            'food, name="food", num_candidate=3',
            "mipro target 'food': unknown optimizer option 'num_candidate'; MIPROv2 options are: *num_candidates*",
        ),
        (
            'food, name="food", task_model="openai/gpt-4o"',
            "mipro target 'food': optimizer option 'task_model' cannot be set on a target: set the task model with --mipro-model*",
        ),
        ('food, name="food", threshold=1.5', "mipro target 'food': threshold=1.5 must be a number between 0 and 1 (scores are fractions)"),
        ('food, food, name="food"', "@pytest.mark.mipro takes one positional argument, the program (or its fixture name); got 2"),
        ('name="food"', "@pytest.mark.mipro takes one positional argument*got 0"),
        ('42, name="food"', "mipro target 'food': the program must be a pytest_mipro Module (Predict, ChainOfThought, ...), got int"),
        (
            'food, name="food", examples=[{"colour": "red"}]',
            "mipro target 'food': examples: example {'colour': 'red'} lacks the program's input field(s) ['item']",
        ),
    ],
)
def test_bad_marker_arguments_are_setup_errors_naming_the_problem(project: Project, marker: str, message: str) -> None:
    project.write_test(FOOD_TEST.replace('food, name="food", auto=None, num_candidates=3, num_trials=3, minibatch=False', marker))

    result = project.run()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"test_food.py::test_food: {message}"])
    assert project.lm_calls() == 0


def test_missing_examples_fixture_says_how_to_provide_it(project: Project) -> None:
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace("def mipro_examples", "def other_examples"))

    result = project.run()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*mipro target 'food' needs its examples: there is no fixture named 'mipro_examples'. "
                "Define `@pytest.fixture def mipro_examples(): ...` in the test module or a conftest.py, "
                "or pass examples=... to @pytest.mark.mipro."
            )
        ]
    )


def test_missing_program_fixture_is_named(project: Project) -> None:
    project.write_test(FOOD_TEST.replace("mipro(food,", 'mipro("food_program",'))

    result = project.run()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs its program: there is no fixture named 'food_program'*"])


def test_fixture_requested_without_marker_is_an_error(project: Project) -> None:
    project.write_test("def test_unmarked(mipro):\n    pass\n")

    result = project.run()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the `mipro` fixture needs a target: mark the test with @pytest.mark.mipro(program, ...)*"])


def test_marker_is_registered_for_strict_markers(optimized: Project) -> None:
    optimized.run("--strict-markers").assert_outcomes(passed=1)
    optimized.run("--markers").stdout.fnmatch_lines(["@pytest.mark.mipro(program, *, threshold=None, name=None, *"])


def test_malformed_lockfile_error_names_file_and_line(project: Project) -> None:
    project.lockfile.write_text("version: 1\ntargets:\n  food:\n    score: [0.5\n    n: 3\n")

    result = project.run()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*prompts.lock:5: malformed lockfile: *; fix it or delete it and run `pytest --mipro-optimize`*"])


def test_lockfile_with_an_unknown_version_names_its_line(project: Project) -> None:
    project.lockfile.write_text("# comment\nversion: 7\ntargets: {}\n")

    result = project.run()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*prompts.lock:2: unsupported lockfile version 7; this pytest-mipro writes version 1*"])


@pytest.mark.parametrize("mode", [[], ["--mipro-check"], ["--mipro-optimize"]], ids=["gate", "check", "optimize"])
@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("not_utf8", "*prompts.lock:3: not UTF-8 text (byte 0xff); lockfiles are UTF-8: *"),
        ("directory", "*prompts.lock is a directory, not a lockfile; point --mipro-lockfile (or load_lock) at a file*"),
    ],
    ids=["not_utf8", "directory"],
)
def test_an_unreadable_lockfile_is_a_one_line_error_not_an_internal_error(
    project: Project, mode: list[str], make: str, message: str
) -> None:
    if make == "not_utf8":
        project.lockfile.write_bytes(b"version: 1\ntargets:\n  food: \xff\n")
    else:
        project.lockfile.mkdir()

    result = project.run(*mode)

    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret not in (0, pytest.ExitCode.INTERNAL_ERROR)
    result.stdout.fnmatch_lines([message])
