"""A hosted model over HTTP: the API base from options, faults injected by a proxy, secrets kept out.

The inner project's models are ``openai/plugin-task`` and ``openai/plugin-prompter``, served
over loopback by a :class:`ChatServer` with the same rules as the fake models of
``conftest.py``, behind a seeded :class:`FaultProxy`. litellm, the OpenAI SDK and httpx do
the requests for real; only the model behind the server is a rule.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_servers import FAULTS, RULE, WORDS, ChatServer, FaultProxy, food_prompter, food_task

from .conftest import FOOD_TEST, Project

KEY = "sk-planted-SECRET-7f3a9c21b4"
FOOD_CHANGED = FOOD_TEST.replace("Say what kind of food this is.", "Say what kind of food this is (changed).")


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer({"plugin-task": food_task, "plugin-prompter": food_prompter})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hosted(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The food project with its models behind HTTP; the API base comes per run (``--mipro-api-base``)."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    project.pytester.makeini(
        """
        [pytest]
        mipro_model = openai/plugin-task
        mipro_prompt_model = openai/plugin-prompter
        mipro_lm_params =
            timeout=1.5
            num_retries=8
        """
    )
    return project


def _proxy(server: ChatServer, rate: float = 0.0, seed: int = 0, kinds: tuple[str, ...] = FAULTS) -> FaultProxy:
    proxy = FaultProxy(("127.0.0.1", server.port), rate=rate, kinds=kinds, seed=seed, retry_after=1.0, hang=2.5)
    proxy.start()
    return proxy


def _lock_without_counts(project: Project) -> dict[str, Any]:
    lock = project.lock()
    for entry in lock["targets"].values():
        entry.pop("counts")  # calls and seconds: what the run spent, not what it locked
    return lock


def _fresh(project: Project) -> None:
    """Forget a previous run: its lockfile and its stored study."""
    project.lockfile.unlink(missing_ok=True)
    shutil.rmtree(project.path / ".mipro", ignore_errors=True)


def test_the_api_base_from_the_command_line_beats_the_ini(hosted: Project, chat_server: ChatServer) -> None:
    hosted.pytester.makeini(
        """
        [pytest]
        mipro_model = openai/plugin-task
        mipro_prompt_model = openai/plugin-prompter
        mipro_api_base = http://127.0.0.1:9/v1
        mipro_lm_params = num_retries=0
        """
    )
    wrong = hosted.run("--mipro-optimize")
    wrong.stdout.fnmatch_lines(["*openai/plugin-*: InternalServerError: *Connection error*"])  # port 9: nothing listens
    assert not hosted.lockfile.exists()  # an unreachable model locks nothing

    right = hosted.run("--mipro-optimize", "--mipro-api-base", chat_server.api_base)

    right.assert_outcomes(passed=1)
    assert chat_server.requests > 0
    entry = hosted.lock()["targets"]["food"]
    assert entry["task_model"] == "openai/plugin-task" and RULE in entry["program"]["self"]["instructions"]
    assert "127.0.0.1" not in hosted.lockfile.read_text()  # a connection setting: not locked, not fingerprinted


# Seeds whose first draws hold a few faults: a run makes about 20 requests.
@pytest.mark.parametrize(("rate", "seed", "threads"), [(0.1, 7, "1"), (0.3, 20, "2")])
def test_faults_are_retried_and_the_lock_is_the_same_as_without_faults(
    hosted: Project, chat_server: ChatServer, rate: float, seed: int, threads: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIPRO_CACHE_DIR", str(tmp_path / "clean-cache"))  # each run its own cache: every request is sent
    clean = _proxy(chat_server)
    hosted.run("--mipro-optimize", "--mipro-api-base", clean.api_base).assert_outcomes(passed=1)
    clean.stop()
    expected = _lock_without_counts(hosted)
    assert clean.faults() == {}
    _fresh(hosted)

    monkeypatch.setenv("MIPRO_CACHE_DIR", str(tmp_path / "faulty-cache"))
    faulty = _proxy(chat_server, rate=rate, seed=seed)
    options = ["--mipro-api-base", faulty.api_base, "--mipro-threads", threads, "--mipro-report", "report.json"]
    result = hosted.run("--mipro-optimize", *options)
    faulty.stop()

    result.assert_outcomes(passed=1)
    assert _lock_without_counts(hosted) == expected
    injected = sum(faulty.faults().values())
    assert injected >= 2, faulty.faults()
    assert faulty.early_retries() == []  # no request came back before its Retry-After had passed
    counts = json.loads((hosted.path / "report.json").read_text())["targets"][0]["counts"]
    assert counts["retries"] == injected and counts["errors"] == 0  # each fault retried once, none scored
    result.stdout.fnmatch_lines([f"mipro food: provider faults: {injected} requests retried (*), 0 calls failed after retries"])


def test_retry_after_is_honoured_and_counted(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_mipro import LM

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    proxy = _proxy(chat_server, rate=0.5, seed=3, kinds=("429",))
    lm = LM("openai/plugin-task", api_base=proxy.api_base, num_retries=8, cache=False)

    replies = [lm([{"role": "system", "content": RULE}, {"role": "user", "content": f"Item: {word} {i}"}]) for i, word in enumerate(WORDS)]
    proxy.stop()

    assert replies == [f"Kind: {kind}" for kind in WORDS.values()]
    assert proxy.faults()["429"] >= 2
    assert proxy.early_retries() == []
    usage = lm.usage.snapshot()
    assert usage.retries == proxy.faults()["429"] and usage.calls == len(WORDS) + usage.retries  # every request sent counts


def test_an_early_retry_is_what_the_proxy_would_catch(chat_server: ChatServer) -> None:
    """The check above can fail: a client that ignores Retry-After is caught."""
    import urllib.error
    import urllib.request

    proxy = _proxy(chat_server, rate=1.0, kinds=("429",))
    body = json.dumps({"model": "plugin-task", "messages": [{"role": "user", "content": "Item: pear 1"}]}).encode()
    for _ in range(2):
        request = urllib.request.Request(proxy.api_base + "/chat/completions", data=body, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError, match="429"):
            urllib.request.urlopen(request, timeout=5)
    proxy.stop()
    assert len(proxy.early_retries()) == 1


def test_an_api_key_never_reaches_the_lock_reports_run_folder_cache_or_output(
    hosted: Project, chat_server: ChatServer, _isolated_mipro: Path
) -> None:
    proxy = _proxy(chat_server, rate=0.2, seed=5, kinds=("429", "500", "truncated"))
    result = hosted.run("--mipro-optimize", "-vv", "--mipro-api-base", proxy.api_base, "--mipro-report", "report.json")
    gated = hosted.run("-vv", "--mipro-api-base", proxy.api_base, "--mipro-report", "report.html")
    proxy.stop()

    result.assert_outcomes(passed=1)
    assert any(h.get("authorization") == f"Bearer {KEY}" for h in chat_server.headers_seen)  # it was sent, and only there
    texts = [result.stdout.str(), result.stderr.str(), gated.stdout.str(), gated.stderr.str()]
    assert all(KEY not in text for text in texts)
    folders = [hosted.path, _isolated_mipro]  # the project (lock, reports, .mipro/) and the response cache
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "prompts.lock" for p in files) and any(p.suffix == ".db" for p in files)
    assert [p for p in files if KEY.encode() in p.read_bytes()] == []


def test_a_provider_error_is_shown_without_the_key(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 that quotes the request's Authorization header, as some gateways do."""
    from pytest_mipro import LM, LMError

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    lm = LM("openai/unknown-model", api_base=chat_server.api_base, num_retries=0, cache=False)

    with pytest.raises(LMError) as caught:
        lm([{"role": "user", "content": "hi"}])

    message = str(caught.value)
    assert message.startswith("openai/unknown-model: AuthenticationError") and "Bearer ***" in message
    assert KEY not in message and KEY[:12] not in message


