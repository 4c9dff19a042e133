"""A synthetic task with a known optimum, and fake task/prompt models for it.

Items are foods to label "fruit" or "vegetable". The fake task model answers correctly only
when the instruction contains ``RULE`` or when the prompt shows at least ``min_demos``
demos; otherwise it answers "unknown". The fake prompt model answers every proposer
question by the label the adapter ends the prompt with.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from pytest_mipro import Example

RULE = "RULE-42"
WORDS = {"apple": "fruit", "pear": "fruit", "plum": "fruit", "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable"}
Messages = list[dict[str, Any]]


def foods(rounds: int) -> list[Example]:
    """``6 * rounds`` distinct labeled examples, interleaving fruits and vegetables."""
    return [Example(item=f"{word} {i}", kind=kind).with_inputs("item") for i in range(rounds) for word, kind in WORDS.items()]


def exact_match(example: Example, prediction: Any, trace: Any = None) -> bool:
    return str(prediction.kind).strip().lower() == example.kind


def fields_of(message: dict[str, Any]) -> dict[str, str]:
    """``Label: value`` lines of a message, keyed by lower-case label (multi-line values joined)."""
    found: dict[str, str] = {}
    label = None
    for line in str(message["content"]).splitlines():
        head, sep, rest = line.partition(":")
        if sep and head and len(head.split()) <= 3 and head[0].isupper():
            label = head.strip().lower()
            found[label] = rest.strip()
        elif label is not None:
            found[label] += "\n" + line
    return found


def asked_for(messages: Messages) -> str:
    """The output label the final user message ends with ("Kind", "Proposed instruction", ...)."""
    return str(messages[-1]["content"]).rstrip().splitlines()[-1].rstrip(":").strip()


def num_demos(messages: Messages) -> int:
    return sum(m["role"] == "assistant" for m in messages)


MIN_DEMOS = 3


def task_answer(messages: Messages, params: dict[str, Any]) -> str:
    """Right with the rule in the instructions or with at least ``MIN_DEMOS`` demos, else "unknown"."""
    item = fields_of(messages[-1])["item"]
    if RULE in messages[0]["content"] or num_demos(messages) >= MIN_DEMOS:
        return WORDS[item.split()[0]]
    return "unknown"


def partly_right(messages: Messages, *, per_demo: int, max_demos: int) -> str:
    """Right on a fixed share of the items (the same ones every time) that grows by ``per_demo``
    points a demo, up to ``max_demos``, and by 30 with the rule: racing stops at varied points."""
    item = fields_of(messages[-1])["item"]
    skill = 20 + per_demo * min(num_demos(messages), max_demos) + (30 if RULE in messages[0]["content"] else 0)
    luck = int(hashlib.sha256(item.encode()).hexdigest(), 16) % 100
    return WORDS[item.split()[0]] if luck < skill else "unknown"


def prompt_answer(messages: Messages, params: dict[str, Any]) -> str:
    """Canned proposer replies; each proposal names the sample id it was drawn with."""
    wanted = asked_for(messages)
    if wanted == "Proposed instruction":
        return f"Label the food as fruit or vegetable, following {RULE} (draw {params.get('seed')})."
    if wanted == "Observations" and "Prior observations:" in messages[-1]["content"]:
        return "COMPLETE"
    return f"Some text about the {wanted.lower()}."


class InFlight:
    """How many fake LM calls were in flight at once, at most (for tests of thread counts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self.peak = 0

    def wait(self, seconds: float) -> None:
        """Stand for one call that takes ``seconds``."""
        with self._lock:
            self._now += 1
            self.peak = max(self.peak, self._now)
        time.sleep(seconds)
        with self._lock:
            self._now -= 1
