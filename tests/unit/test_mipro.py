from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from pytest_mipro import ChainOfThought, Example, MIPROv2, Module, Predict, Prediction, configure
from pytest_mipro.optimizer.presets import AUTO_PRESETS, num_trials_for
from pytest_mipro.optimizer.study import TrialKind

from ._tasks import RULE, WORDS, InFlight, asked_for, exact_match, fields_of, foods, partly_right, prompt_answer, task_answer


@pytest.fixture
def task(fake_model: Any) -> Any:
    return fake_model(task_answer, name="task")


@pytest.fixture
def prompt(fake_model: Any) -> Any:
    return fake_model(prompt_answer, name="prompt")


def optimizer(task: Any, prompt: Any | None, **kwargs: Any) -> MIPROv2:
    return MIPROv2(
        metric=exact_match,
        task_model=task.lm(),
        prompt_model=prompt.lm() if prompt is not None else None,
        **kwargs,
    )


def student() -> Predict:
    return Predict("item -> kind", instructions="Classify the item.")


# ---- validation errors: the same messages as dspy.MIPROv2 ----


@pytest.mark.parametrize("confidence", [0.3, 1.0, 2, "light"])
def test_race_confidence_out_of_range_is_a_clear_error(confidence: Any) -> None:
    with pytest.raises(ValueError, match=rf"race_confidence must be 'auto', None or in \[0\.5, 1\), got {confidence!r}"):
        MIPROv2(metric=exact_match, race_confidence=confidence)


def test_invalid_auto() -> None:
    with pytest.raises(ValueError, match=r"^Invalid value for auto: fast\. Must be one of \{.*'light'.*\}\.$"):
        MIPROv2(metric=exact_match, auto="fast")


@pytest.mark.parametrize(
    ("init", "compile_kwargs"),
    [({"num_candidates": 3}, {}), ({}, {"num_trials": 5}), ({"num_candidates": 3}, {"num_trials": 5})],
)
def test_auto_with_num_candidates_or_num_trials(task: Any, init: dict[str, Any], compile_kwargs: dict[str, Any]) -> None:
    opt = optimizer(task, None, auto="light", **init)
    message = (
        "If auto is not None, num_candidates and num_trials cannot be set, since they would be overridden by the "
        "auto settings. Please either set auto to None, or do not specify num_candidates and num_trials."
    )
    with pytest.raises(ValueError) as info:
        opt.compile(student(), trainset=foods(2), **compile_kwargs)
    assert str(info.value) == message
    assert task.calls == 0


@pytest.mark.parametrize(("boot", "labeled", "suggested"), [(4, 4, 10), (0, 0, 9)])
def test_auto_none_without_num_trials_suggests_one(task: Any, boot: int, labeled: int, suggested: int) -> None:
    opt = optimizer(task, None, auto=None, num_candidates=6, max_bootstrapped_demos=boot, max_labeled_demos=labeled)
    with pytest.raises(ValueError) as info:
        opt.compile(student(), trainset=foods(2))
    assert str(info.value) == (
        f"If auto is None, num_trials must also be provided. Given num_candidates=6, "
        f"we'd recommend setting num_trials to ~{suggested}."
    )


@pytest.mark.parametrize("num_trials", [None, 5])
def test_auto_none_without_num_candidates(task: Any, num_trials: int | None) -> None:
    with pytest.raises(ValueError) as info:
        optimizer(task, None, auto=None).compile(student(), trainset=foods(2), num_trials=num_trials)
    assert str(info.value) == "If auto is None, num_candidates must also be provided."


def test_minibatch_larger_than_valset(task: Any) -> None:
    opt = optimizer(task, None, auto=None, num_candidates=2)
    with pytest.raises(ValueError) as info:
        opt.compile(student(), trainset=foods(1), valset=foods(2)[6:], num_trials=2, minibatch_size=7)
    assert str(info.value) == "Minibatch size cannot exceed the size of the valset. Valset size: 6."
    assert task.calls == 0


def test_minibatch_size_is_not_checked_without_minibatches(task: Any, prompt: Any) -> None:
    opt = optimizer(task, prompt, auto=None, num_candidates=2)
    program = opt.compile(student(), trainset=foods(1), valset=foods(2)[6:], num_trials=1, minibatch=False)
    assert 0.0 <= program.score <= 1.0


def test_requires_permission_to_run(task: Any) -> None:
    with pytest.raises(ValueError) as info:
        optimizer(task, None).compile(student(), trainset=foods(2), requires_permission_to_run=True)
    assert str(info.value) == (
        "User confirmation is removed from MIPROv2. Please remove the 'requires_permission_to_run' argument."
    )


