"""The gate's verdicts: bounds against a threshold, regression against the lock, early stopping, repeats."""

from __future__ import annotations

import json
import textwrap

import pytest

from .conftest import FAST, FOOD_TEST, Project

# A target with 60 labeled examples: 12 train, 36 validate (the gate set), 12 held out.
BIG_TEST = f'''
import pytest
from pytest_mipro import Example, Predict

WORDS = {{"apple": "fruit", "pear": "fruit", "plum": "fruit", "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable"}}
food = Predict("item -> kind", instructions="Say what kind of food this is.")


def _items(rounds):
    return [Example(item=f"{{w}} {{i}}", kind=k) for i in rounds for w, k in WORDS.items()]


@pytest.fixture
def mipro_examples():
    return _items(range(0, 2))


@pytest.fixture
def mipro_valset():
    return _items(range(2, 8))


@pytest.fixture
def mipro_holdout():
    return _items(range(8, 10))


@pytest.mark.mipro(food, name="food", {FAST}MARKER)
def test_food(mipro):
    pass
'''


def big(project: Project, marker: str = "") -> Project:
    project.write_test(BIG_TEST.replace("MARKER", marker))
    project.run("--mipro-optimize").assert_outcomes(passed=1)
    return project


def with_threshold(project: Project, threshold: float) -> None:
    project.write_test(FOOD_TEST.replace('name="food"', f'name="food", threshold={threshold}'))


# ---------------------------------------------------------------- threshold verdicts (9 gate examples)


def test_pass_when_the_lower_bound_reaches_the_threshold(optimized: Project) -> None:
    with_threshold(optimized, 0.75)  # 9/9: bounds [0.769, 1.000]

    result = optimized.run()

    result.assert_outcomes(passed=1)
    assert "MiproWarning" not in result.stdout.str()
    result.stdout.fnmatch_lines(["food*gate*1.000*[[]0.769, 1.000[]]*0.750*PASS*passed"])


def test_inconclusive_passes_with_a_warning_naming_the_bounds_and_the_examples_needed(optimized: Project) -> None:
    with_threshold(optimized, 0.9)

    result = optimized.run()

    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            ("*MiproWarning: mipro target 'food': INCONCLUSIVE: the threshold 0.900 (marker) lies inside the score's"
            " one-sided 95% bounds [[]0.769, 1.000[]]; about 25 examples at this score would decide it (the gate has 9)"
            " (--mipro-strict would make this a failure)."),
            "  Score 1.000 on 9 examples, one-sided 95% bounds [[]0.769, 1.000[]], threshold 0.900 (marker).",
            "*food*gate*1.000*[[]0.769, 1.000[]]*0.900*INCONCLUSIVE*passed",
        ]
    )


@pytest.mark.parametrize("how", ["flag", "ini"])
def test_strict_turns_inconclusive_into_a_failure(optimized: Project, how: str) -> None:
    with_threshold(optimized, 0.9)
    if how == "ini":
        ini = optimized.path / "tox.ini"
        ini.write_text(ini.read_text().rstrip() + "\nmipro_strict = true\n")

    result = optimized.run("--mipro-strict") if how == "flag" else optimized.run()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*INCONCLUSIVE: the threshold 0.900 (marker) lies inside*(failing because of --mipro-strict).*"])


