from __future__ import annotations

import random
from typing import Any

import pytest

from pytest_mipro import Example, MIPROv2, Predict, configure
from pytest_mipro.optimizer.bootstrap import Bootstrapper
from pytest_mipro.optimizer.demo_sets import (
    DemoPicker,
    avoid_majority_last,
    interleave_labels,
    is_label_set,
    label_keys,
)

from ._tasks import exact_match, fields_of

INTENTS = ("music", "weather", "book", "film", "food", "playlist", "rating")


def intents(per_label: dict[str, int]) -> list[Example]:
    """Labeled requests, grouped by label (the worst order for a walk that keeps the given order)."""
    return [
        Example(text=f"{label} request {i}", intent=label).with_inputs("text")
        for label, n in per_label.items()
        for i in range(n)
    ]


def skewed() -> list[Example]:
    """Seven intents, one of them holding most of the trainset."""
    return intents({"music": 30, **{label: 3 for label in INTENTS[1:]}})


def labels(demos: list[Example]) -> list[str]:
    return [str(d["intent"]) for d in demos]


def test_outputs_that_repeat_among_few_values_are_a_label_set() -> None:
    train = skewed()
    assert label_keys(train) == ("intent",)
    assert is_label_set(train, ("intent",))


def test_free_text_outputs_are_not_a_label_set() -> None:
    answers = [Example(q=f"question {i}", a=f"answer number {i}").with_inputs("q") for i in range(20)]
    assert not is_label_set(answers, label_keys(answers))
    long_labels = [Example(q=f"q{i}", a=("x" * 50) + str(i % 2)).with_inputs("q") for i in range(20)]
    assert not is_label_set(long_labels, label_keys(long_labels))


def test_interleaving_takes_each_label_in_turn_and_keeps_every_example() -> None:
    train = skewed()
    walk = interleave_labels(train, ("intent",), random.Random(3))
    assert sorted(d.uid for d in walk) == sorted(d.uid for d in train)
    assert len(set(labels(walk[:7]))) == 7  # the first round holds every label once
    assert labels(walk[-20:]) == ["music"] * 20  # the one big label is left over at the end


def test_different_seeds_lead_with_different_labels() -> None:
    firsts = {labels(interleave_labels(skewed(), ("intent",), random.Random(seed)))[0] for seed in range(20)}
    assert len(firsts) >= 4


def test_the_last_demo_never_carries_a_strict_majority_label() -> None:
    music, weather = intents({"music": 2}), intents({"weather": 1})
    ordered = avoid_majority_last([music[0], weather[0], music[1]], ("intent",))
    assert labels(ordered) == ["music", "music", "weather"]


def test_arranging_keeps_the_order_among_equally_frequent_labels() -> None:
    demos = intents({"film": 1, "food": 1, "book": 1})
    assert avoid_majority_last(demos, ("intent",)) == demos


def test_labeled_sets_cover_distinct_labels_where_random_samples_repeat_the_big_one() -> None:
    train = skewed()
    cover = DemoPicker(train, "cover_labels")
    plain = DemoPicker(train, "random")
    assert cover.by_labels and not plain.by_labels
    for seed in range(10):
        assert len(set(labels(cover.labeled(train, 4, random.Random(seed))))) == 4
    repeats = sum(len(set(labels(plain.labeled(train, 4, random.Random(seed))))) < 4 for seed in range(10))
    assert repeats > 0  # the baseline this strategy improves on


def test_fill_ups_prefer_labels_the_set_lacks() -> None:
    train = skewed()
    picker = DemoPicker(train, "cover_labels")
    have = intents({"music": 2})
    rest = [ex for ex in interleave_labels(train, ("intent",), random.Random(0)) if ex not in have]
    fill = picker.fill(have, rest, 3)
    assert "music" not in labels(fill) and len(set(labels(fill))) == 3


def test_random_strategy_keeps_dspys_picks() -> None:
    train = skewed()
    picker = DemoPicker(train, "random")
    assert picker.labeled(train, 4, random.Random(5)) == random.Random(5).sample(train, 4)
    rng, expected = random.Random(7), list(train)
    random.Random(7).shuffle(expected)
    assert picker.walk(train, rng) == expected
    assert picker.walk(train, None) == train


def test_unknown_strategy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"demo_set_strategy='stratified' is not one of 'random', 'cover_labels'"):
        MIPROv2(exact_match, demo_set_strategy="stratified")  # type: ignore[arg-type]


def always_right(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return fields_of(messages[-1])["text"].split()[0]


def test_bootstrapped_sets_cover_the_labels_and_end_on_a_rare_one(fake_model: Any) -> None:
    configure(lm=fake_model(always_right).lm(), cache=False)
    train = skewed()

    def sets(strategy: str) -> list[list[Example]]:
        boot = Bootstrapper(student=Predict("text -> intent"), trainset=train, metric=intent_match,
                            rng=random.Random(9), picker=DemoPicker(train, strategy))  # type: ignore[arg-type]
        return boot.demo_sets(8, 4)["self"][1:]

    covered = sets("cover_labels")
    assert all(len(set(labels(s))) == len(s) for s in covered)  # no label twice in a set
    assert len({label for s in covered for label in labels(s)}) == 7  # all labels tried across the sets
    assert any(len(set(labels(s))) < len(s) for s in sets("random"))  # the big label repeats in dspy's


def intent_match(example: Example, prediction: Any, trace: Any = None) -> bool:
    return str(prediction.intent).strip() == example["intent"]
