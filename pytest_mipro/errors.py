"""Exceptions raised by pytest_mipro. Every message names the file, field or value at fault."""

from __future__ import annotations


class MiproError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(MiproError, ValueError):
    """A setting, argument or option has a value that cannot work."""


class SignatureError(MiproError, ValueError):
    """A signature string or class is malformed."""


class LMError(MiproError):
    """A language-model call failed after its retries.

    ``unavailable``: the provider did not answer (rate limits, timeouts, server or connection
    errors that outlasted the retries, or a rejected key), as opposed to a request it refused
    (say, a prompt longer than the model's context): an answer that never came is not a
    wrong answer, so it is never scored.
    """

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class ParseError(MiproError):
    """A model reply could not be parsed into the signature's output fields."""

    def __init__(self, message: str, *, reply: str) -> None:
        super().__init__(message)
        self.reply = reply


class LockfileError(MiproError):
    """The lockfile is malformed or cannot be written."""


class BudgetExceeded(MiproError):
    """The optimizer's LM-call or cost budget ran out (caught by the search, which stops cleanly)."""
