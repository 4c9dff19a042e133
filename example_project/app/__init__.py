"""Brightnest support-desk helper: routes tickets and flags the urgent ones.

The prompts live in the programs below; `pytest --mipro-optimize` tunes them and writes
the winners to prompts.lock, which the app loads at run time (see ``load_programs``).
"""

from .escalation import Escalation
from .service import LOCKFILE, handle_ticket, load_programs
from .triage import TEAMS, triage

__all__ = ["LOCKFILE", "TEAMS", "Escalation", "handle_ticket", "load_programs", "triage"]
