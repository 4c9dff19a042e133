from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pytest_mipro import Budget, Evaluate, Example, Predict, configure, context
from pytest_mipro.optimizer.search import BayesianSearch, ScoreMemo, SearchSettings, SearchSpace, create_study
from pytest_mipro.optimizer.study import SearchStudy, TrialKind

from ._tasks import RULE, WORDS, InFlight, exact_match, fields_of, foods, num_demos, partly_right, task_answer

INSTRUCTIONS = ["Classify.", f"Classify with {RULE}.", "Guess the kind."]


def demo_sets() -> list[list[Example]]:
    pool = foods(3)[12:]  # not in the valset below
    return [[], pool[:2], pool[2:5], pool[5:6]]  # only set 2 has enough demos to answer right


def space(search_demos: bool = True) -> SearchSpace:
    program = Predict("item -> kind", instructions=INSTRUCTIONS[0])
    return SearchSpace(program, {"self": list(INSTRUCTIONS)}, {"self": demo_sets()}, search_demos=search_demos)


def optimal(params: dict[str, int]) -> bool:
    return params["0_predictor_instruction"] == 1 or params.get("0_predictor_demos") == 2


def search(task: Any, **settings: Any) -> BayesianSearch:
    defaults: dict[str, Any] = {"num_trials": 8, "minibatch_size": 4, "full_eval_steps": 2, "seed": 0, "n_startup_trials": 4}
    valset = foods(2)
    configure(lm=task.lm())
    return BayesianSearch(
        space=settings.pop("space", None) or space(),
        valset=valset,
        evaluate=Evaluate(devset=valset, metric=exact_match),
        settings=SearchSettings(**{**defaults, **settings}),
        rng=random.Random(0),
    )


def trials(study: Any, label: str) -> list[Any]:
    """Finished trials by label: a kind, with ``-pruned`` for the ones racing stopped."""
    return [t for t in study.trials if t.value is not None and label_of(t) == label]


def distributions(space: SearchSpace) -> dict[str, Any]:
    """The Optuna distributions of a search space, for tests that ask the study directly."""
    from optuna.distributions import CategoricalDistribution

    return {name: CategoricalDistribution(list(range(n))) for name, n in space.choices().items()}


def label_of(trial: Any) -> str:
    kind = trial.user_attrs.get("kind", "")
    return f"{kind}-pruned" if trial.user_attrs.get("pruned") else kind


