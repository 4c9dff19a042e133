"""What the application runs in production: the programs with their locked prompts."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pytest_mipro import Module, Predict

from .escalation import Escalation
from .triage import triage

LOCKFILE = Path(__file__).resolve().parent.parent / "prompts.lock"


@lru_cache(maxsize=4)  # loaded once per lockfile, not per ticket
def load_programs(lockfile: str | Path = LOCKFILE) -> tuple[Predict, Module]:
    """Copies of both programs with the instructions and demos locked by `pytest --mipro-optimize`."""
    router = triage.deepcopy().load_lock(lockfile, "triage")
    escalation = Escalation().load_lock(lockfile, "escalation")
    return router, escalation  # type: ignore[return-value]


def handle_ticket(ticket: str, lockfile: str | Path = LOCKFILE) -> dict[str, str]:
    """Team, product and priority for one ticket."""
    router, escalation = load_programs(lockfile)
    flags = escalation(ticket=ticket)
    return {"team": router(ticket=ticket).team.strip().lower(), "product": flags.product, "priority": flags.priority}
