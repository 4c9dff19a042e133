"""Prompt gates: each target must keep its locked score (run `pytest --mipro-optimize` to re-tune)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import LOCKFILE, Escalation, load_programs, triage
from pytest_mipro import Example, load_examples

DATA = Path(__file__).resolve().parent.parent / "data"


def _word(text: Any) -> str:
    words = str(text).strip().lower().split()
    return words[0].strip(".,;:!\"'") if words else ""


# The single-prompt target takes the default fixtures: mipro_examples and mipro_metric.
@pytest.fixture
def mipro_examples() -> list[Example]:
    return load_examples(DATA / "triage.yaml", inputs=["ticket"])


@pytest.fixture
def mipro_metric() -> Any:
    return lambda example, prediction, trace=None: _word(prediction.team) == example.team


@pytest.mark.mipro(triage, threshold=0.4, name="triage")
def test_triage_routes_tickets(mipro: Any) -> None:
    assert mipro.score >= 0.4
    if mipro.mode == "gate":  # under --mipro-optimize the lockfile is only written at the end
        router, _ = load_programs(LOCKFILE)
        assert router.dump_state() == mipro.program.dump_state(), "the app must run the prompts the gate scored"


# The two-step target names its own fixtures in the marker.
@pytest.fixture
def escalation_examples() -> list[Example]:
    return load_examples(DATA / "escalation.yaml", inputs=["ticket"])


@pytest.fixture
def escalation_metric() -> Any:
    def metric(example: Example, prediction: Any, trace: Any = None) -> float:
        """Half a point for the product, half for the priority."""
        return (_word(prediction.product) == example.product) / 2 + (_word(prediction.priority) == example.priority) / 2

    return metric


@pytest.mark.mipro(
    Escalation(),
    threshold=0.5,
    name="escalation",
    examples="escalation_examples",
    metric="escalation_metric",
    metric_threshold=1.0,  # only fully right runs become demos
    # Two predictors double the light preset's trials; a smaller search keeps the example quick.
    num_candidates=4,
    num_trials=6,
)
def test_escalation_flags_urgent_tickets(mipro: Any) -> None:
    assert mipro.score >= 0.5
    if mipro.mode == "gate":
        _, escalation = load_programs(LOCKFILE)
        assert escalation.dump_state() == mipro.program.dump_state()
