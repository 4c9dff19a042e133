"""``LM``: a model behind litellm with a disk cache, retries, timeouts and usage counts."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from .. import config
from ..errors import ConfigError, LMError
from ..redact import redact
from ._litellm import get_litellm, load_in_background
from .cache import cache_dir, open_cache, request_key

Messages = list[dict[str, Any]]

# Errors worth retrying: rate limits, timeouts, overloaded or flaky servers.
_TRANSIENT = (
    "RateLimitError",
    "Timeout",
    "APIConnectionError",
    "ServiceUnavailableError",
    "InternalServerError",  # also a 200 whose body is not the JSON promised, and a reset connection
    "BadGatewayError",
    "APIError",
)
# Errors that are not retried but say the provider will not answer any request either.
_UNAVAILABLE = ("AuthenticationError", "PermissionDeniedError", "BudgetExceededError", "NotFoundError")
# Request parameters that carry credentials: sent, but never part of a cache key or fingerprint.
SECRET_PARAMS = frozenset(
    {"api_key", "headers", "extra_headers", "aws_secret_access_key", "aws_session_token", "azure_ad_token", "client_secret"}
)
# The longest Retry-After honoured; a provider asking for more ends the call with an error.
MAX_RETRY_AFTER = 120.0


class RateLimit(Protocol):
    """Blocks until one more request may be sent (see :mod:`pytest_mipro.lm.ratelimit`)."""

    def acquire(self) -> None: ...


@dataclass(frozen=True)
class Usage:
    """What was spent: a value that adds and subtracts (``after - before`` is a delta).

    ``calls`` counts requests that reached the provider (not cache hits), retried and
    failed ones included; ``errors`` counts calls that failed after their retries;
    ``retries`` counts requests sent again after a transient failure (a rate limit, a
    timeout, a 5xx, a broken reply).
    """

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    errors: int = 0
    retries: int = 0

    # Written out rather than through dataclasses.astuple: usage is added once per LM call.
    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.cache_hits + other.cache_hits,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
            self.errors + other.errors,
            self.retries + other.retries,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.calls - other.calls,
            self.cache_hits - other.cache_hits,
            self.prompt_tokens - other.prompt_tokens,
            self.completion_tokens - other.completion_tokens,
            self.cost - other.cost,
            self.errors - other.errors,
            self.retries - other.retries,
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
            retries=_int(data.get("retries")),
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
    A transient failure (rate limit, timeout, 5xx, a broken reply) is retried up to
    ``num_retries`` times, never before the provider's ``Retry-After``; ``rate_limit``, when
    given, is acquired before every request sent (retries too).
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
        rate_limit: RateLimit | None = None,
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
        self.rate_limit = rate_limit

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
            "rate_limit": self.rate_limit,
            **self.kwargs,
        }
        params.update(changes)
        return LM(self.model, **params)

    def params(self) -> dict[str, Any]:
        """Request parameters that can change a reply (part of the cache key and fingerprints).

        Credentials (``api_key``, headers) are left out: they are sent, never stored or hashed.
        """
        kept = {k: v for k, v in self.kwargs.items() if k not in SECRET_PARAMS}
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, **kept}

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
        secrets = {k: v for k, v in self.kwargs.items() if k in SECRET_PARAMS}
        request = {**params, **secrets}
        if sample_id is not None and params.get("temperature", 0) > 0 and "seed" not in request:
            request["seed"] = sample_id  # distinct samples where the provider honours seeds
        budget = config.current().budget
        for attempt in range(self.num_retries + 1):
            if budget is not None:
                budget.reserve()  # every attempt is a request the provider receives: reserved before it is sent
            if self.rate_limit is not None:
                self.rate_limit.acquire()
            try:
                # drop_params per call (not litellm's global): a provider that does not know a
                # parameter ignores it instead of failing, without changing the user's own calls.
                # No retries below us (max_retries: the OpenAI SDK's own): this loop counts them
                # and honours Retry-After.
                response = litellm.completion(
                    model=self.model,
                    messages=messages,
                    timeout=self.timeout,
                    num_retries=0,
                    max_retries=0,
                    drop_params=True,
                    **request,
                )
                completion = _to_completion(litellm, response)
                if attempt:
                    self.usage.add(Usage(calls=attempt))  # the attempts that failed before this one
                return completion
            except Exception as exc:  # any error: classified below
                delay = self._retry_delay(exc, attempt)
                if delay is None:
                    self.usage.add(Usage(calls=attempt + 1, errors=1))  # failed requests reached the provider too
                    unavailable = type(exc).__name__ in _TRANSIENT + _UNAVAILABLE
                    raise LMError(f"{self.model}: {self.describe_error(exc)}", unavailable=unavailable) from None
                self.usage.add(Usage(retries=1))
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _retry_delay(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None when the error is final."""
        if type(exc).__name__ not in _TRANSIENT or attempt >= self.num_retries:
            return None
        after = retry_after(exc)
        if after is None:
            return _backoff(attempt)
        if after > MAX_RETRY_AFTER:
            return None
        return after + random.uniform(0.0, 0.1 * after + 0.05)  # never early; spread the herd a little

    def describe_error(self, exc: BaseException) -> str:
        """The error's type and message, without credentials (request headers, keys, URL passwords)."""
        after = retry_after(exc) if isinstance(exc, Exception) else None
        wait = f" (the provider asked to wait {after:g} s)" if after is not None and after > MAX_RETRY_AFTER else ""
        text = f"{type(exc).__name__}: {exc}{wait}"
        return redact(text, [v for k, v in self.kwargs.items() if k in SECRET_PARAMS and isinstance(v, str)])


def retry_after(exc: Exception) -> float | None:
    """The wait in seconds a failed response asked for (``retry-after-ms`` or ``Retry-After``), if any.

    litellm attaches the response headers to its exceptions (``litellm_response_headers``);
    the OpenAI SDK's exceptions carry the ``response`` itself.
    """
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None or not hasattr(headers, "get"):
        return None
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    raw = headers.get("retry-after")
    seconds = _seconds(raw)
    if seconds is None and isinstance(raw, str):
        try:  # an HTTP date
            seconds = email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return None if seconds is None else max(0.0, seconds)


def _seconds(raw: object) -> float | None:
    try:
        value = float(str(raw)) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 and value == value else None


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
