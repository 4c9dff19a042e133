"""``LM``: a model behind litellm with a disk cache, retries, timeouts and usage counts."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .. import config
from ..errors import ConfigError, LMError
from ._litellm import get_litellm, load_in_background
from .cache import cache_dir, open_cache, request_key

Messages = list[dict[str, Any]]

# Errors worth retrying: rate limits, timeouts, overloaded or flaky servers.
_TRANSIENT = (
    "RateLimitError",
    "Timeout",
    "APIConnectionError",
    "ServiceUnavailableError",
    "InternalServerError",
    "APIError",
)
# Errors that are not retried but say the provider will not answer any request either.
_UNAVAILABLE = ("AuthenticationError", "PermissionDeniedError", "BudgetExceededError", "NotFoundError")


@dataclass(frozen=True)
class Usage:
    """What was spent: a value that adds and subtracts (``after - before`` is a delta).

    ``calls`` counts requests that reached the provider (not cache hits), retried and
    failed ones included; ``errors`` counts calls that failed after their retries.
    """

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    errors: int = 0

    # Written out rather than through dataclasses.astuple: usage is added once per LM call.
    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.cache_hits + other.cache_hits,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
            self.errors + other.errors,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.calls - other.calls,
            self.cache_hits - other.cache_hits,
            self.prompt_tokens - other.prompt_tokens,
            self.completion_tokens - other.completion_tokens,
            self.cost - other.cost,
            self.errors - other.errors,
        )

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int | float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Usage:
        """The usage in ``data`` (missing keys are 0; unknown keys are ignored)."""
        return cls(
            calls=_int(data.get("calls")),
            cache_hits=_int(data.get("cache_hits")),
            prompt_tokens=_int(data.get("prompt_tokens")),
            completion_tokens=_int(data.get("completion_tokens")),
            cost=float(_number(data.get("cost"))),
            errors=_int(data.get("errors")),
        )


def _number(value: object) -> float | int:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _int(value: object) -> int:
    return int(_number(value))


class UsageCounter:
    """A thread-safe running total of an LM's :class:`Usage`; ``snapshot()`` reads it."""

    def __init__(self) -> None:
        self._total = Usage()
        self._lock = threading.Lock()

    def add(self, usage: Usage) -> None:
        with self._lock:
            self._total = self._total + usage

    def snapshot(self) -> Usage:
        with self._lock:
            return self._total


@dataclass(frozen=True)
class Completion:
    text: str
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class LM:
    """A language model reached through litellm.

    ``LM("openai/gpt-4o-mini", temperature=0.0)``; ``LM("local/gemma-3-270m")`` runs the
    embedded model in-process. Extra keyword arguments (``api_base``, ``stop``, ...) go to
    ``litellm.completion``. ``copy(**changes)`` shares the usage counter with the original.
    """

    def __init__(
        self,
        model: str,
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        num_retries: int = 3,
        timeout: float = 120.0,
        cache: bool = True,
        usage: UsageCounter | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, str) or "/" not in model:
            raise ConfigError(
                f"model {model!r} must be a litellm model string 'provider/name', "
                "e.g. 'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest' or 'local/gemma-3-270m'"
            )
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.num_retries = num_retries
        self.timeout = timeout
        self.cache = cache
        self.kwargs = kwargs
        self.usage = usage if usage is not None else UsageCounter()

    def __repr__(self) -> str:
        return f"LM({self.model!r}, temperature={self.temperature})"

    def copy(self, **changes: Any) -> LM:
        params = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "num_retries": self.num_retries,
            "timeout": self.timeout,
            "cache": self.cache,
            "usage": self.usage,
            **self.kwargs,
        }
        params.update(changes)
        return LM(self.model, **params)

    def params(self) -> dict[str, Any]:
        """Request parameters that can change a reply (part of the cache key and fingerprints)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, **self.kwargs}

    def warm_up(self, *, background: bool = False) -> None:
        """Import litellm now (seconds of CPU on a small machine) instead of at the first call.

        ``background``: on a low-priority thread, for a process that only waits for another
        meanwhile; a call made before it is done waits for it.
        """
        if background:
            load_in_background()
        else:
            get_litellm()

    def __call__(self, messages: Messages, **overrides: Any) -> str:
        return self.complete(messages, **overrides).text

    def complete(self, messages: Messages, *, sample_id: int | None = None, **overrides: Any) -> Completion:
        """One completion: from the cache when possible, else from the provider with retries."""
        settings = config.current()
        if sample_id is None:
            sample_id = settings.sample_id
        params = {**self.params(), **overrides}
        use_cache = self.cache and settings.cache
        store = open_cache(cache_dir(settings.cache_dir)) if use_cache else None
        key = request_key(self.model, messages, params, sample_id)
        if store is not None:
            hit = store.get(key)
            if hit is not None:
                self.usage.add(Usage(cache_hits=1))
                return Completion(text=hit["text"], cached=True)
        result = self._call_with_retries(messages, params, sample_id)
        if settings.budget is not None:
            settings.budget.add_cost(result.cost)
        self.usage.add(Usage(1, 0, result.prompt_tokens, result.completion_tokens, result.cost))
        if store is not None:
            store.set(key, {"text": result.text})
        return result

    def _call_with_retries(self, messages: Messages, params: dict[str, Any], sample_id: int | None) -> Completion:
        litellm = get_litellm()
        request = dict(params)
        if sample_id is not None and params.get("temperature", 0) > 0 and "seed" not in request:
            request["seed"] = sample_id  # distinct samples where the provider honours seeds
        budget = config.current().budget
        for attempt in range(self.num_retries + 1):
            if budget is not None:
                budget.reserve()  # every attempt is a request the provider receives: reserved before it is sent
            try:
                # drop_params per call (not litellm's global): a provider that does not know a
                # parameter ignores it instead of failing, without changing the user's own calls.
                response = litellm.completion(
                    model=self.model, messages=messages, timeout=self.timeout, num_retries=0, drop_params=True, **request
                )
                completion = _to_completion(litellm, response)
                if attempt:
                    self.usage.add(Usage(calls=attempt))  # the attempts that failed before this one
                return completion
            except Exception as exc:  # any error: classified below
                transient = type(exc).__name__ in _TRANSIENT
                if not transient or attempt == self.num_retries:
                    self.usage.add(Usage(calls=attempt + 1, errors=1))  # failed requests reached the provider too
                    unavailable = transient or type(exc).__name__ in _UNAVAILABLE
                    raise LMError(f"{self.model}: {type(exc).__name__}: {exc}", unavailable=unavailable) from exc
                time.sleep(_backoff(attempt))
        raise AssertionError("unreachable")


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 1, 2, 4, 8 s, capped at 30 s."""
    return min(30.0, 2.0**attempt) * (0.5 + random.random() / 2)


def _to_completion(litellm: Any, response: Any) -> Completion:
    text = response.choices[0].message.content or ""
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # noqa: BLE001 - litellm raises for models it has no price for
            cost = 0.0
    return Completion(text, False, prompt_tokens, completion_tokens, float(cost or 0.0))