def test_empty_trainset(task: Any) -> None:
    with pytest.raises(ValueError, match=r"^Trainset cannot be empty\.$"):
        optimizer(task, None).compile(student(), trainset=[])


def test_one_example_without_valset(task: Any) -> None:
    with pytest.raises(ValueError, match=r"^Trainset must have at least 2 examples if no valset specified\.$"):
        optimizer(task, None).compile(student(), trainset=foods(1)[:1])


def test_examples_must_mark_their_inputs(task: Any) -> None:
    with pytest.raises(ValueError, match=r"trainset\[0\] must be an Example with its inputs marked"):
        optimizer(task, None).compile(student(), trainset=[Example(item="apple", kind="fruit")] * 3)


# ---- presets, trial counts, split ----


@pytest.mark.parametrize(
    ("auto", "table"),
    [
        ("light", {(1, False): 10, (2, False): 20, (3, False): 31, (1, True): 9}),
        ("medium", {(1, False): 18, (2, False): 28, (3, False): 43, (1, True): 18}),
        ("heavy", {(1, False): 27, (2, False): 33, (3, False): 50, (1, True): 27}),
    ],
)
def test_trial_count_table(auto: str, table: dict[tuple[int, bool], int]) -> None:
    n = AUTO_PRESETS[auto].num_candidates
    for (predictors, zero_shot), trials in table.items():
        assert num_trials_for(predictors, n, zero_shot=zero_shot) == trials


def test_presets() -> None:
    assert {k: (p.num_candidates, p.val_size, p.race_confidence) for k, p in AUTO_PRESETS.items()} == {
        "light": (6, 100, 0.85),
        "medium": (12, 300, 0.95),
        "heavy": (18, 1000, 0.95),
    }


@pytest.mark.parametrize(
    ("init", "expected"),
    [
        ({}, 0.85),  # auto="light" by default
        ({"auto": "medium"}, 0.95),
        ({"auto": None, "num_candidates": 2}, 0.95),
        ({"race_confidence": 0.99}, 0.99),
        ({"race_confidence": None}, None),
    ],
)
def test_the_search_races_at_the_preset_s_confidence_unless_one_is_given(
    task: Any, prompt: Any, monkeypatch: pytest.MonkeyPatch, init: dict[str, Any], expected: float | None
) -> None:
    from pytest_mipro.optimizer.search import BayesianSearch

    used: list[float | None] = []
    run = BayesianSearch.run

    def spy(self: BayesianSearch, *args: Any, **kwargs: Any) -> Any:
        used.append(self.settings.race_confidence)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(BayesianSearch, "run", spy)
    opt = optimizer(task, prompt, max_bootstrapped_demos=1, max_labeled_demos=1, **init)
    manual = {"num_trials": 2, "minibatch": False} if init.get("auto", "light") is None else {}
    opt.compile(student(), trainset=foods(2), **manual)
    assert used == [expected]


def test_default_split_validates_on_the_last_80_percent(task: Any, prompt: Any) -> None:
    data = foods(2)
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=1, max_labeled_demos=1)
    opt.compile(student(), trainset=data)
    result = opt.last_result
    assert result is not None
    assert result.valset_ids == [ex.uid for ex in data[-9:]]  # int(0.8 * 12) = 9, in order
    assert result.valset_size == 9


# ---- runs ----


def first_proposal_knows_the_rule(fake_model: Any) -> Any:
    """A prompt model whose first proposal holds the rule and whose later ones do not."""
    proposals: list[str] = []

    def respond(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        if asked_for(messages) != "Proposed instruction":
            return prompt_answer(messages, params)
        proposals.append("x")
        if len(proposals) == 1:
            return f"Classify the food; {RULE} applies."
        return f"Classify the food carefully (draw {params.get('seed')})."

    return fake_model(respond, name="prompt")


def test_light_finds_the_known_optimum(fake_model: Any, task: Any) -> None:
    prompt = first_proposal_knows_the_rule(fake_model)
    # Demo sets hold at most two demos, too few for the task model: only the rule helps.
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=2, max_labeled_demos=2)
    program = opt.compile(student(), trainset=foods(4))
    result = opt.last_result
    assert result is not None
    assert result.baseline_score == 0.0
    assert result.score == 1.0 and program.score == 1.0
    assert RULE in program.instructions
    assert sum(RULE in text for text in result.instruction_candidates["self"]) == 1
    assert result.num_trials == 10
    assert len(result.instruction_candidates["self"]) == 3
    assert all(len(s) <= 2 for s in result.demo_candidates["self"])


