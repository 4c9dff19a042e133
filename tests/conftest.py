"""Shared test setup: an isolated LM cache and settings per test, and deterministic fake models.

Fake models are litellm custom providers (``pytest_mipro.lm.register_fake_model``), so the
cache, usage counts, retries and budgets they go through are the real ones.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from chromium import Chromium

Messages = list[dict[str, Any]]
Responder = Callable[[Messages, dict[str, Any]], str]

_NAMES = itertools.count()

# Set before any test module imports litellm, which otherwise fetches its price map online.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pytest_configure(config: pytest.Config) -> None:
    # litellm's import makes pydantic warn about its own TypedDicts; that is not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:.*ReadOnly.*:UserWarning")


@pytest.fixture(autouse=True)
def _isolated_mipro(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh cache folder and default settings for every test; no network price-map fetch, no CI job summary."""
    from pytest_mipro import config
    from pytest_mipro.lm import cache

    cache_dir = tmp_path_factory.mktemp("mipro-cache")
    monkeypatch.setenv("MIPRO_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)  # inner runs must not write to CI's own job summary
    saved = list(config._GLOBAL)
    config._GLOBAL[:] = [config.Settings()]
    try:
        yield cache_dir
    finally:
        config._GLOBAL[:] = saved
        _close_cache(cache, cache_dir)


def _close_cache(cache: Any, directory: Path) -> None:
    """Close this test's diskcache so hundreds of tests do not keep hundreds of SQLite handles."""
    with cache._LOCK:
        opened = cache._OPEN.pop(str(directory.resolve()), None)
    if opened is not None:
        opened.close()


@dataclass
class FakeModel:
    """A registered fake model that records every request it really receives (cache hits never arrive)."""

    name: str
    responder: Responder
    requests: list[tuple[Messages, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self) -> str:
        return f"fake/{self.name}"

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def messages(self) -> list[Messages]:
        with self._lock:
            return [messages for messages, _ in self.requests]

    def lm(self, **kwargs: Any) -> Any:
        """An ``LM`` for this model (no retries unless asked, so a failing test fails fast)."""
        from pytest_mipro import LM

        kwargs.setdefault("num_retries", 0)
        return LM(self.model, **kwargs)

    def __call__(self, messages: Messages, params: dict[str, Any]) -> str:
        with self._lock:
            self.requests.append((messages, dict(params)))
        return self.responder(messages, params)


@pytest.fixture
def fake_model(request: pytest.FixtureRequest) -> Iterator[Callable[..., FakeModel]]:
    """``fake_model(responder)`` registers ``fake/<unique name>`` and returns a call-counting handle.

    ``responder(messages, params) -> str``; a plain string answers every request with it.
    """
    from pytest_mipro.lm import register_fake_model, unregister_fake_model

    made: list[FakeModel] = []

    def make(responder: Responder | str, name: str | None = None) -> FakeModel:
        reply = responder
        func: Responder = (lambda messages, params: reply) if isinstance(reply, str) else reply  # type: ignore[assignment,return-value]
        unique = f"{name or 'model'}-{next(_NAMES)}"
        fake = FakeModel(unique, func)
        register_fake_model(unique, fake)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        unregister_fake_model(fake.name)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server on loopback for this test session (.ci/run installs the server)."""
    from postgres_server import PostgresServer, server_binaries

    if server_binaries() is None:
        if os.environ.get("MIPRO_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server binaries not found, and MIPRO_REQUIRE_POSTGRES is set")
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    server = PostgresServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    """Headless Chromium (tests/chromium.py); .ci/run installs Debian's ``chromium``.

    Skips where no browser is installed, unless ``MIPRO_REQUIRE_CHROMIUM`` is set (as in CI):
    then a missing browser is a failure, so the browser tests cannot silently stop running.
    """
    from chromium import Chromium, find_chromium

    executable = find_chromium()
    if executable is None:
        if os.environ.get("MIPRO_REQUIRE_CHROMIUM"):
            pytest.fail("chromium not found, and MIPRO_REQUIRE_CHROMIUM is set")
        pytest.skip("chromium not found (apt-get install chromium, or set MIPRO_CHROMIUM)")
    return Chromium(executable, tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """llama-cpp-python's OpenAI-compatible server on the embedded GGUF, on a free loopback port.

    Skips where the ``local`` extra (llama-cpp-python with its ``server`` extra, and the
    GGUF package) is missing. One thread: the machines that run the suite are small.
    """
    from importlib.util import find_spec

    from http_servers import LlamaServer

    from pytest_mipro.lm import local

    if not local.is_available() or find_spec("uvicorn") is None or find_spec("fastapi") is None:
        pytest.skip("the local extra with llama-cpp-python's server is not installed (pip install 'pytest-mipro[local]')")
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    server = LlamaServer(Path(local.model_path()), log=log, threads=int(os.environ.get("MIPRO_LOCAL_THREADS") or 1))
    server.start()
    try:
        yield server
    finally:
        server.stop()