def test_the_report_records_verdict_bounds_and_regression(optimized: Project) -> None:
    with_threshold(optimized, 0.9)

    optimized.run("--mipro-report", "gate.json").assert_outcomes(passed=1, warnings=1)

    (record,) = json.loads((optimized.path / "gate.json").read_text())["targets"]
    judgement = record["judgement"]
    assert judgement["verdict"] == "INCONCLUSIVE" and record["outcome"] == "passed"
    assert (judgement["lower"], judgement["upper"], judgement["needed_n"]) == (pytest.approx(0.768866), 1.0, 25)
    assert judgement["evaluated"] == judgement["total"] == 9 and record["gate"]["repeats"] == 1 and judgement["curtailed"] is False
    assert judgement["regression"]["method"] == "mcnemar" and judgement["regression"]["drop"] == 0.0
    assert judgement["regression"]["p_value"] == 1.0 and judgement["regression"]["regressed"] is False
    assert record["message"].startswith("mipro target 'food': INCONCLUSIVE")

    optimized.run("--mipro-report", "gate.html").assert_outcomes(passed=1, warnings=1)
    page = (optimized.path / "gate.html").read_text()
    assert "<span class='badge b-warn'>INCONCLUSIVE</span>" in page
    assert "<td data-label='bounds' class='num'>[0.769, 1.000]</td>" in page


# ---------------------------------------------------------------- regression against the lock (36 gate examples)


