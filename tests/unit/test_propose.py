from __future__ import annotations

import inspect
import random
import re
import threading
from typing import Any

import pytest

from pytest_mipro import Budget, ChainOfThought, Example, Module, Predict, Prediction, configure, context
from pytest_mipro.optimizer._threads import alongside
from pytest_mipro.optimizer.propose import TIPS, GroundedProposer, ProposerSwitches, strip_prefix, summary_calls

from ._tasks import RULE, InFlight, asked_for, foods, prompt_answer

SWITCH_FIELDS = {
    "data_aware": ["Dataset description"],
    "program_aware": ["Program code", "Program description", "Module", "Module description"],
    "fewshot_aware": ["Task demos"],
    "tip_aware": ["Tip"],
}


class Pipeline(Module):
    def __init__(self) -> None:
        self.describe = Predict("item -> description", instructions="Describe the food.")
        self.classify = ChainOfThought("description -> kind", instructions="Name its kind.")

    def forward(self, item: str) -> Prediction:
        return self.classify(description=self.describe(item=item).description)


def demo_sets(with_boot: bool = True) -> list[list[Example]]:
    labeled = [Example(item="fig", kind="fruit")]
    boot = [Example(item=f"boot {i}", kind="fruit", augmented=True) for i in range(4)]
    return [[], labeled, boot if with_boot else labeled]


def proposer(prompt_model: Any, program: Module | None = None, **switches: bool) -> GroundedProposer:
    return GroundedProposer(
        prompt_model=prompt_model.lm(),
        program=program or Predict("item -> kind", instructions="Classify the food."),
        trainset=foods(4),
        rng=random.Random(9),
        switches=ProposerSwitches(**switches),
    )


def proposal_requests(fake: Any) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    return [(m, p) for m, p in fake.requests if asked_for(m) == "Proposed instruction"]


def labels(message: dict[str, Any]) -> set[str]:
    return set(re.findall(r"^([A-Z][a-z]+(?: [a-z]+)?):", message["content"], re.MULTILINE))