def prompt_key(messages: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(m["content"] for m in messages)


def test_baseline_is_scored_last_and_stops_once_it_cannot_win(fake_model: Any) -> None:
    runner = search(fake_model(task_answer))
    study = create_study(runner.settings)
    outcome = runner.run(study)
    last = max(study.trials, key=lambda t: t.number)
    assert label_of(last) == "baseline-pruned"
    assert last.params == {"0_predictor_instruction": 0, "0_predictor_demos": 0}
    assert 0 < last.user_attrs["n"] < 12 and last.value == 0.0  # wrong every time: a few examples tell
    assert outcome.baseline_score == 0.0 and outcome.best_score == 1.0
    assert [t.label for t in outcome.trial_logs].count("baseline-pruned") == 1
    assert outcome.trial_logs[-1].label == "baseline-pruned"


def test_a_baseline_as_good_as_the_best_is_scored_in_full_and_kept(fake_model: Any) -> None:
    program = Predict("item -> kind", instructions=INSTRUCTIONS[1])  # the rule: right every time
    good = SearchSpace(program, {"self": [INSTRUCTIONS[1], INSTRUCTIONS[2]]}, {"self": demo_sets()})
    runner = search(fake_model(task_answer), space=good)
    outcome = runner.run()
    assert outcome.trial_logs[-1].label == "baseline" and outcome.trial_logs[-1].num_examples == 12
    assert outcome.best_combo == good.baseline() and outcome.best_score == outcome.baseline_score == 1.0


def test_racing_stops_a_minibatch_trial_that_cannot_win_and_tells_what_it_saw(fake_model: Any) -> None:
    runner = search(fake_model(task_answer), num_trials=10, minibatch_size=10)
    study = create_study(runner.settings)
    runner.run(study)
    pruned = trials(study, "minibatch-pruned")
    losers = [t for t in pruned if not optimal(t.params)]
    assert losers, "the combinations that score 0 should be stopped early"
    for trial in losers:
        assert trial.user_attrs["n"] < 10 and trial.value == 0.0  # the mean of what it scored
    # A perfect combination stops too once another already scored 1.0 in full: a tie cannot win.
    assert all(t.value == 1.0 for t in pruned if optimal(t.params))


def _fruit_or_vegetable_reader(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """"Fruit only." says fruit every time; "Mostly vegetables." is right on vegetables and on round-3 fruits."""
    item = fields_of(messages[-1])["item"]
    instruction = str(messages[0]["content"])
    if "Fruit only." in instruction:
        return "fruit"
    if "Mostly vegetables." in instruction:
        return WORDS[item.split()[0]] if item.endswith(" 3") else "vegetable"
    return "unknown"


def test_a_full_evaluation_races_on_a_shuffled_valset_not_on_its_given_order(fake_model: Any) -> None:
    """Racing extrapolates from the examples scored so far, so they must be a random sample.

    The valset comes sorted by label: fruits first. "Mostly vegetables." (0.625) is wrong on
    most fruits, so in the given order it would be stopped against "Fruit only." (0.5) after a
    few examples, and the worse instruction would win.
    """
    valset = sorted(foods(4), key=lambda ex: ex.kind)
    instructions = ["Say unknown.", "Fruit only.", "Mostly vegetables."]
    program = Predict("item -> kind", instructions=instructions[0])
    candidates = SearchSpace(program, {"self": instructions}, {"self": [[]]}, search_demos=False)
    configure(lm=fake_model(_fruit_or_vegetable_reader).lm())
    runner = BayesianSearch(
        space=candidates,
        valset=valset,
        evaluate=Evaluate(devset=valset, metric=exact_match),
        settings=SearchSettings(num_trials=2, minibatch=False, seed=0, n_startup_trials=2),
        rng=random.Random(0),
    )
    study = create_study(runner.settings)
    for instruction in (1, 2):  # the weaker one first, so the better one races against it
        study.enqueue_trial({"0_predictor_instruction": instruction})
    outcome = runner.run(study)
    assert outcome.full_scores[((1, 0),)] == 0.5
    assert outcome.full_scores[((2, 0),)] == 0.625
    assert outcome.best_combo == ((2, 0),)


def test_without_race_confidence_only_certain_losers_are_stopped(fake_model: Any) -> None:
    runner = search(fake_model(task_answer), num_trials=10, minibatch_size=10, race_confidence=None)
    study = create_study(runner.settings)
    outcome = runner.run(study)
    checker = Evaluate(devset=runner.valset, metric=exact_match)
    stopped = [t for t in study.trials if t.user_attrs.get("pruned")]
    assert stopped
    for trial in stopped:
        # Even a perfect score on the examples it skipped would not have beaten the best.
        seen = trial.value * trial.user_attrs["n"]
        assert (seen + len(runner.valset) - trial.user_attrs["n"]) / len(runner.valset) <= outcome.best_score
        full = checker(runner.space.build(runner.space.combo_from_params(trial.params))).score
        assert full <= outcome.best_score


def test_full_evals_are_recorded_with_their_true_params_and_scores(fake_model: Any) -> None:
    runner = search(fake_model(task_answer))
    study = create_study(runner.settings)
    outcome = runner.run(study)
    full = trials(study, "full") + trials(study, "full-pruned")
    minibatch = trials(study, "minibatch") + trials(study, "minibatch-pruned")
    assert len(minibatch) == 8
    assert 1 <= len(full) <= 4  # after every 2 minibatch trials, unless no unpruned combination is left
    assert any(t.params["0_predictor_demos"] != 0 for t in full)  # the demo index matters here
    checker = Evaluate(devset=runner.valset, metric=exact_match)
    tried = [t.params for t in minibatch]
    for trial in trials(study, "full"):
        assert trial.params in tried
        expected = checker(runner.space.build(runner.space.combo_from_params(trial.params))).score
        assert trial.value == pytest.approx(expected)
        assert trial.value == (1.0 if optimal(trial.params) else 0.0)
    assert outcome.best_score == 1.0 and optimal(runner.space.params_from_combo(outcome.best_combo))


def test_full_eval_picks_the_best_average_combination_not_yet_evaluated(fake_model: Any) -> None:
    runner = search(fake_model(task_answer), num_trials=6, full_eval_steps=3)
    study = create_study(runner.settings)
    runner.run(study)
    ordered = sorted(study.trials, key=lambda t: t.number)
    evaluated: list[dict[str, int]] = []
    means: dict[tuple[int, ...], list[float]] = {}
    for trial in ordered:
        kind = label_of(trial)
        key = tuple(sorted(trial.params.items()))
        if kind == "minibatch":
            means.setdefault(key, []).append(trial.value)  # type: ignore[arg-type]
        elif kind in ("full", "full-pruned"):
            pending = {k: sum(v) / len(v) for k, v in means.items() if dict(k) not in evaluated}
            assert pending[key] == max(pending.values())
            evaluated.append(trial.params)


def test_no_prompt_is_sent_twice_in_a_search(fake_model: Any) -> None:
    task = fake_model(task_answer)
    runner = search(task, num_trials=10, full_eval_steps=2)
    with configure(cache=False):
        runner.run()
    keys = [prompt_key(m) for m in task.messages]
    assert len(keys) == len(set(keys))  # full evals reuse minibatch predictions
    assert task.calls == sum(len(results) for results in runner.memo.results.values())


def test_a_search_with_one_combination_does_not_crash(fake_model: Any) -> None:
    task = fake_model(task_answer)
    one = SearchSpace(Predict("item -> kind"), {"self": ["Classify."]}, {"self": [[]]})
    runner = search(task, space=one, num_trials=4, full_eval_steps=1)
    with configure(cache=False):
        outcome = runner.run()
    assert task.calls == 12  # the first full eval; later trials and the baseline reuse its predictions
    assert outcome.best_combo == ((0, 0),) and outcome.best_score == 0.0


def test_without_minibatches_every_trial_is_a_full_eval(fake_model: Any) -> None:
    runner = search(fake_model(task_answer), minibatch=False, num_trials=6)
    study = create_study(runner.settings)
    outcome = runner.run(study)
    assert len(trials(study, "full") + trials(study, "full-pruned")) == 6 and not trials(study, "minibatch")
    assert all(t.user_attrs["n"] == 12 for t in trials(study, "full"))
    assert outcome.best_score == 1.0
    kinds = [t.label for t in outcome.trial_logs]
    assert {k.removesuffix("-pruned") for k in kinds[:-1]} == {"full"} and len(kinds) == 7
    assert kinds[-1].startswith("baseline")


def test_minibatches_depend_on_the_seed_and_are_reproducible(fake_model: Any) -> None:
    task = fake_model(task_answer)

    def batches(seed: int) -> list[list[str]]:
        runner = search(task, seed=seed)
        return [[ex.uid for ex in runner._batch(n)] for n in range(1, 6)]

    assert batches(0) == batches(0)
    assert batches(0) != batches(9)


def test_same_seed_same_trials(fake_model: Any) -> None:
    task = fake_model(task_answer)
    first = search(task).run()
    calls = task.calls
    second = search(task).run()
    assert [(t.label, t.params, t.score) for t in first.trial_logs] == [(t.label, t.params, t.score) for t in second.trial_logs]
    assert task.calls == calls  # everything came from the cache


def _partly_right(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return partly_right(messages, per_demo=20, max_demos=3)


def test_the_search_takes_the_same_decisions_at_any_number_of_threads(fake_model: Any) -> None:
    """With threads a race has several calls in flight, but stops where one thread would have stopped."""
    task = fake_model(_partly_right)

    def run(threads: int) -> tuple[list[tuple[Any, ...]], int]:
        runner = search(task, num_trials=12, minibatch_size=12, seed=3)
        runner.evaluate = Evaluate(devset=runner.valset, metric=exact_match, num_threads=threads)
        before = task.calls
        with context(cache=False):
            logs = runner.run().trial_logs
        return [(t.label, t.params, t.score, t.num_examples) for t in logs], task.calls - before

    serial, serial_calls = run(1)
    assert any(t[0].endswith("-pruned") and t[3] % 4 for t in serial)  # stops inside a chunk of 4
    threaded, threaded_calls = run(4)
    assert threaded == serial
    assert threaded_calls > serial_calls  # the calls in flight at a stop were paid for (and set aside)


def test_a_threaded_search_never_has_more_than_num_threads_calls_in_flight(fake_model: Any) -> None:
    """Calls a stopped race left running keep their thread: the next race waits for it."""
    in_flight = InFlight()

    def slowly(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        in_flight.wait(0.03)  # longer than asking TPE for the next trial
        return _partly_right(messages, params)

    runner = search(fake_model(slowly), num_trials=12, minibatch_size=12, seed=3)
    runner.evaluate = Evaluate(devset=runner.valset, metric=exact_match, num_threads=3)
    with context(cache=False):
        outcome = runner.run()
    assert any(t.label.endswith("-pruned") for t in outcome.trial_logs)
    assert in_flight.peak == 3


def test_what_threads_scored_past_a_stop_is_set_aside_unknown_to_the_search_and_not_paid_for_again(fake_model: Any) -> None:
    def slowly(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        time.sleep(0.01)  # so four calls are in flight together
        return task_answer(messages, params)

    task = fake_model(slowly)
    configure(lm=task.lm())
    candidates, valset = space(), foods(2)
    evaluate, memo, combo = Evaluate(devset=valset, metric=exact_match, num_threads=4), ScoreMemo(), candidates.baseline()
    with context(cache=False):  # so only the memo can spare calls
        with ThreadPoolExecutor(4) as pool:  # leaving it waits for the calls still running
            results = memo.iterate(evaluate, candidates, combo, valset, pool)
            judged = [next(results), next(results)]
            results.close()
        assert [r.example for r in judged] == valset[:2]
        assert list(memo.results[combo]) == [ex.uid for ex in valset[:2]]  # what the caller judged
        ahead = set(memo.set_aside[combo])
        assert {valset[2].uid, valset[3].uid} <= ahead and len(ahead) < len(valset) - 2  # the rest was cancelled
        assert task.calls == 2 + len(ahead)
        assert memo.known_scores(valset) == {}
        again = memo.evaluate(evaluate, candidates, combo, valset)
    assert again.n == len(valset) and task.calls == len(valset)  # nothing paid for twice
    assert list(memo.known_scores(valset)) == [combo]


@pytest.mark.parametrize("threads", [1, 4])
def test_a_spent_budget_returns_the_best_so_far(fake_model: Any, threads: int) -> None:
    task = fake_model(task_answer)
    runner = search(task, minibatch=False, num_trials=10)
    runner.evaluate = Evaluate(devset=runner.valset, metric=exact_match, num_threads=threads)
    with context(budget=Budget(max_calls=12 + 5)), configure(cache=False):
        outcome = runner.run()
    assert outcome.stopped_by_budget
    assert task.calls == 12 + 5
    assert runner._pool is None  # the search's threads are gone
    full = [t for t in outcome.trial_logs if t.label == "full"]
    assert 1 <= len(outcome.trial_logs) < 10  # the search stopped before its 10 trials
    assert full and outcome.best_score == max(t.score for t in full)
    assert not any(t.label.startswith("baseline") for t in outcome.trial_logs)


def test_a_candidate_past_max_errors_stops_like_a_loser_and_the_search_goes_on(fake_model: Any) -> None:
    def too_long_with_three_demos(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        if num_demos(messages) == 3:
            raise ValueError("the prompt is longer than the model's context")
        return _partly_right(messages, params)

    task = fake_model(too_long_with_three_demos)

    def run(threads: int) -> Any:
        runner = search(task, num_trials=10, minibatch_size=10)
        runner.evaluate = Evaluate(devset=runner.valset, metric=exact_match, num_threads=threads, max_errors=2)
        with context(cache=False):
            return runner.run()

    serial = run(1)
    broken = [t for t in serial.trial_logs if t.params.get("0_predictor_demos") == 2]
    assert broken and all(t.label.endswith("-pruned") and t.num_examples <= 2 and t.score == 0.0 for t in broken)
    assert serial.best_combo[0][1] != 2
    # Failures are counted in order, so threads stop it at the same example.
    threaded = run(4)
    assert [(t.label, t.params, t.score, t.num_examples) for t in threaded.trial_logs] == [
        (t.label, t.params, t.score, t.num_examples) for t in serial.trial_logs
    ]


def test_zero_shot_space_searches_instructions_only() -> None:
    zero = space(search_demos=False)
    assert set(zero.choices()) == {"0_predictor_instruction"}
    assert zero.params_from_combo(((2, 0),)) == {"0_predictor_instruction": 2}
    assert zero.combo_from_params({"0_predictor_instruction": 2}) == ((2, 0),)


def test_build_applies_a_combination_without_touching_the_program() -> None:
    full = space()
    built = full.build(((1, 2),))
    assert built.instructions == INSTRUCTIONS[1]
    assert [d.uid for d in built.demos] == [d.uid for d in demo_sets()[2]]
    assert full.program.instructions == INSTRUCTIONS[0] and full.program.demos == []
    assert full.combo_from_params(full.params_from_combo(((2, 3),))) == ((2, 3),)


def test_on_trial_sees_every_evaluation(fake_model: Any) -> None:
    seen: list[str] = []
    runner = search(fake_model(task_answer), num_trials=4)
    runner.on_trial = lambda log: seen.append(log.label)
    outcome = runner.run()
    assert seen == [t.label for t in outcome.trial_logs]
    assert all(0.0 <= t.score <= 1.0 and 0.0 <= t.best_full_score <= 1.0 for t in outcome.trial_logs)


def test_prefetch_scores_from_the_back_skips_claimed_examples_and_stops_when_no_longer_wanted(
    fake_model: Any, tmp_path: Any
) -> None:
    from pytest_mipro.optimizer.checkpoint import Checkpoint
    from pytest_mipro.optimizer.search import prefetch_valset

    task = fake_model(task_answer)
    configure(lm=task.lm())
    valset = foods(1)  # 6 examples
    mine, other = Checkpoint(tmp_path, run_id="r"), Checkpoint(tmp_path, run_id="r")
    assert other.claim(valset[-1].uid)  # another process took the last example
    evaluate = Evaluate(devset=valset, metric=exact_match)
    looks: list[int] = []

    def wanted() -> bool:
        looks.append(task.calls)
        return task.calls < 4  # the owner finished after four of our calls

    prefetch_valset(evaluate, Predict("item -> kind"), valset, wanted, claim=mine.claim)

    asked = [messages[-1]["content"] for messages in task.messages]
    expected = [ex.item for ex in reversed(valset[:-1])][:4]
    assert [next(w for w in expected if w in text) for text in asked] == expected
    assert Checkpoint(tmp_path, run_id="next-run").claim(valset[-1].uid)  # a new run starts afresh


def test_prefetch_reads_a_queued_full_eval_another_process_has_taken_but_not_yet_started(fake_model: Any, tmp_path: Any) -> None:
    from pytest_mipro.optimizer.checkpoint import Checkpoint

    task = fake_model(task_answer)
    runner = search(task)
    runner.claim = Checkpoint(tmp_path, run_id="r").claim
    study = create_study(runner.settings)
    SearchStudy(study).enqueue(runner.space.params_from_combo(((1, 2),)), TrialKind.QUEUED_FULL)
    study.ask()  # another process took it; its params arrive when that process suggests them
    (taken,) = study.get_trials(deepcopy=False)
    assert taken.params == {}

    assert runner._prefetch(SearchStudy(study), taken)  # scores the queued combination, no KeyError

    assert task.calls == len(runner.valset)
    assert all(RULE in messages[0]["content"] for messages in task.messages)  # instruction 1


def test_an_idle_process_helps_with_full_evaluations_but_not_with_minibatch_trials_racing_may_throw_away(
    fake_model: Any, tmp_path: Any
) -> None:
    from pytest_mipro.optimizer.checkpoint import Checkpoint

    task = fake_model(task_answer)
    runner = search(task, minibatch_size=10)
    runner.claim = Checkpoint(tmp_path, run_id="r").claim
    study = create_study(runner.settings)
    kinds = ("baseline", "minibatch", "full")
    for kind in kinds:  # other processes' trials, still running
        study.ask(distributions(runner.space)).set_user_attr("kind", kind)

    baseline_trial, minibatch_trial, full_trial = study.get_trials(deepcopy=False)
    assert not runner._prefetch(SearchStudy(study), baseline_trial)
    assert not runner._prefetch(SearchStudy(study), minibatch_trial)
    assert task.calls == 0
    assert runner._prefetch(SearchStudy(study), full_trial)
    asked = [fields_of(messages[-1])["item"] for messages in task.messages]
    assert asked == [ex.item for ex in reversed(runner._full_order())]  # the full evaluation's order, from the back


def test_a_race_starts_with_the_examples_another_process_already_scored_the_combination_on(fake_model: Any) -> None:
    """Their replies are in the response cache: free, and racing on them first decides with what the run knows."""
    task = fake_model(task_answer)
    other, runner = search(task, minibatch_size=5), search(task, minibatch_size=5)
    study = create_study(runner.settings)
    combo = ((1, 2),)
    study.enqueue_trial(runner.space.params_from_combo(combo))
    trial = study.ask(distributions(runner.space))
    trial.set_user_attr("claimed", True)
    other._evaluate_trial(SearchStudy(study), trial, combo, other._batch(trial.number), TrialKind.MINIBATCH, search_trial=True)
    calls_before = task.calls

    scored: list[str] = []
    iterate = runner.evaluate.iterate

    def recording(program: Any, examples: Any, *args: Any, **kwargs: Any) -> Any:
        scored.extend(ex.uid for ex in examples)
        return iterate(program, examples, *args, **kwargs)

    runner.evaluate.iterate = recording  # type: ignore[method-assign]
    result, pruned = runner._race(SearchStudy(study), combo, runner._full_order(), against_full_only=True)

    batch = {ex.uid for ex in other._batch(trial.number)}
    assert not pruned and result.score == 1.0
    assert set(scored[: len(batch)]) == batch  # the other process's examples first
    assert task.calls - calls_before == len(runner.valset) - len(batch)  # and they cost nothing


def test_a_rerun_scores_the_baseline_a_spent_budget_left_unscored(fake_model: Any) -> None:
    task = fake_model(task_answer)
    with configure(cache=False):
        whole = search(task, minibatch=False, num_trials=3).run()
    before_baseline = task.calls - whole.trial_logs[-1].num_examples

    runner = search(fake_model(task_answer), minibatch=False, num_trials=3)
    study = create_study(runner.settings)
    with context(budget=Budget(max_calls=before_baseline)), configure(cache=False):
        first = runner.run(study)
    assert first.stopped_by_budget and first.baseline_score != first.baseline_score  # NaN: never scored

    again = search(task, minibatch=False, num_trials=3)
    calls = task.calls
    with configure(cache=False):
        second = again.run(study)
    assert second.trial_logs[-1].label.startswith("baseline") and second.baseline_score == 0.0
    assert task.calls - calls == second.trial_logs[-1].num_examples  # only the baseline was scored
    assert sum(t.label.startswith("full") for t in second.trial_logs) == 3  # no search trial repeated


# ---- a study shared with other processes ----

LOSER: Any = ((0, 1),)  # no rule, two demos: wrong every time
WINNER: Any = ((1, 2),)


def test_in_a_shared_study_a_race_stops_on_the_progress_another_process_reports(fake_model: Any) -> None:
    stopped_at = {}
    for shared in (False, True):
        runner = search(fake_model(task_answer), shared=shared)
        study = create_study(runner.settings)
        study.enqueue_trial(runner.space.params_from_combo(WINNER))
        elsewhere = study.ask(distributions(runner.space))  # still running in "another process"
        elsewhere.report(1.0, 10)
        result, pruned = runner._race(SearchStudy(study), LOSER, list(runner.valset), against_full_only=False)
        stopped_at[shared] = (result.n, pruned)
    assert stopped_at[False] == (len(runner.valset), False)  # nothing finished to race against
    n, pruned = stopped_at[True]
    assert pruned and n < len(runner.valset) // 2


def _finishing_a_winner_on_the_third_call(holder: dict[str, Any]) -> Any:
    """A task model that, on its third call, tells the study a perfect full evaluation of WINNER
    (as another process finishing would); ``holder`` gets the runner and study once they exist."""
    import optuna

    def answer(messages: Any, params: Any) -> str:
        holder["calls"] = holder.get("calls", 0) + 1
        if holder["calls"] == 3:
            runner, study = holder["runner"], holder["study"]
            trial = optuna.trial.create_trial(
                params=runner.space.params_from_combo(WINNER),
                distributions=distributions(runner.space),
                value=1.0,
                user_attrs={"kind": "full", "n": len(runner.valset)},
            )
            study.add_trial(trial)
        return task_answer(messages, params)

    return answer


def test_in_a_shared_study_a_race_rereads_what_other_processes_finished_meanwhile(fake_model: Any) -> None:
    stopped_at = {}
    for shared in (False, True):
        holder: dict[str, Any] = {}
        runner = search(fake_model(_finishing_a_winner_on_the_third_call(holder)), shared=shared, poll_interval=0.0)
        study = create_study(runner.settings)
        holder.update(runner=runner, study=study)
        result, pruned = runner._race(SearchStudy(study), LOSER, list(runner.valset), against_full_only=True)
        stopped_at[shared] = (result.n, pruned)
    assert stopped_at[False] == (len(runner.valset), False)  # read once, before the winner existed
    assert stopped_at[True][1] and stopped_at[True][0] < len(runner.valset)


def test_trials_of_a_shared_study_report_their_progress(fake_model: Any) -> None:
    for shared in (False, True):
        runner = search(fake_model(task_answer), shared=shared, num_trials=4, minibatch_size=6)
        study = create_study(runner.settings)
        runner.run(study)
        minibatch = [t for t in study.trials if str(t.user_attrs.get("kind")).startswith("minibatch")]
        reported = [t for t in minibatch if t.intermediate_values]
        if not shared:
            assert not reported
            continue
        assert any(t.user_attrs["pruned"] for t in reported)
        for trial in reported:
            last = max(trial.intermediate_values)
            assert last <= trial.user_attrs["n"]
            if trial.user_attrs["kind"].endswith("-pruned"):  # stopped right after its last report
                assert last == trial.user_attrs["n"] and trial.intermediate_values[last] == trial.value