def test_a_real_drop_fails_and_a_noise_sized_drop_passes(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    big(project)

    monkeypatch.setenv("FAKE_WRONG", "kale 2,kale 3,leek 4")  # 3 of 36 now fail: McNemar p = 0.125
    noise = project.run("--mipro-no-cache")
    monkeypatch.setenv("FAKE_WRONG", "kale,leek")  # 12 of 36 now fail: p = 0.0002
    real = project.run("--mipro-no-cache", "--mipro-threads", "20")  # one chunk: no early stop

    noise.assert_outcomes(passed=1)
    noise.stdout.fnmatch_lines(["food*gate*0.917*-0.083 (p=0.12)*36*PASS*passed"])
    real.assert_outcomes(failed=1)
    real.stdout.fnmatch_lines(
        [
            "*mipro target 'food': FAIL: the score dropped significantly from the locked 1.000.",
            "Score 0.667 on 36 examples, one-sided 95% bounds [[]0.530, 0.780[]], no threshold.",
            ("Against the lock: 1.000 -> 0.667 on the same 36 examples (drop 0.333); exact McNemar p = 0.000244"
            " (12 passed before and fail now, 0 the other way): a significant drop larger than --mipro-min-drop 0.02."),
            "Worst 5 examples:",
        ]
    )


def test_min_drop_tolerates_a_significant_but_small_drop(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    big(project)
    monkeypatch.setenv("FAKE_WRONG", "kale")  # 6 of 36: significant (p = 0.016), a drop of 0.167

    failed = project.run("--mipro-no-cache")
    tolerated = project.run("--mipro-no-cache", "--mipro-min-drop", "0.2")

    failed.assert_outcomes(failed=1)
    tolerated.assert_outcomes(passed=1)


# ---------------------------------------------------------------- stopping early


def test_stopping_early_saves_calls_and_gives_the_verdict_of_a_full_run(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    big(project)
    monkeypatch.setenv("FAKE_WRONG", "kale,leek")

    before = project.lm_calls()
    early = project.run("--mipro-no-cache")
    early_calls = project.lm_calls() - before
    full = project.run("--mipro-no-cache", "--mipro-threads", "20")  # chunks of 40: all 36 at once
    full_calls = project.lm_calls() - before - early_calls

    early.assert_outcomes(failed=1)
    full.assert_outcomes(failed=1)
    assert full_calls == 36 and early_calls < 36
    early.stdout.fnmatch_lines(
        [
            "*Stopped after * of 36 examples: the rest could not change the verdict.",
            f"food*gate*<=-*{early_calls}/36*{early_calls}*FAIL*failed",
            (f"mipro food: stopped after {early_calls} of 36 examples once the verdict was settled;"
            f" skipped {36 - early_calls} (about {36 - early_calls} LM calls saved)"),
        ]
    )


def test_a_clear_pass_stops_early_when_only_the_threshold_matters(project: Project) -> None:
    big(project, ", threshold=0.5")

    before = project.lm_calls()
    result = project.run("--mipro-no-cache", "--mipro-min-drop", "1")  # a drop can never exceed 1: no regression check

    result.assert_outcomes(passed=1)
    assert project.lm_calls() - before == 24  # 24/36 correct already puts the lower bound above 0.5
    result.stdout.fnmatch_lines(["food*gate*1.000*0.500*24/36*24*PASS*passed", "mipro food: stopped after 24 of 36 examples*"])


def test_cached_examples_are_all_scored(project: Project) -> None:
    big(project, ", threshold=0.5")

    before = project.lm_calls()
    result = project.run("--mipro-min-drop", "1")

    result.assert_outcomes(passed=1)
    assert project.lm_calls() == before  # an unchanged prompt, answered from the cache
    result.stdout.fnmatch_lines(["food*gate*1.000*0.500*36*0*36*PASS*passed"])


# ---------------------------------------------------------------- repeated samples


SAMPLED_MODEL = """
import pytest_mipro
pytest_mipro.configure(lm=pytest_mipro.LM("fake/plugin-task", temperature=0.7))
"""


def test_repeats_sample_each_example_anew_and_report_pass_rate_and_pass_k(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.pytester.makeini("[pytest]\nmipro_prompt_model = fake/plugin-prompter\n")
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + SAMPLED_MODEL)
    project.run("--mipro-optimize").assert_outcomes(passed=1)
    project.write_test(FOOD_TEST.replace("assert mipro.score >= 0.5", "assert len(mipro.results) == 27"))
    monkeypatch.setenv("FAKE_FLAKY", "kale")  # the sample drawn with seed 2 gets kale wrong

    before = project.lm_calls()
    first = project.run("--mipro-repeats", "3")
    new_calls = project.lm_calls() - before
    again = project.run("--mipro-repeats", "3")

    first.assert_outcomes(passed=1)
    assert new_calls == 18  # samples 1 and 2 of 9 examples; sample 0 is the optimization's cached reply
    assert project.lm_calls() == before + new_calls  # the rerun replays all three samples from the cache
    for result in (first, again):
        result.stdout.fnmatch_lines(
            ["mipro food: 3 samples per example: pass rate 0.926, pass^3 0.778 (every sample of an example passes)"]
        )


# ---------------------------------------------------------------- honest selection in --mipro-optimize


def test_optimize_adopts_a_prompt_that_beats_the_unoptimized_one_on_the_holdout(project: Project) -> None:
    big(project)

    entry = project.lock()["targets"]["food"]
    holdout = entry["holdout"]
    assert entry["program"]["self"]["instructions"] != "Say what kind of food this is." or entry["program"]["self"]["demos"]
    assert holdout["source"] == "fixture" and holdout["n"] == 12 and holdout["adopted"] is True
    assert holdout["compared_with"] == "unoptimized" and (holdout["score"], holdout["other_score"]) == (1.0, 0.0)
    assert holdout["bounds"] == [0.816019, 1.0] and len(holdout["ids"]) == len(holdout["scores"]) == 12
    assert entry["n"] == 36 and entry["bounds"] == [0.930099, 1.0]


def test_a_seeded_split_is_made_when_there_are_40_examples(project: Project) -> None:
    source = BIG_TEST.replace("MARKER", "")
    source = source.replace("range(0, 2)", "range(0, 10)").replace("@pytest.fixture\ndef mipro_valset", "def unused_valset")
    project.write_test(source.replace("@pytest.fixture\ndef mipro_holdout", "def unused_holdout"))

    result = project.run("--mipro-optimize")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            ("mipro food: holdout: 15 of 60 labeled examples (seeded split); the search validated on 36;*"
            " adopted the new prompt: holdout 1.000 vs 0.000 for the unoptimized program, improvement +1.000*")
        ]
    )
    assert project.lock()["targets"]["food"]["holdout"]["source"] == "split"


def test_a_split_too_small_for_a_minibatch_searches_with_full_evaluations(project: Project) -> None:
    # 48 examples, minibatches on (MIPROv2's default of 35): the search validates on 28.
    source = BIG_TEST.replace("MARKER", "").replace(FAST, "auto=None, num_candidates=3, num_trials=3")
    source = source.replace("range(0, 2)", "range(0, 8)").replace("@pytest.fixture\ndef mipro_valset", "def unused_valset")
    project.write_test(source.replace("@pytest.fixture\ndef mipro_holdout", "def unused_holdout"))

    result = project.run("--mipro-optimize")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*trial 1/3 (full) score*", "mipro food: holdout: 12 of 48 labeled examples (seeded split); the search validated on 28;*"]
    )
    assert "(minibatch)" not in result.stdout.str()


