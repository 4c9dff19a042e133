"""Hosted-model plumbing without a server: Retry-After, redaction, the shared rate limit, the options."""

from __future__ import annotations

import email.utils
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_mipro.errors import ConfigError
from pytest_mipro.lm.client import LM, retry_after
from pytest_mipro.lm.ratelimit import SharedRateLimit
from pytest_mipro.redact import redact
from pytest_mipro.settings import Sources, parse_lm_params, resolve


class _Failed(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        self.litellm_response_headers = headers


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_milliseconds(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(_Failed(headers)) == seconds


def test_retry_after_reads_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after(_Failed({"retry-after": when})) or 0) <= 31


def test_retry_delay_never_comes_before_retry_after_and_gives_up_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    lm = LM("openai/x", num_retries=3)
    RateLimitError = type("RateLimitError", (_Failed,), {})
    delays = [lm._retry_delay(RateLimitError({"retry-after": "3"}), 0) for _ in range(50)]
    assert all(3.0 <= d <= 3.5 for d in delays)
    assert lm._retry_delay(RateLimitError({"retry-after": "600"}), 0) is None  # asks for too long: an error
    assert lm._retry_delay(RateLimitError({}), 3) is None  # out of retries
    assert lm._retry_delay(_Failed({"retry-after": "1"}), 0) is None  # not a transient error type


def test_redact_masks_keys_tokens_and_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GATEWAY_TOKEN", "tok-4f9a8b7c6d")
    text = (
        "headers {'Authorization': 'Bearer abcdefgh12345', 'api-key': 'azure0123456789'} "
        "key sk-proj-abcdef123456 gateway tok-4f9a8b7c6d at postgresql+psycopg://u:PASSWORD@db:5432/x"
    )
    out = redact(text)
    for secret in ("abcdefgh12345", "azure0123456789", "sk-proj-abcdef123456", "tok-4f9a8b7c6d", "PASSWORD"):
        assert secret not in out
    assert "postgresql+psycopg://u:***@db:5432/x" in out and "Bearer ***" in out
    assert redact("The api_key client option must be set") == "The api_key client option must be set"


def test_credentials_are_sent_but_not_part_of_the_cache_key_or_fingerprint() -> None:
    lm = LM("openai/x", api_key="sk-secret-123456", api_base="http://h/v1", max_tokens=9)
    assert "api_key" not in lm.params() and lm.params()["api_base"] == "http://h/v1"
    assert lm.copy(temperature=0.5).kwargs["api_key"] == "sk-secret-123456"


def test_lm_params_parse_json_values_and_keep_the_rest_as_text() -> None:
    assert parse_lm_params(["max_tokens=64", "api_version=2024-10-21", "stop=[\"\\n\"]", "seed=null"]) == (
        ("max_tokens", 64), ("api_version", "2024-10-21"), ("stop", ["\n"]), ("seed", None),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="'model=x': model is not a parameter"):
        parse_lm_params(["model=x"])


def test_hosted_options_resolve_from_the_cli_or_the_ini(tmp_path: Path) -> None:
    sources = Sources(tmp_path, tmp_path, tmp_path)
    ini = {"mipro_api_base": "http://ini/v1", "mipro_lm_params": ["max_tokens=8", "timeout=5"], "mipro_rpm": "60"}
    from_ini = resolve({}, ini, sources)
    assert (from_ini.api_base, from_ini.lm_params, from_ini.rpm) == ("http://ini/v1", (("max_tokens", 8), ("timeout", 5)), 60)
    from_cli = resolve({"api-base": "https://cli/v1", "lm-param": ["max_tokens=16"], "rpm": "5"}, ini, sources)
    assert (from_cli.api_base, from_cli.lm_params, from_cli.rpm) == ("https://cli/v1", (("max_tokens", 16),), 5)


_CHILD = """
import sys, time
from pathlib import Path
from pytest_mipro.lm.ratelimit import SharedRateLimit
limit = SharedRateLimit(5, Path(sys.argv[1]), period=1.0)
for _ in range(8):
    limit.acquire()
    print(time.time(), flush=True)
"""


def test_one_limit_is_shared_by_threads_and_processes(tmp_path: Path) -> None:
    store = tmp_path / ".mipro" / "ratelimit.sqlite"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(store)], stdout=subprocess.PIPE, text=True)
    limit = SharedRateLimit(5, store, period=1.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def take(count: int) -> None:
        for _ in range(count):
            limit.acquire()
            with lock:
                stamps.append(time.time())

    threads = [threading.Thread(target=take, args=(4,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out, _ = child.communicate(timeout=60)
    stamps += [float(line) for line in out.split()]

    stamps.sort()
    assert len(stamps) == 16
    most = max(sum(1 for t in stamps if start <= t < start + 1.0) for start in stamps)
    assert most <= 5  # no 1 s window holds more than the limit, across both processes
    assert stamps[-1] - stamps[0] >= 2.0  # 16 requests at 5 per second need at least three windows


def test_a_bad_rate_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="positive count"):
        SharedRateLimit(0, tmp_path / "x.sqlite")


def test_a_copied_lm_or_limit_keeps_one_shared_limit(tmp_path: Path) -> None:
    import copy
    import pickle

    limit = SharedRateLimit(3, tmp_path / "r.sqlite")
    limit.acquire()
    lm = LM("openai/x", rate_limit=limit)
    assert copy.deepcopy(limit) is limit and lm.copy(max_tokens=5).rate_limit is limit
    thawed = pickle.loads(pickle.dumps(limit))  # e.g. sent to another process
    assert isinstance(thawed, SharedRateLimit) and (thawed.limit, thawed.path) == (3, limit.path)
    thawed.acquire()  # opens its own connection to the same log
