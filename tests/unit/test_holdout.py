"""The holdout slice: where it comes from, its size, and its place in the fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from pytest_mipro import Predict
from pytest_mipro.declaration import Target
from pytest_mipro.fingerprint import examples_part
from pytest_mipro.pipeline import MIN_EXAMPLES_TO_SPLIT, split_holdout
from pytest_mipro.scoring import target_fingerprint

from ._tasks import exact_match, foods

PROGRAM = Predict("item -> kind", instructions="Label the food.")


def target(examples: int, valset: int | None = None, holdout: int | None = None) -> Target:
    pool = foods(20)
    return Target(
        name="food",
        program=PROGRAM,
        examples=pool[:examples],
        metric=exact_match,
        valset=None if valset is None else pool[examples : examples + valset],
        holdout=None if holdout is None else pool[-holdout:],
    )


def uids(examples: list) -> set[str]:  # type: ignore[type-arg]
    return {ex.uid for ex in examples}


def test_fewer_than_40_labeled_examples_get_no_holdout() -> None:
    small = target(MIN_EXAMPLES_TO_SPLIT - 1)

    split = split_holdout(small)

    assert split.source == "none" and split.examples == [] and split.search is small and split.labeled == 39


def test_a_declared_holdout_is_used_as_is_and_the_search_sees_everything_else() -> None:
    declared = target(10, holdout=6)

    split = split_holdout(declared)

    assert split.source == "fixture" and split.examples == declared.holdout and split.search is declared
    assert split.labeled == 16


def test_a_quarter_is_split_off_disjoint_from_what_the_search_sees() -> None:
    whole = target(60)

    split = split_holdout(whole)

    assert split.source == "split" and len(split.examples) == 15 and len(split.search.examples) == 45
    assert uids(split.examples).isdisjoint(uids(split.search.examples))
    assert uids(split.examples) | uids(split.search.examples) == uids(whole.examples)
    kept = [ex.uid for ex in whole.examples if ex.uid in uids(split.search.examples)]
    assert [ex.uid for ex in split.search.examples] == kept  # the search's examples keep their order


def test_the_split_depends_on_the_examples_not_their_order() -> None:
    whole = target(60)
    shuffled = Target(name="food", program=PROGRAM, examples=list(reversed(whole.examples)), metric=exact_match)

    assert uids(split_holdout(whole).examples) == uids(split_holdout(shuffled).examples)


def test_the_split_draws_from_the_valset_too_but_leaves_the_search_enough_of_each() -> None:
    lopsided = target(3, valset=57)

    split = split_holdout(lopsided)

    assert len(split.examples) == 15
    assert len(split.search.examples) >= 2 and split.search.valset is not None and len(split.search.valset) >= 1
    assert len(split.search.examples) + len(split.search.valset) == 45


def test_the_fingerprint_covers_a_declared_holdout_and_is_unchanged_without_one() -> None:
    plain, declared, other = target(10), target(10, holdout=6), target(10, holdout=5)

    def ids(items: list) -> list:  # type: ignore[type-arg]
        return [[ex.uid, list(ex.input_keys or ())] for ex in items]

    # The digest entries locked before holdouts existed were made with.
    before = hashlib.sha256(
        json.dumps({"examples": ids(plain.examples), "valset": None}, sort_keys=True).encode()
    ).hexdigest()[:16]

    assert examples_part(plain.examples, None) == before
    parts = {t.holdout and len(t.holdout): target_fingerprint(t, "fake/x").parts["examples"] for t in (plain, declared, other)}
    assert len(set(parts.values())) == 3


def test_a_split_that_leaves_fewer_validation_examples_than_a_minibatch_turns_minibatches_off() -> None:
    # 48 examples: 12 held out, MIPROv2 validates on 80% of the other 36 = 28 < 35 (the default
    # minibatch), which it would refuse; the author had 38, enough, before the split.
    small = replace(target(48), options={"num_trials": 4})
    roomy = replace(target(60), options={"num_trials": 4})

    assert split_holdout(small).search.options == {"num_trials": 4, "minibatch": False}
    assert split_holdout(roomy).search.options == {"num_trials": 4}  # 45 left, 36 validate: minibatches fit
    explicit = replace(target(60), options={"minibatch_size": 50})  # 36 validate < 50
    assert split_holdout(explicit).search.options == {"minibatch_size": 50, "minibatch": False}