def test_optimize_keeps_the_locked_prompt_when_the_new_one_is_not_better(project: Project) -> None:
    big(project)
    locked = project.lock()["targets"]["food"]["program"]

    result = project.run("--mipro-optimize", "--mipro-seed", "1")  # a new search: other proposals, just as good

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            ("mipro food: holdout: 12 examples from `mipro_holdout`; the search validated on 36;"
            " kept the current locked prompt: holdout 1.000 vs 1.000 for the current locked prompt,"
            " improvement +0.000 is not significant (one-sided 95% lower bound +0.000 <= 0, n=12)")
        ]
    )
    entry = project.lock()["targets"]["food"]
    assert entry["program"] == locked
    assert entry["holdout"]["adopted"] is False and entry["holdout"]["compared_with"] == "lock"
    assert entry["optimizer"]["seed"] == 1  # the run is recorded; the prompt it found was not adopted


def test_small_targets_have_no_holdout_and_say_so(project: Project) -> None:
    result = project.run("--mipro-optimize")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "mipro food: no holdout: 12 labeled examples, and a seeded holdout split needs 40 "
            "(or define a `mipro_holdout` fixture); locked the search's pick"
        ]
    )
    assert "holdout" not in project.lock()["targets"]["food"]


def test_a_holdout_marker_argument_names_a_fixture(project: Project) -> None:
    source = BIG_TEST.replace("MARKER", ', holdout="kept_back"').replace("def mipro_holdout", "def kept_back")

    project.write_test(textwrap.dedent(source))

    project.run("--mipro-optimize").assert_outcomes(passed=1)
    assert project.lock()["targets"]["food"]["holdout"]["n"] == 12
    project.run().assert_outcomes(passed=1)  # the holdout is part of the fingerprint: the entry is fresh


def test_verdicts_and_warnings_reach_the_controller_under_xdist(optimized: Project) -> None:
    with_threshold(optimized, 0.9)

    result = optimized.run_subprocess("-n", "2", "--mipro-report", "gate.json")

    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*MiproWarning: mipro target 'food': INCONCLUSIVE*", "food*gate*1.000*0.900*INCONCLUSIVE*passed"])
    (record,) = json.loads((optimized.path / "gate.json").read_text())["targets"]
    assert record["judgement"]["verdict"] == "INCONCLUSIVE" and record["judgement"]["regression"]["regressed"] is False


def test_a_split_holdout_target_is_searched_in_one_study_under_xdist(project: Project) -> None:
    # Every process that works on the target's search must leave the same holdout out, or
    # the study (named by what the search sees) splits in two.
    source = BIG_TEST.replace("MARKER", "").replace("range(0, 2)", "range(0, 10)")
    source = source.replace("@pytest.fixture\ndef mipro_valset", "def unused_valset")
    project.write_test(source.replace("@pytest.fixture\ndef mipro_holdout", "def unused_holdout"))

    result = project.run_subprocess("-n", "2", "--mipro-optimize")

    assert result.ret == 0, result.stdout.str()[-2000:]
    assert len(list((project.path / ".mipro" / "runs").iterdir())) == 1
    assert project.lock()["targets"]["food"]["holdout"]["n"] == 15
    project.run().assert_outcomes(passed=1)
