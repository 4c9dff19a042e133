"""Thread pools that carry the caller's context (the configured LM, budget and cache)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_in_threads(fn: Callable[[T], R], items: Sequence[T], max_workers: int) -> list[Future[R]]:
    """Run ``fn(item)`` for every item on ``max_workers`` threads; the futures, in item order, once all are done.

    Each call runs in a copy of the caller's context (see :func:`submit_in_context`).
    """
    with ThreadPoolExecutor(max_workers) as pool:
        return [submit_in_context(pool, fn, item) for item in items]


def submit_in_context(pool: Executor, fn: Callable[..., R], *args: object) -> Future[R]:
    """``pool.submit(fn, *args)``, run in a copy of the caller's context, taken now: pool
    threads start with an empty one, so they would not see this run's LM or budget."""
    return pool.submit(contextvars.copy_context().run, fn, *args)


@contextlib.contextmanager
def alongside(fn: Callable[[], R]) -> Iterator[Future[R]]:
    """Run ``fn()`` on another thread (in a copy of the caller's context) while the block runs.

    Leaving the block waits for it; its result or exception is on the yielded future.
    """
    with ThreadPoolExecutor(1) as pool:
        yield submit_in_context(pool, fn)
