"""HTTP parts for the hosted-model tests, all on loopback: a chat server, a fault proxy, llama.cpp's server.

- :class:`ChatServer` answers ``POST /v1/chat/completions`` the way OpenAI does, from a Python
  function per model name (deterministic and fast: no model behind it).
- :class:`FaultProxy` forwards to an upstream and answers a seeded share of the requests
  with a fault instead: 429 with ``Retry-After``, 500/502/503, a connection reset, a hang
  past the client's timeout, or a 200 whose JSON body is truncated or not JSON at all. It
  records every request (time, body hash, what it answered) so a test can check retries.
- :class:`LlamaServer` runs llama-cpp-python's server (``python -m llama_cpp.server``, the
  ``server`` extra, through ``llama_server_main.py``) on the embedded GGUF: a real
  OpenAI-compatible server.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Messages = list[dict[str, Any]]
Reply = Callable[[Messages, dict[str, Any]], str]

FAULTS = ("429", "500", "502", "503", "reset", "hang", "truncated", "invalid")

# The food-labelling task of tests/plugin/conftest.py's fake models, for a ChatServer to serve
# as ``plugin-task`` and ``plugin-prompter``.
RULE = "RULE-42"
WORDS = {"apple": "fruit", "pear": "fruit", "plum": "fruit", "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable"}


def _fields(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        head, sep, rest = line.partition(":")
        if sep:
            found[head.strip().lower()] = rest.strip()
    return found


def food_task(messages: Messages, params: dict[str, Any]) -> str:
    """Right with the rule in the instructions or with three demos, else "unknown"."""
    item = _fields(messages[-1]["content"]).get("item", "")
    word = item.split()[0] if item else ""
    demos = sum(m["role"] == "assistant" for m in messages)
    if RULE in messages[0]["content"] or demos >= 3:
        return "Kind: " + WORDS.get(word, "unknown")
    return "Kind: unknown"


def food_prompter(messages: Messages, params: dict[str, Any]) -> str:
    """Proposes an instruction with the rule; any other question gets a stock answer."""
    wanted = messages[-1]["content"].rstrip().splitlines()[-1].rstrip(":").strip()
    if wanted.lower() == "proposed instruction":
        return f"{wanted}: Label the food as fruit or vegetable, following {RULE} (draw {params.get('seed')})."
    return f"{wanted}: some observations."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    """A threaded HTTP server on 127.0.0.1 with start/stop and a ``with`` block."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> None:
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> _Base:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _send_json(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


@dataclass
class ChatServer(_Base):
    """OpenAI's chat completions API over ``replies`` (model name -> ``reply(messages, params)``).

    ``delay`` seconds per request stand for a model's latency. Every request's headers are
    kept in ``headers_seen``, names in lower case (a test checks what credentials reached the server).
    """

    replies: dict[str, Reply]
    delay: float = 0.0
    requests: int = 0
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        _Base.__init__(self)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        params = {k: v for k, v in body.items() if k not in ("model", "messages")}
        text = self.replies[model](messages, params)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(text.split())
        return {
            "id": "chatcmpl-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12],
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests += 1
                    server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                if server.delay:
                    time.sleep(server.delay)
                try:
                    data = json.dumps(server.answer(body)).encode()
                except KeyError as exc:  # as some gateways do: quote the credentials that did not fit
                    message = f"Incorrect API key provided for model {exc}: {self.headers.get('Authorization')}"
                    _send_json(self, 401, json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode())
                    return
                _send_json(self, 200, data)

        return Handler


@dataclass(frozen=True)
class Seen:
    """One request the proxy received: when, which body (hash), and what it answered."""

    at: float
    body: str
    answer: str  # "ok" or one of FAULTS
    retry_after: float | None = None


@dataclass
class FaultProxy(_Base):
    """A reverse proxy to ``upstream`` (host:port) that answers ``rate`` of the requests with a fault.

    Faults are drawn with ``random.Random(seed)`` from ``kinds`` in turn of arrival.
    ``hang`` seconds is how long a hung request is held before the connection is closed
    (set it past the client's timeout); ``retry_after`` is what a 429 asks for.
    """

    upstream: tuple[str, int]
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULTS
    seed: int = 0
    retry_after: float = 1.0
    hang: float = 3.0
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        _Base.__init__(self)
        unknown = set(self.kinds) - set(FAULTS)
        assert not unknown, f"unknown fault kinds {unknown}; choose from {FAULTS}"
        self._rng = random.Random(self.seed)

    def _draw(self, body: bytes) -> Seen:
        with self._lock:
            fault = self._rng.random() < self.rate
            kind = self._rng.choice(self.kinds) if fault else "ok"
            seen = Seen(time.monotonic(), hashlib.sha256(body).hexdigest(), kind, self.retry_after if kind == "429" else None)
            self.seen.append(seen)
        return seen

    def faults(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for seen in self.seen:
            if seen.answer != "ok":
                counts[seen.answer] = counts.get(seen.answer, 0) + 1
        return counts

    def early_retries(self) -> list[tuple[Seen, Seen]]:
        """(429, next request with the same body) pairs where the retry came before Retry-After had passed."""
        early = []
        with self._lock:
            seen = list(self.seen)
        for i, first in enumerate(seen):
            if first.answer != "429" or first.retry_after is None:
                continue
            again = next((s for s in seen[i + 1 :] if s.body == first.body), None)
            if again is not None and again.at - first.at < first.retry_after:
                early.append((first, again))
        return early

    def _forward(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=600)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "accept-encoding")}
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            dropped = ("transfer-encoding", "connection", "content-length", "content-encoding")
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in dropped]
            return response.status, kept, data
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._relay(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                seen = proxy._draw(body)
                if seen.answer == "ok":
                    self._relay(body)
                else:
                    self._fault(seen.answer, body)

            def _relay(self, body: bytes) -> None:
                status, headers, data = proxy._forward(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, kind: str, body: bytes) -> None:
                if kind == "429":
                    error = {"error": {"message": "Rate limit reached (injected)", "type": "rate_limit_error"}}
                    _send_json(self, 429, json.dumps(error).encode(), {"Retry-After": f"{proxy.retry_after:g}"})
                elif kind in ("500", "502", "503"):
                    error = {"error": {"message": f"injected {kind}", "type": "server_error"}}
                    _send_json(self, int(kind), json.dumps(error).encode())
                elif kind == "reset":
                    self._reset()
                elif kind == "hang":
                    time.sleep(proxy.hang)
                    self._reset()
                else:  # a 200 with a broken body: the real reply cut in half, or not JSON at all
                    status, _, data = proxy._forward(self.command, self.path, dict(self.headers.items()), body)
                    broken = data[: len(data) // 2] if kind == "truncated" else b"<html>upstream hiccup</html>"
                    _send_json(self, 200, broken)

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends RST, so the client sees "connection reset by peer".
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

        return Handler


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server on the embedded GGUF, on a free loopback port."""

    def __init__(
        self, model_path: Path, *, alias: str = "gemma-3-270m", n_ctx: int = 2048, threads: int = 1, log: Path | None = None
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.port = free_port()
        self.n_ctx = n_ctx
        self.threads = threads
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, *, timeout: float = 180.0) -> None:
        command = [
            sys.executable, str(Path(__file__).with_name("llama_server_main.py")),
            "--model", str(self.model_path), "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
            "--chat_format", "gemma", "--seed", "0", "--verbose", "False",
        ]  # fmt: skip
        output = open(self.log, "wb") if self.log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self._process.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.api_base}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer on port {self.port} within {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
