"""Run-time configuration: which LM programs call, the cache, and per-call context.

``configure(lm=..., prompt_model=...)`` sets process-wide defaults and also works as a
context manager that restores the previous values on exit. ``context(...)`` overrides
values for the current thread or task only (thread pools started by this package copy it).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .lm.budget import Budget
    from .lm.client import LM


@dataclass(frozen=True)
class Settings:
    """Values read by programs and LMs at call time."""

    lm: LM | None = None
    prompt_model: LM | None = None
    cache: bool = True
    cache_dir: str | None = None
    sample_id: int | None = None
    budget: Budget | None = None
    trace: list[object] | None = field(default=None, compare=False)


_GLOBAL = [Settings()]
_OVERRIDE: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("pytest_mipro_settings", default=None)
_NAMES = {f.name for f in fields(Settings)}


def current() -> Settings:
    """The settings in force for this thread or task."""
    return _OVERRIDE.get() or _GLOBAL[-1]


class _Restorer:
    """Returned by :func:`configure`; using it in ``with`` restores the previous settings."""

    def __init__(self, previous: Settings) -> None:
        self._previous = previous

    def __enter__(self) -> Settings:
        return _GLOBAL[-1]

    def __exit__(self, *exc: object) -> None:
        _GLOBAL[-1] = self._previous


def configure(**changes: Any) -> _Restorer:
    """Set process-wide defaults, e.g. ``configure(lm=LM("openai/gpt-4o-mini"))``.

    Accepts model strings as well as LM objects for ``lm`` and ``prompt_model``.
    """
    previous = _GLOBAL[-1]
    _GLOBAL[-1] = replace(previous, **_checked(changes))
    return _Restorer(previous)


@contextmanager
def context(**changes: Any) -> Iterator[Settings]:
    """Override settings for the current thread or task only, inside a ``with`` block."""
    new = replace(current(), **_checked(changes))
    token = _OVERRIDE.set(new)
    try:
        yield new
    finally:
        _OVERRIDE.reset(token)


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - _NAMES)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known settings are {sorted(_NAMES)}")
    for key in ("lm", "prompt_model"):
        if isinstance(changes.get(key), str):
            from .lm.client import LM

            changes[key] = LM(changes[key])
    return changes
