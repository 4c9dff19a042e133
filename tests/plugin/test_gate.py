"""A plain ``pytest`` run: the locked program is evaluated and gated; ``--mipro-check`` only reads the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import FAST, FOOD_TEST, Project

FIXTURE_ATTRIBUTES_TEST = f'''
import pytest
from pytest_mipro import Predict

food = Predict("item -> kind", instructions="Say what kind of food this is.")


@pytest.mark.mipro(food, name="food", {FAST})
def test_food(mipro):
    assert mipro.mode == "gate"
    assert "RULE-42" in mipro.program.instructions
    assert mipro.program is not food and food.instructions == "Say what kind of food this is."
    assert mipro.score == 1.0 and mipro.failures == []
    assert len(mipro.results) == mipro.entry.n == 9
    assert mipro.calls == 0  # every reply comes from the cache the optimization filled
    assert mipro.threshold is None  # no marker threshold: the regression check against the lock gates it
    assert mipro.verdict == "PASS" and mipro.warning is None and mipro.skipped == 0
    assert mipro.bounds == pytest.approx((0.769, 1.0), abs=1e-3)
'''


def test_plain_run_passes_from_the_cache(optimized: Project) -> None:
    calls = optimized.lm_calls()
    optimized.write_test(FIXTURE_ATTRIBUTES_TEST)

    result = optimized.run()

    result.assert_outcomes(passed=1)
    assert optimized.lm_calls() == calls
    result.stdout.fnmatch_lines(
        [
            "*target*mode*score*bounds*threshold*vs lock*n*calls*cache hits*verdict*outcome*",
            "food*gate*1.000*[[]0.769, 1.000[]]*-*+0.000 (p=1)*9*0*9*PASS*passed",
        ]
    )


def test_missing_entry_says_to_run_optimize(project: Project) -> None:
    result = project.run()

    result.assert_outcomes(failed=1)  # a failure of the test, not a setup error
    result.stdout.fnmatch_lines(
        ["*mipro target 'food' has no entry in *prompts.lock*", "Run `pytest --mipro-optimize` to optimize it*"]
    )


def test_marked_test_without_the_fixture_is_still_gated(project: Project) -> None:
    project.write_test(FOOD_TEST.replace("def test_food(mipro):\n    assert mipro.score >= 0.5", "def test_food():\n    pass"))

    result = project.run()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*has no entry in*"])


def test_editing_the_instructions_makes_the_entry_stale(optimized: Project) -> None:
    optimized.write_test(FOOD_TEST.replace("Say what kind of food this is.", "Say which kind of food this is, please."))

    result = optimized.run()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*mipro target 'food': the entry in *prompts.lock is stale: "
            "the program's base instructions or demos changed since it was optimized.",
            "Run `pytest --mipro-optimize` to re-optimize it (changed fingerprint part(s): instructions).",
        ]
    )


def test_changing_the_metric_and_examples_names_both_parts(optimized: Project) -> None:
    conftest = optimized.path / "conftest.py"
    text = conftest.read_text()
    text = text.replace("== example.kind", "== example.kind.lower()").replace("for i in range(2)", "for i in range(3)")
    conftest.write_text(text)

    result = optimized.run()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the examples (training or validation set) and the metric's source code changed*"])
    result.stdout.fnmatch_lines(["*changed fingerprint part(s): examples, metric*"])


def test_threshold_above_the_bounds_fails_with_score_bounds_threshold_and_worst_examples(optimized: Project) -> None:
    optimized.write_test(FOOD_TEST.replace('name="food"', 'name="food", threshold=0.95'))
    calls = optimized.lm_calls()

    # The model now gets kale wrong; without the cache the locked prompt is really re-run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_WRONG", "kale")
        result = optimized.run("--mipro-no-cache")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*mipro target 'food': FAIL: the score's upper bound 0.924 is below the threshold 0.950 (marker).",
            "Score 0.750 on 8 examples (of 9), one-sided 95% bounds [[]0.398, 0.924[]], threshold 0.950 (marker).",
            ("Against the lock (if every unscored example passed): 1.000 -> 0.778 on the same 9 examples (drop 0.222);"
            " exact McNemar p = 0.25 (2 passed before and fail now, 0 the other way): not significant (p >= 0.05)."),
            "Stopped after 8 of 9 examples: the rest could not change the verdict.",
            "Worst 2 examples:",
            "*score 0.00: item='kale *' | expected kind='vegetable' | got kind='mineral'",
        ]
    )
    assert optimized.lm_calls() == calls + 8  # the first chunk of eight settled it


def test_without_a_threshold_a_drop_that_could_be_noise_passes(optimized: Project) -> None:
    # Two of nine examples now fail: McNemar p = 0.25, not a significant regression.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_WRONG", "kale")
        result = optimized.run("--mipro-no-cache")

    result.assert_outcomes(passed=1)
    # It stopped after 8 of 9: even if the ninth failed too, the drop would not be significant.
    result.stdout.fnmatch_lines(["food*gate*0.750*-*>=-0.333 (p>=0.12)*8/9*PASS*passed"])


def test_an_entry_without_per_example_results_is_gated_on_the_locked_score_minus_tolerance(optimized: Project) -> None:
    import yaml

    lock = optimized.lock()
    del lock["targets"]["food"]["results"]  # as written by hand or by an older version
    optimized.lockfile.write_text(yaml.safe_dump(lock), encoding="utf-8")

    unchanged = optimized.run()  # 12/12 against 0.95: bounds [0.816, 1.000], cannot tell
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_WRONG", "kale")
        failed = optimized.run("--mipro-no-cache")  # 7/9: upper bound 0.924 < 0.95
        tolerated = optimized.run("--mipro-no-cache", "--mipro-tolerance", "0.25")

    unchanged.assert_outcomes(passed=1, warnings=1)
    unchanged.stdout.fnmatch_lines(["*INCONCLUSIVE: the threshold 0.950 (locked score 1.000 - tolerance 0.05) lies inside*"])
    failed.assert_outcomes(failed=1)  # without ids the gate runs on all 12 examples; 10/12 has upper bound 0.943
    failed.stdout.fnmatch_lines(
        ["*FAIL: the score's upper bound 0.943 is below the threshold 0.950 (locked score 1.000 - tolerance 0.05).*"]
    )
    tolerated.assert_outcomes(passed=1, warnings=1)  # 0.75 lies inside [0.601, 0.943]
    tolerated.stdout.fnmatch_lines(["*INCONCLUSIVE: the threshold 0.750 (locked score 1.000 - tolerance 0.25) lies inside*"])


def test_check_verifies_presence_and_freshness_without_any_lm_call(
    optimized: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIPRO_CACHE_DIR", str(tmp_path / "empty-cache"))  # nothing cached: any call would reach the model
    calls = optimized.lm_calls("task") + optimized.lm_calls("prompt")
    optimized.write_test(
        FOOD_TEST.replace("assert mipro.score >= 0.5", "assert mipro.mode == 'check' and mipro.calls == 0 and mipro.score == 1.0")
    )

    passed = optimized.run("--mipro-check")
    optimized.write_test(FOOD_TEST.replace("Say what kind", "Tell what kind"))
    stale = optimized.run("--mipro-check")

    passed.assert_outcomes(passed=1)
    stale.assert_outcomes(failed=1)
    stale.stdout.fnmatch_lines(["*is stale*"])
    assert optimized.lm_calls("task") + optimized.lm_calls("prompt") == calls
    assert not (tmp_path / "empty-cache").exists()


def test_program_can_be_a_fixture_name(optimized: Project) -> None:
    optimized.write_test(
        f'''
        import pytest
        from pytest_mipro import Predict

        @pytest.fixture
        def food_program():
            return Predict("item -> kind", instructions="Say what kind of food this is.")

        @pytest.mark.mipro("food_program", name="food", {FAST})
        def test_food(mipro):
            assert mipro.score == 1.0
        '''
    )

    optimized.run().assert_outcomes(passed=1)


def test_a_program_with_the_lock_already_loaded_counts_as_fresh(optimized: Project) -> None:
    optimized.write_test(FOOD_TEST.replace("is.\")\n", "is.\").load_lock(\"prompts.lock\", \"food\")\n"))

    optimized.run().assert_outcomes(passed=1)


def test_unused_entries_are_reported_only_when_the_whole_suite_ran(optimized: Project) -> None:
    optimized.write_test(FOOD_TEST.replace('name="food"', 'name="renamed"'), name="test_food")
    optimized.write_test("def test_plain():\n    pass\n", name="test_plain")

    full = optimized.run()
    selected = optimized.run("-k", "plain or food")  # -k may select everything, but it is a selection
    partial = optimized.run("test_plain.py")

    full.assert_outcomes(passed=1, failed=1, warnings=1)
    full.stdout.fnmatch_lines(["*MiproWarning: *prompts.lock has entries that no collected test uses: 'food'*"])
    selected.assert_outcomes(passed=1, failed=1)
    partial.assert_outcomes(passed=1)


def test_models_can_come_from_configure_in_a_conftest(project: Project) -> None:
    project.pytester.makeini("[pytest]\n")
    conftest = project.path / "conftest.py"
    conftest.write_text(
        conftest.read_text()
        + '\nimport pytest_mipro\npytest_mipro.configure(lm="fake/plugin-task", prompt_model="fake/plugin-prompter")\n'
    )

    project.run("--mipro-optimize").assert_outcomes(passed=1)

    entry = project.lock()["targets"]["food"]
    assert (entry["task_model"], entry["prompt_model"]) == ("fake/plugin-task", "fake/plugin-prompter")


def test_no_configured_model_says_how_to_configure_one(optimized: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_mipro.lm import local

    optimized.pytester.makeini("[pytest]\n")
    monkeypatch.setattr(local, "is_available", lambda: False)  # as on a machine without the `local` extra

    result = optimized.run("--mipro-check")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no language model is configured, and the embedded model needs the `local` extra*--mipro-model*"])
