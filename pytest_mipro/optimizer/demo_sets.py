"""How stage 1 picks and orders the examples of a candidate demo set.

Two strategies, chosen by ``MIPROv2(demo_set_strategy=...)``:

- ``"random"``: dspy.MIPROv2's way. Bootstrapping walks a seeded shuffle of the trainset, and
  labeled fill-ups are a random sample.
- ``"cover_labels"``: where the outputs of the trainset are a small set of labels (a
  classification task), each set is drawn across the labels: the walk takes the labels in
  turn (each from its own shuffle, the labels in a seeded order per set, so different sets
  lead with different labels), fill-ups prefer labels the set does not have yet, and the
  finished set is ordered so that it does not end on its most frequent label. Few-shot
  prompts over-predict the label most frequent among the demos and the label of the last
  demo (majority-label and recency bias: Zhao et al. 2021, "Calibrate Before Use"); a set
  that repeats one class, or misses most, spends the calls of its trials on that bias.
  Where the outputs are not a small label set (free text), it behaves as ``"random"``.

Set sizes, the number of sets and the number of teacher runs per success are the same for
both; only which examples are tried, and their order, differ.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from ..example import Example

DemoSetStrategy = Literal["random", "cover_labels"]
DEMO_SET_STRATEGIES: tuple[DemoSetStrategy, ...] = ("random", "cover_labels")

MAX_LABELS = 20  # more distinct outputs than this is not a label set
MAX_LABEL_CHARS = 40  # nor are long outputs (summaries, answers)

Label = tuple[str, ...]


def check_strategy(value: object) -> DemoSetStrategy:
    """``value`` if it names a strategy; a ValueError naming the choices otherwise."""
    if value not in DEMO_SET_STRATEGIES:
        raise ValueError(f"demo_set_strategy={value!r} is not one of {', '.join(map(repr, DEMO_SET_STRATEGIES))}.")
    return value


def label_keys(examples: Sequence[Example]) -> tuple[str, ...]:
    """The output fields every example has (its non-input fields), sorted."""
    keys: set[str] | None = None
    for ex in examples:
        mine = {k for k in ex.labels() if k != "augmented"}
        keys = mine if keys is None else keys & mine
    return tuple(sorted(keys or ()))


def label_of(example: Example, keys: Sequence[str]) -> Label:
    """The example's values of ``keys``, normalized, as one hashable label."""
    return tuple(str(example.get(k, "")).strip().lower() for k in keys)


def is_label_set(examples: Sequence[Example], keys: Sequence[str]) -> bool:
    """Whether the values of ``keys`` form a small set of labels that repeat (a classification task)."""
    if not keys or len(examples) < 2:
        return False
    labels = {label_of(ex, keys) for ex in examples}
    if not 2 <= len(labels) <= min(MAX_LABELS, len(examples) // 2):
        return False
    return all(len(value) <= MAX_LABEL_CHARS for label in labels for value in label)


class DemoPicker:
    """Orders the trainset for a bootstrap walk, picks fill-ups and arranges a finished set."""

    def __init__(self, trainset: Sequence[Example], strategy: DemoSetStrategy = "random") -> None:
        self.strategy = check_strategy(strategy)
        self.keys = label_keys(trainset)
        self.by_labels = strategy == "cover_labels" and is_label_set(trainset, self.keys)

    def walk(self, trainset: Sequence[Example], rng: random.Random | None) -> list[Example]:
        """The order a bootstrap walk takes: as given (``rng`` None), shuffled, or across the labels."""
        if not self.by_labels:
            order = list(trainset)
            if rng is not None:
                rng.shuffle(order)
            return order
        return interleave_labels(trainset, self.keys, rng or random.Random(0))

    def labeled(self, trainset: Sequence[Example], k: int, rng: random.Random) -> list[Example]:
        """``k`` labeled demos drawn from the trainset."""
        if not self.by_labels:
            return rng.sample(list(trainset), min(k, len(trainset)))
        return self.arrange(interleave_labels(trainset, self.keys, rng)[:k])

    def fill(self, have: Sequence[Example], rest: Sequence[Example], k: int) -> list[Example]:
        """``k`` labeled fill-ups from ``rest`` (in walk order) for a set that already has ``have``."""
        if not self.by_labels:
            return random.Random(0).sample(list(rest), min(k, len(rest)))
        counts = Counter(label_of(d, self.keys) for d in have)
        left = list(rest)
        chosen: list[Example] = []
        for _ in range(min(k, len(rest))):
            pick = min(left, key=lambda ex: counts[label_of(ex, self.keys)])  # first of the rarest labels so far
            counts[label_of(pick, self.keys)] += 1
            left.remove(pick)
            chosen.append(pick)
        return chosen

    def arrange(self, demos: list[Example]) -> list[Example]:
        """The finished set's order (unchanged unless picking by labels)."""
        return avoid_majority_last(demos, self.keys) if self.by_labels else demos


def interleave_labels(examples: Sequence[Example], keys: Sequence[str], rng: random.Random) -> list[Example]:
    """Every example once: one of each label in turn, each label's examples shuffled by ``rng``."""
    groups: dict[Label, list[Example]] = {}
    for ex in examples:
        groups.setdefault(label_of(ex, keys), []).append(ex)
    order = list(groups)
    rng.shuffle(order)
    for label in order:
        rng.shuffle(groups[label])
    walk: list[Example] = []
    for depth in range(max(len(g) for g in groups.values())):
        walk += [groups[label][depth] for label in order if depth < len(groups[label])]
    return walk


def avoid_majority_last(demos: list[Example], keys: Sequence[str]) -> list[Example]:
    """The demos with the most frequent labels first, keeping the given order among equals.

    The last demo then carries one of the set's rarest labels, never a strict majority one.
    """
    counts = Counter(label_of(d, keys) for d in demos)
    return sorted(demos, key=lambda d: -counts[label_of(d, keys)])