def test_a_database_password_is_redacted(hosted: Project) -> None:
    pytest.importorskip("psycopg")
    result = hosted.run("--mipro-optimize", "--mipro-storage", "postgresql+psycopg://mipro:PASSWORD-83jd@127.0.0.1:9/studies")

    output = result.stdout.str() + result.stderr.str()
    assert "postgresql+psycopg://mipro:***@127.0.0.1:9/studies" in output
    assert "PASSWORD-83jd" not in output


def test_cost_is_in_real_dollars_for_a_priced_model(hosted: Project, chat_server: ChatServer) -> None:
    from pytest_mipro.lm._litellm import get_litellm

    price = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002, "litellm_provider": "openai", "mode": "chat"}
    get_litellm().register_model({"plugin-task": price, "plugin-prompter": price})
    result = hosted.run("--mipro-optimize", "--mipro-api-base", chat_server.api_base, "--mipro-report", "report.json")

    result.assert_outcomes(passed=1)
    counts = hosted.lock()["targets"]["food"]["counts"]
    expected = 0.001 * counts["prompt_tokens"] + 0.002 * counts["completion_tokens"]
    assert counts["cost"] == pytest.approx(expected, rel=1e-3) and counts["cost"] > 0.01
    result.stdout.fnmatch_lines([f"food*${counts['cost']:.4f}*"])

    _fresh(hosted)
    budget = round(counts["cost"] / 3, 4)
    capped = hosted.run("--mipro-optimize", "--mipro-no-cache", "--mipro-api-base", chat_server.api_base, f"--mipro-budget=cost={budget}")
    spent = hosted.lock()["targets"]["food"]["counts"]
    assert spent["cost"] < counts["cost"]
    # Calls in flight when the budget ran out may finish: one thread, so at most one call's cost over.
    assert spent["cost"] <= budget + 0.001 * 400 + 0.002 * 40, capped.stdout.str()[-2000:]