def test_light_finds_the_optimum_through_demos(task: Any, fake_model: Any) -> None:
    prompt = fake_model(lambda m, p: "Classify." if asked_for(m) == "Proposed instruction" else prompt_answer(m, p))
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=4, max_labeled_demos=4)
    program = opt.compile(student(), trainset=foods(4))
    assert program.score == 1.0 and len(program.demos) >= 3
    assert RULE not in program.instructions


def test_same_seed_and_warm_cache_repeat_the_run_with_no_calls(task: Any, prompt: Any) -> None:
    def run() -> Any:
        opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=2, max_labeled_demos=2)
        program = opt.compile(student(), trainset=foods(4))
        return program, opt.last_result

    first_program, first = run()
    calls = (task.calls, prompt.calls)
    second_program, second = run()
    assert (task.calls, prompt.calls) == calls
    assert second.total_calls == 0 and second.prompt_model_total_calls == 0
    assert second.task_usage.cache_hits > 0
    assert second_program.dump_state() == first_program.dump_state()
    assert (second.score, second.params, second.instruction_candidates) == (first.score, first.params, first.instruction_candidates)
    assert [(t.kind, t.params, t.score) for t in second.trial_logs] == [(t.kind, t.params, t.score) for t in first.trial_logs]


def test_seed_zero_is_honoured(task: Any, prompt: Any) -> None:
    def candidates(**seeds: Any) -> list[str]:
        init_seed = seeds.pop("init", 9)
        opt = optimizer(task, prompt, auto="light", seed=init_seed, max_bootstrapped_demos=1, max_labeled_demos=1)
        opt.compile(student(), trainset=foods(2), **seeds)
        assert opt.last_result is not None
        return opt.last_result.instruction_candidates["self"]

    zero = candidates(seed=0)
    assert zero != candidates(seed=9)  # seed=0 is not mistaken for "unset"
    assert zero == candidates(seed=0) == candidates(init=0)


def test_zero_shot_searches_instructions_only(task: Any, prompt: Any) -> None:
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=0, max_labeled_demos=0)
    program = opt.compile(student(), trainset=foods(4))
    result = opt.last_result
    assert result is not None
    assert result.num_trials == 9
    assert len(result.instruction_candidates["self"]) == 6
    assert all(set(t.params) == {"0_predictor_instruction"} for t in result.trial_logs)
    assert program.demos == [] and RULE in program.instructions and program.score == 1.0
    proposals = [m for m in prompt.messages if asked_for(m) == "Proposed instruction"]
    assert len(proposals) == 5


def test_labeled_only_run_works(task: Any, fake_model: Any) -> None:
    prompt = fake_model(lambda m, p: "Classify." if asked_for(m) == "Proposed instruction" else prompt_answer(m, p))
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=0, max_labeled_demos=3)
    program = opt.compile(student(), trainset=foods(4))
    result = opt.last_result
    assert result is not None
    sets = result.demo_candidates["self"]
    assert sets[0] == [] and len(sets) > 2
    assert all(not d.get("augmented") for s in sets for d in s)
    assert program.score == 1.0 and len(program.demos) == 3


def test_total_calls_are_the_real_calls(task: Any, prompt: Any) -> None:
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=2, max_labeled_demos=2)
    program = opt.compile(student(), trainset=foods(4))
    result = opt.last_result
    assert result is not None
    assert result.prompt_model_total_calls == prompt.calls > 0
    assert result.total_calls == task.calls + prompt.calls
    assert program.total_calls == result.total_calls
    assert program.prompt_model_total_calls == prompt.calls


def test_total_calls_when_the_task_model_also_writes_instructions(fake_model: Any) -> None:
    def both(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        return task_answer(messages, params) if asked_for(messages) == "Kind" else prompt_answer(messages, params)

    model = fake_model(both)
    opt = optimizer(model, None, auto="light", max_bootstrapped_demos=2, max_labeled_demos=2)
    opt.compile(student(), trainset=foods(4))
    result = opt.last_result
    assert result is not None
    proposer_calls = sum(asked_for(m) != "Kind" for m in model.messages)
    assert result.total_calls == model.calls
    assert result.prompt_model_total_calls == proposer_calls > 0


def test_budget_stops_cleanly_with_the_best_so_far(task: Any, prompt: Any) -> None:
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=2, max_labeled_demos=2, max_lm_calls=36)
    program = opt.compile(student(), trainset=foods(4))
    result = opt.last_result
    assert result is not None
    assert result.stopped_by_budget
    assert task.calls + prompt.calls == result.total_calls <= 36
    searched = [t for t in result.trial_logs if t.kind is not TrialKind.BASELINE]
    assert 0 < len(searched) < result.num_trials
    full = [t.score for t in result.trial_logs if t.kind in (TrialKind.BASELINE, TrialKind.FULL) and not t.pruned]
    assert program.score == max(full)
    assert program.dump_state() == result.candidates[0].program.dump_state()


