"""Deterministic fake models for tests and docs: a litellm custom provider named ``fake``.

    register_fake_model("router", lambda messages, params: "Team: billing")
    lm = LM("fake/router")

Because the replies go through litellm like any other model's, the cache, retries, usage
counts and budgets are exercised for real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

PROVIDER = "fake"
Responder = Callable[[list[dict[str, Any]], dict[str, Any]], str]

_RESPONDERS: dict[str, Responder] = {}
_LOCK = threading.Lock()


def register_fake_model(name: str, responder: Responder) -> str:
    """Make ``fake/<name>`` answer with ``responder(messages, params)``; returns the model string."""
    with _LOCK:
        _RESPONDERS[name] = responder
    return f"{PROVIDER}/{name}"


def unregister_fake_model(name: str) -> None:
    with _LOCK:
        _RESPONDERS.pop(name, None)


def _count_words(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)


def _reply(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The responder's text. Its own exceptions (bugs in a test) become a non-transient error.

    litellm wraps any non-litellm exception from a custom provider in APIConnectionError,
    which LM retries with backoff as a network failure; a responder that raises, say,
    ``litellm.RateLimitError`` on purpose still gets its retries.
    """
    import litellm

    with _LOCK:
        responder = _RESPONDERS.get(model)
    try:
        if responder is None:
            raise KeyError(f"no fake model {model!r} is registered; call register_fake_model({model!r}, ...)")
        return responder(messages, params)
    except tuple(litellm.LITELLM_EXCEPTION_TYPES):
        raise
    except Exception as exc:
        raise litellm.BadRequestError(f"{type(exc).__name__}: {exc}", model=model, llm_provider=PROVIDER) from exc


def _make_handler_class() -> type:
    from litellm import CustomLLM, Usage

    class FakeHandler(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            params = dict(kwargs.get("optional_params") or {})
            text = _reply(model, messages, params)
            response = kwargs["model_response"]
            response.choices[0].message.content = text
            prompt_tokens, completion_tokens = _count_words(messages), len(text.split())
            response.usage = Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
            response.model = f"{PROVIDER}/{model}"
            return response

    return FakeHandler


def FakeHandler() -> Any:  # a class-like name: builds the handler class only once litellm is imported
    return _make_handler_class()()