def test_candidates_start_with_the_original_and_cost_one_call_each(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    candidates = proposer(fake).propose({"self": demo_sets()}, num_candidates=4)
    assert candidates["self"][0] == "Classify the food."
    assert len(candidates["self"]) == 4
    assert all(RULE in text for text in candidates["self"][1:])
    assert len(proposal_requests(fake)) == 3  # no wasted proposal for slot 0


def test_two_predictors_get_their_own_candidates(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    sets = {"describe": demo_sets(), "classify": demo_sets()}
    candidates = proposer(fake, Pipeline()).propose(sets, num_candidates=3)
    assert candidates["describe"][0] == "Describe the food." and candidates["classify"][0] == "Name its kind."
    assert len(candidates["describe"]) == len(candidates["classify"]) == 3
    requests = proposal_requests(fake)
    assert len(requests) == 4
    modules = [re.search(r"^Module: (.*)$", m[-1]["content"], re.M).group(1) for m, _ in requests]  # type: ignore[union-attr]
    assert modules == ["Predict(item) -> description"] * 2 + ["ChainOfThought(description) -> reasoning, kind"] * 2


def test_all_switches_on_show_every_field(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    proposer(fake).propose({"self": demo_sets()}, num_candidates=6)
    seen = set().union(*(labels(m[-1]) for m, _ in proposal_requests(fake)))
    for names in SWITCH_FIELDS.values():
        assert set(names) <= seen
    assert "Basic instruction" in seen


@pytest.mark.parametrize("switch", sorted(SWITCH_FIELDS))
def test_each_switch_off_removes_its_fields(fake_model: Any, switch: str) -> None:
    fake = fake_model(prompt_answer)
    proposer(fake, **{switch: False}).propose({"self": demo_sets()}, num_candidates=6)
    requests = proposal_requests(fake)
    assert len(requests) == 5
    for messages, _ in requests:
        shown = labels(messages[-1]) | labels(messages[0])
        assert not shown & set(SWITCH_FIELDS[switch]), shown
        assert "Basic instruction" in labels(messages[-1])
    others = [name for key, names in SWITCH_FIELDS.items() if key != switch for name in names]
    seen = set().union(*(labels(m[-1]) for m, _ in requests))
    assert set(others) <= seen


def test_data_unaware_makes_no_summary_calls(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    proposer(fake, data_aware=False, program_aware=False).propose({"self": demo_sets()}, num_candidates=3)
    assert [asked_for(m) for m in fake.messages] == ["Proposed instruction"] * 2


def test_program_aware_describes_program_and_module_once(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    proposer(fake, data_aware=False).propose({"self": demo_sets()}, num_candidates=4)
    asked = [asked_for(m) for m in fake.messages]
    assert asked.count("Program description") == 1 and asked.count("Module description") == 1
    code = re.search(r"^Program code: (.*)", fake.messages[0][-1]["content"], re.M)
    assert code and "Predict(item) -> kind" in code.group(1)


def test_dataset_summary_reads_batches_of_view_data_batch_size(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    prop = GroundedProposer(
        prompt_model=fake.lm(), program=Predict("item -> kind"), trainset=foods(4), rng=random.Random(0), view_data_batch_size=10
    )
    summary = prop.dataset_summary()
    asked = [asked_for(m) for m in fake.messages]
    assert asked == ["Observations", "Observations", "Observations", "Summary"]  # 24 examples: 3 batches
    assert len(asked) == summary_calls(24, 10)
    assert fake.messages[0][-1]["content"].count("item: ") == 10
    assert summary == "Some text about the summary."


def test_complete_streak_stops_the_summary_early(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)  # every later batch answers COMPLETE
    prop = GroundedProposer(
        prompt_model=fake.lm(), program=Predict("item -> kind"), trainset=foods(20), rng=random.Random(0), view_data_batch_size=6
    )
    prop.dataset_summary()
    asked = [asked_for(m) for m in fake.messages]
    assert asked == ["Observations"] * 6 + ["Summary"]  # 1 + a streak of 5 COMPLETE, then the summary


def test_task_demos_show_only_bootstrapped_demos_up_to_three(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    proposer(fake, tip_aware=False).propose({"self": demo_sets()}, num_candidates=3)
    for messages, _ in proposal_requests(fake):
        content = messages[-1]["content"]
        assert content.count("Item: boot") == 3
        assert "fig" not in content


def test_no_bootstrapped_demos_says_so(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    proposer(fake).propose({"self": demo_sets(with_boot=False)}, num_candidates=2)
    assert "Task demos: No task demos provided." in proposal_requests(fake)[0][0][-1]["content"]


def test_tips_come_from_the_tip_list(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    proposer(fake).propose({"self": demo_sets()}, num_candidates=12)
    tips = {re.search(r"^Tip: (.*)$", m[-1]["content"], re.M) for m, _ in proposal_requests(fake)}
    shown = {t.group(1) for t in tips if t}
    assert shown and shown <= set(TIPS.values())


def test_proposals_use_init_temperature_and_distinct_samples(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    prop = proposer(fake)
    prop.init_temperature = 0.7
    candidates = prop.propose({"self": demo_sets()}, num_candidates=4)["self"]
    params = [p for _, p in proposal_requests(fake)]
    assert all(p["temperature"] == 0.7 for p in params)
    assert len({p["seed"] for p in params}) == 3
    assert len(set(candidates)) == 4


def test_same_seed_reproduces_candidates_from_the_cache(fake_model: Any) -> None:
    fake = fake_model(prompt_answer)
    first = proposer(fake).propose({"self": demo_sets()}, num_candidates=4)
    calls = fake.calls
    again = proposer(fake).propose({"self": demo_sets()}, num_candidates=4)
    assert again == first and fake.calls == calls


def test_an_unparsable_reply_loses_one_candidate_not_the_run(fake_model: Any) -> None:
    replies = iter(["", "   "])

    def sometimes_empty(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        if asked_for(messages) == "Proposed instruction":
            reply = next(replies, None)
            return prompt_answer(messages, params) if reply is None else reply
        return prompt_answer(messages, params)

    fake = fake_model(sometimes_empty)
    prop = proposer(fake)
    candidates = prop.propose({"self": demo_sets()}, num_candidates=5)["self"]
    assert len(candidates) == 3 and candidates[0] == "Classify the food."
    assert prop.failed_proposals == 2
    assert len(proposal_requests(fake)) == 4


def test_labels_the_model_echoes_are_stripped(fake_model: Any) -> None:
    fake = fake_model(lambda m, p: 'Proposed Instruction: "Sort foods by kind."' if asked_for(m) == "Proposed instruction" else "x")
    candidates = proposer(fake, data_aware=False).propose({"self": demo_sets()}, num_candidates=2)["self"]
    assert candidates[1] == "Sort foods by kind."


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Proposed Instruction: Do X.", "Do X."),
        ('**New instruction:** "Do X."', "Do X."),
        ("Improved prompt: Do X", "Do X"),
        ("Apply RULE-42: fruits grow on trees.", "Apply RULE-42: fruits grow on trees."),
        ("Important: answer with one word.", "Important: answer with one word."),
        ("'Do X.'", "Do X."),
    ],
)
def test_strip_prefix(reply: str, expected: str) -> None:
    assert strip_prefix(reply) == expected


@pytest.mark.parametrize("threads", [1, 4])
def test_a_spent_budget_keeps_the_candidates_so_far(fake_model: Any, threads: int) -> None:
    fake = fake_model(prompt_answer)
    with context(budget=Budget(max_calls=3)):
        asker = proposer(fake, data_aware=False, program_aware=False)
        asker.num_threads = threads
        candidates = asker.propose({"self": demo_sets()}, num_candidates=6)
    assert len(candidates["self"]) == 4 and fake.calls == 3  # every paid reply is kept


def test_proposals_are_asked_num_threads_at_a_time_and_do_not_depend_on_it(fake_model: Any) -> None:
    in_flight = InFlight()

    def slow(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        if asked_for(messages) == "Proposed instruction":
            in_flight.wait(0.05)
        return prompt_answer(messages, params)

    with configure(cache=False):
        serial = proposer(fake_model(prompt_answer)).propose({"self": demo_sets()}, num_candidates=6)
        threaded = proposer(fake_model(slow))
        threaded.num_threads = 4
        parallel = threaded.propose({"self": demo_sets()}, num_candidates=6)
    assert parallel == serial and len(serial["self"]) == 6  # same draws, same order
    assert in_flight.peak == 4  # five proposals, four at a time


def test_the_data_and_the_program_are_described_at_once_with_threads_and_give_the_same_candidates(fake_model: Any) -> None:
    """The dataset summary and the program description are independent chains of calls."""
    in_flight = InFlight()

    def slow(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        if asked_for(messages) != "Proposed instruction":
            in_flight.wait(0.05)
        return prompt_answer(messages, params)

    with configure(cache=False):
        serial = proposer(fake_model(slow), program=Pipeline())
        serial_candidates = serial.propose({"describe": demo_sets(), "classify": demo_sets()}, num_candidates=3)
        assert in_flight.peak == 1
        threaded = proposer(fake_model(slow), program=Pipeline())
        threaded.num_threads = 2
        threaded_candidates = threaded.propose({"describe": demo_sets(), "classify": demo_sets()}, num_candidates=3)
    assert in_flight.peak == 2  # the data chain beside the program chain, one thread each
    assert threaded_candidates == serial_candidates

    with configure(cache=False):
        wide = proposer(fake := fake_model(slow), program=Pipeline())
        wide.num_threads = 3
        assert wide.propose({"describe": demo_sets(), "classify": demo_sets()}, num_candidates=3) == serial_candidates
    assert in_flight.peak == 3
    asked = [asked_for(messages) for messages in fake.messages]
    # The modules' roles need the program's description, not the data: they are asked while
    # the data is still being described.
    assert asked.index("Module description") < asked.index("Summary")


def test_the_program_source_is_read_where_the_proposer_is_built_not_on_prepare_s_thread(
    fake_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """inspect.getsource runs ast.parse, which CPython 3.11 cannot run on two threads at once;
    prepare() runs on a background thread while the demos are bootstrapped."""
    readers: list[threading.Thread] = []
    getsource = inspect.getsource

    def spy(obj: Any) -> str:
        readers.append(threading.current_thread())
        return getsource(obj)

    monkeypatch.setattr(inspect, "getsource", spy)
    prompt = fake_model(prompt_answer)
    built = proposer(prompt, program=Pipeline())
    with alongside(built.prepare) as preparing:
        pass
    preparing.result()
    assert readers == [threading.current_thread()]
    assert any("class Pipeline(Module)" in m[-1]["content"] for m, _ in prompt.requests)