def test_rpm_makes_every_request_wait_for_one_shared_limit(hosted: Project, chat_server: ChatServer) -> None:
    result = hosted.run("--mipro-optimize", "--mipro-api-base", chat_server.api_base, "--mipro-rpm", "6000")

    result.assert_outcomes(passed=1)
    store = hosted.path / ".mipro" / "ratelimit.sqlite"
    assert store.exists()
    import sqlite3

    with sqlite3.connect(store) as db:
        (table,) = [row[0] for row in db.execute("select name from sqlite_master where type = 'table'")]
        logged = db.execute(f"select count(*) from '{table}'").fetchone()[0]
    assert table == "requests_6000_per_62000ms" and logged == chat_server.requests


def test_bad_hosted_options_are_usage_errors(hosted: Project) -> None:
    for args, fragment in [
        (["--mipro-api-base", "localhost:8000"], "expected an http:// or https:// URL"),
        (["--mipro-lm-param", "max_tokens"], "expected KEY=VALUE"),
        (["--mipro-rpm", "0"], "--mipro-rpm '0': must be at least 1"),
    ]:
        result = hosted.run(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{fragment}*"])



def test_a_provider_that_keeps_failing_stops_the_run_and_leaves_the_lock_alone(hosted: Project, chat_server: ChatServer) -> None:
    clean = _proxy(chat_server)
    hosted.run("--mipro-optimize", "--mipro-api-base", clean.api_base).assert_outcomes(passed=1)
    before = hosted.lockfile.read_text()
    hosted.write_test(FOOD_CHANGED)  # a stale entry: the next run must optimize again
    down = _proxy(chat_server, rate=1.0, kinds=("503",))

    failed = hosted.run("--mipro-optimize", "--mipro-api-base", down.api_base, "--mipro-lm-param", "num_retries=1")
    down.stop()

    assert failed.ret != 0
    failed.stdout.fnmatch_lines(["*openai/plugin-*: ServiceUnavailableError*injected 503*"])
    assert hosted.lockfile.read_text() == before  # nothing half-done was locked

    resumed = hosted.run("--mipro-optimize", "--mipro-api-base", clean.api_base)
    clean.stop()
    resumed.assert_outcomes(passed=1)
    assert hosted.lockfile.read_text() != before  # the stale entry was replaced once the provider answered
    assert hosted.run("--mipro-check").ret == 0