def test_budget_spent_before_any_program_was_scored_returns_the_student(task: Any, prompt: Any) -> None:
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=2, max_labeled_demos=2, max_lm_calls=3)
    program = opt.compile(student(), trainset=foods(4))
    assert opt.last_result is not None and opt.last_result.stopped_by_budget
    assert program.instructions == "Classify the item." and program.demos == []
    assert task.calls + prompt.calls == 3


def test_result_attributes_and_score_ranges(task: Any, prompt: Any) -> None:
    original = student()
    opt = optimizer(task, prompt, auto=None, num_candidates=3)
    program = opt.compile(original, trainset=foods(1), valset=foods(3)[6:], num_trials=6, minibatch_size=5, minibatch_full_eval_steps=2)
    result = opt.last_result
    assert result is not None
    kinds = [t["kind"] for t in program.trial_logs]
    assert kinds[-1] == "baseline" and kinds.count("minibatch") == 6
    assert "full" in kinds
    assert all(0.0 <= t["score"] <= 1.0 for t in program.trial_logs)
    scores = [c["score"] for c in program.candidate_programs]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert program.score == scores[0] and 0.0 <= program.baseline_score <= 1.0
    assert len(program.mb_candidate_programs) == 6
    assert original.instructions == "Classify the item." and original.demos == []  # the student is untouched


def test_log_dir_gets_candidate_programs_and_trial_logs(task: Any, prompt: Any, tmp_path: Path) -> None:
    opt = optimizer(task, prompt, auto=None, num_candidates=2, log_dir=str(tmp_path / "logs"))
    program = opt.compile(student(), trainset=foods(1), valset=foods(2)[6:], num_trials=3, minibatch=False)
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert "candidate_00.json" in files and "trial_logs.json" in files
    best = student().load(tmp_path / "logs" / "candidate_00.json")
    assert best.dump_state() == program.dump_state()
    logs = json.loads((tmp_path / "logs" / "trial_logs.json").read_text())
    assert [t["kind"] for t in logs] == [t["kind"] for t in program.trial_logs]


class Pipeline(Module):
    def __init__(self) -> None:
        self.describe = Predict("item -> description", instructions="Describe the item.")
        self.classify = ChainOfThought("description -> kind", instructions="Name its kind.")

    def forward(self, item: str) -> Prediction:
        return self.classify(description=self.describe(item=item).description)


