"""Exceptions raised by pytest_mipro. Every message names the file, field or value at fault."""

from __future__ import annotations


class MiproError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(MiproError, ValueError):
    """A setting, argument or option has a value that cannot work."""


class SignatureError(MiproError, ValueError):
    """A signature string or class is malformed."""


class LMError(MiproError):
    """A language-model call failed after its retries."""


class ParseError(MiproError):
    """A model reply could not be parsed into the signature's output fields."""

    def __init__(self, message: str, *, reply: str) -> None:
        super().__init__(message)
        self.reply = reply


class LockfileError(MiproError):
    """The lockfile is malformed or cannot be written."""


class BudgetExceeded(MiproError):
    """The optimizer's LM-call or cost budget ran out (caught by the search, which stops cleanly)."""