def pipeline_answer(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The classifier answers right only if the describer was told the rule (it then names the food)."""
    asked = fields_of(messages[-1])
    if "item" in asked:
        food = asked["item"].split()[0]
        return f"the {food}" if RULE in messages[0]["content"] else "some food"
    named = asked["description"].split()[-1]
    return f"Reasoning: it is {named}\nKind: {WORDS.get(named, 'unknown')}"


def test_two_predictor_program(fake_model: Any, prompt: Any, tmp_path: Path) -> None:
    task = fake_model(pipeline_answer)
    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=1, max_labeled_demos=1)
    program = opt.compile(Pipeline(), trainset=foods(1), valset=foods(2)[6:])
    result = opt.last_result
    assert result is not None
    assert result.num_trials == 20
    assert set(result.instruction_candidates) == {"describe", "classify"}
    assert set(result.params) == {f"{i}_predictor_{k}" for i in (0, 1) for k in ("instruction", "demos")}
    assert program.score == 1.0 and RULE in program.describe.instructions
    program.save(tmp_path / "pipeline.yaml")
    assert Pipeline().load(tmp_path / "pipeline.yaml").dump_state() == program.dump_state()
    assert math.isclose(result.score, program.score)


def _right_by_luck_and_skill(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return partly_right(messages, per_demo=25, max_demos=2)


@pytest.mark.parametrize("answer", [task_answer, _right_by_luck_and_skill])
def test_threads_do_not_change_the_result(fake_model: Any, prompt: Any, answer: Any) -> None:
    task = fake_model(answer, name="task")

    def run(threads: int) -> list[tuple[str, dict[str, int], float, int]]:
        opt = optimizer(task, prompt, auto="light", num_threads=threads, max_bootstrapped_demos=2, max_labeled_demos=2)
        with configure(cache=False):
            opt.compile(student(), trainset=foods(6))
        assert opt.last_result is not None
        return [(t.label, t.params, t.score, t.num_examples) for t in opt.last_result.trial_logs]

    serial = run(1)
    assert run(4) == serial
    if answer is _right_by_luck_and_skill:
        assert any(kind.endswith("-pruned") and n % 4 for kind, _, _, n in serial)  # stopped inside a window of 4


def test_no_prompt_is_paid_for_twice_in_a_run(task: Any, prompt: Any) -> None:
    opt = optimizer(task, prompt, auto=None, num_candidates=4)
    with configure(cache=False):
        opt.compile(
            student(), trainset=foods(2), valset=foods(4)[12:], num_trials=12, minibatch_size=6, minibatch_full_eval_steps=3
        )
    result = opt.last_result
    assert result is not None and "full" in [t.label for t in result.trial_logs]
    for fake in (task, prompt):
        keys = [(tuple(m["content"] for m in messages), params.get("seed")) for messages, params in fake.requests]
        assert len(keys) == len(set(keys))
    assert result.total_calls == task.calls + prompt.calls


def test_total_calls_include_teacher_and_pinned_models(task: Any, prompt: Any, fake_model: Any) -> None:
    teacher = fake_model(task_answer, name="teacher")
    pinned = fake_model(lambda m, p: "Description: food", name="pinned")

    class Described(Module):
        def __init__(self) -> None:
            self.describe = Predict("item -> description", lm=pinned.lm())
            self.classify = Predict("item, description -> kind")

        def forward(self, item: str) -> Prediction:
            return self.classify(item=item, description=self.describe(item=item).description)

    opt = optimizer(task, prompt, auto="light", max_bootstrapped_demos=2, max_labeled_demos=2, teacher_settings={"lm": teacher.lm()})
    program = opt.compile(Described(), trainset=foods(2))
    assert teacher.calls > 0 and pinned.calls > 0
    assert program.total_calls == task.calls + prompt.calls + teacher.calls + pinned.calls
    assert program.prompt_model_total_calls == prompt.calls


def test_one_time_steps_use_the_waiting_peers_threads_and_find_the_same_candidates(
    fake_model: Any, prompt: Any, tmp_path: Path
) -> None:
    from pytest_mipro.optimizer.checkpoint import Checkpoint

    in_flight = InFlight()

    def slow_task(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        in_flight.wait(0.02)
        return task_answer(messages, params)

    found = {}
    for peers in (1, 3):
        in_flight.peak = 0
        opt = MIPROv2(
            metric=exact_match,
            task_model=fake_model(slow_task, name="task").lm(),
            prompt_model=prompt.lm(),
            auto=None,
            num_candidates=3,
            checkpoint=Checkpoint(tmp_path / f"peers-{peers}", peers=peers),
        )
        with configure(cache=False):
            opt.compile(student(), trainset=foods(2), valset=foods(4)[12:], num_trials=2, minibatch=False)
        assert opt.last_result is not None
        found[peers] = (opt.last_result.instruction_candidates, opt.last_result.demo_candidates, in_flight.peak)
    assert found[1][:2] == found[3][:2]  # a sequential walk's demos, the same draws of instructions
    assert (found[1][2], found[3][2]) == (1, 3)  # the search itself stays on one thread


def test_the_prompt_model_is_asked_about_data_and_program_while_demos_are_bootstrapped(fake_model: Any) -> None:
    import threading

    prompt_asked = threading.Event()
    first_task_call_saw_it: list[bool] = []

    def prompt_reply(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        prompt_asked.set()
        return prompt_answer(messages, params)

    def task_reply(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        if not first_task_call_saw_it:  # a teacher run: bootstrapping is the first stage
            first_task_call_saw_it.append(prompt_asked.wait(timeout=5))
        return task_answer(messages, params)

    opt = optimizer(fake_model(task_reply), fake_model(prompt_reply), auto=None, num_candidates=3)
    with configure(cache=False):
        opt.compile(student(), trainset=foods(2), valset=foods(4)[12:], num_trials=2, minibatch=False)
    assert first_task_call_saw_it == [True]
