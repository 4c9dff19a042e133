from __future__ import annotations

import os
import threading
from dataclasses import FrozenInstanceError
from typing import Any

import litellm
import pytest

from pytest_mipro import LM, Budget, BudgetExceeded, ConfigError, LMError, configure, context
from pytest_mipro import config as mipro_config
from pytest_mipro.lm import client

MESSAGES = [{"role": "user", "content": "Question: what is two plus two"}]


def echo_seed(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return f"seed={params.get('seed')} temperature={params.get('temperature')}"


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record backoff attempts instead of sleeping through them."""
    attempts: list[int] = []

    def backoff(attempt: int) -> float:
        attempts.append(attempt)
        return 0.0

    monkeypatch.setattr(client, "_backoff", backoff)
    return attempts


def test_model_string_must_name_a_provider() -> None:
    with pytest.raises(ConfigError, match="provider/name"):
        LM("gpt-4o-mini")


def test_rerun_hits_the_cache_with_no_new_call(fake_model: Any) -> None:
    fake = fake_model("Answer: 4")
    assert fake.lm()(MESSAGES) == "Answer: 4"
    second = fake.lm()  # a fresh LM object: the cache is on disk, not in the object
    completion = second.complete(MESSAGES)
    assert completion.text == "Answer: 4" and completion.cached
    assert fake.calls == 1
    assert second.usage.snapshot().calls == 0 and second.usage.snapshot().cache_hits == 1


def test_cache_key_covers_messages_and_params(fake_model: Any) -> None:
    fake = fake_model(echo_seed)
    lm = fake.lm()
    lm(MESSAGES)
    lm([{"role": "user", "content": "something else"}])
    lm.copy(temperature=0.5)(MESSAGES)
    lm.copy(max_tokens=7)(MESSAGES)
    lm(MESSAGES)
    assert fake.calls == 4


def test_sample_id_separates_samples_and_repeats_hit_the_cache(fake_model: Any) -> None:
    fake = fake_model(echo_seed)
    lm = fake.lm(temperature=1.0)
    first = lm.complete(MESSAGES, sample_id=1).text
    second = lm.complete(MESSAGES, sample_id=2).text
    assert first != second  # the provider is asked for a seeded, distinct sample
    assert fake.calls == 2
    with context(sample_id=1):
        assert lm(MESSAGES) == first
    assert fake.calls == 2


def test_seed_is_not_sent_at_temperature_zero(fake_model: Any) -> None:
    fake = fake_model(echo_seed)
    fake.lm().complete(MESSAGES, sample_id=3)
    assert "seed" not in fake.requests[0][1]


@pytest.mark.parametrize("how", ["lm", "configure", "context"])
def test_cache_off(fake_model: Any, how: str) -> None:
    fake = fake_model("Answer: 4")
    lm = fake.lm(cache=how != "lm")
    if how == "configure":
        configure(cache=False)
    if how == "context":
        with context(cache=False):
            lm(MESSAGES)
            lm(MESSAGES)
    else:
        lm(MESSAGES)
        lm(MESSAGES)
    assert fake.calls == 2 and lm.usage.snapshot().cache_hits == 0


def test_cache_dir_setting(fake_model: Any, tmp_path: Any) -> None:
    fake = fake_model("Answer: 4")
    configure(cache_dir=str(tmp_path / "a"))
    fake.lm()(MESSAGES)
    assert (tmp_path / "a").is_dir()
    configure(cache_dir=str(tmp_path / "b"))
    fake.lm()(MESSAGES)  # a different folder: a miss
    assert fake.calls == 2


def test_usage_counts_calls_hits_and_tokens(fake_model: Any) -> None:
    fake = fake_model("four is the answer")
    lm = fake.lm()
    lm(MESSAGES)
    lm(MESSAGES)
    lm([{"role": "user", "content": "one two"}])
    usage = lm.usage.snapshot()
    assert usage.calls == 2 and usage.cache_hits == 1
    # the fake provider counts words: 6 + 2 prompt words, 4 + 4 completion words
    assert usage.prompt_tokens == 8 and usage.completion_tokens == 8
    assert usage.cost == 0.0 and usage.errors == 0


def test_copy_shares_usage(fake_model: Any) -> None:
    lm = fake_model("x").lm()
    hot = lm.copy(temperature=1.0)
    hot(MESSAGES)
    assert hot.usage is lm.usage and lm.usage.snapshot().calls == 1
    assert hot.temperature == 1.0 and lm.temperature == 0.0


def test_usage_is_thread_safe(fake_model: Any) -> None:
    lm = fake_model("x").lm(cache=False)
    threads = [threading.Thread(target=lambda: [lm(MESSAGES) for _ in range(10)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lm.usage.snapshot().calls == 40


def test_transient_errors_are_retried_with_backoff(fake_model: Any, no_sleep: list[int]) -> None:
    failures = iter(range(2))

    def flaky(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        if next(failures, None) is not None:
            raise litellm.RateLimitError("slow down", llm_provider="fake", model="flaky")
        return "Answer: 4"

    fake = fake_model(flaky)
    lm = fake.lm(num_retries=3)
    assert lm(MESSAGES) == "Answer: 4"
    assert fake.calls == 3 and no_sleep == [0, 1]
    assert lm.usage.snapshot().calls == 3 and lm.usage.snapshot().errors == 0  # every attempt reached the provider


def test_transient_errors_give_up_after_num_retries(fake_model: Any, no_sleep: list[int]) -> None:
    def down(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        raise litellm.ServiceUnavailableError("down", llm_provider="fake", model="down")

    fake = fake_model(down)
    lm = fake.lm(num_retries=2)
    with pytest.raises(LMError, match="ServiceUnavailableError"):
        lm(MESSAGES)
    assert fake.calls == 3 and no_sleep == [0, 1]
    assert lm.usage.snapshot().errors == 1 and lm.usage.snapshot().calls == 3


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug in the responder"),
        litellm.AuthenticationError("bad key", llm_provider="fake", model="m"),
        litellm.BadRequestError("bad request", model="m", llm_provider="fake"),
    ],
)
def test_non_transient_errors_raise_after_one_call(fake_model: Any, no_sleep: list[int], error: Exception) -> None:
    def broken(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        raise error

    fake = fake_model(broken)
    with pytest.raises(LMError, match=str(error).split(":")[-1].strip()[:12]):
        fake.lm(num_retries=3)(MESSAGES)
    assert fake.calls == 1 and no_sleep == []


def test_unregistered_fake_model_fails_at_once(no_sleep: list[int]) -> None:
    with pytest.raises(LMError, match="no fake model 'never-registered'"):
        LM("fake/never-registered", num_retries=3)(MESSAGES)
    assert no_sleep == []


def test_failed_calls_are_not_cached(fake_model: Any) -> None:
    outcomes = iter([ValueError("once"), None])

    def once(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        error = next(outcomes)
        if error:
            raise error
        return "Answer: ok"

    fake = fake_model(once)
    with pytest.raises(LMError):
        fake.lm()(MESSAGES)
    assert fake.lm()(MESSAGES) == "Answer: ok"


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8)]):
        assert low <= client._backoff(attempt) <= high
    assert client._backoff(20) <= 30


def test_budget_stops_uncached_calls_but_serves_cached_ones(fake_model: Any) -> None:
    fake = fake_model("Answer: 4")
    lm = fake.lm()
    budget = Budget(max_calls=2)
    with context(budget=budget):
        lm([{"role": "user", "content": "1"}])
        lm([{"role": "user", "content": "2"}])
        with pytest.raises(BudgetExceeded, match="2/2 LM calls"):
            lm([{"role": "user", "content": "3"}])
        assert lm([{"role": "user", "content": "1"}]) == "Answer: 4"
    assert fake.calls == 2 and budget.calls == 2 and budget.exhausted


def test_budget_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_lm_calls"):
        Budget(max_calls=0)
    with pytest.raises(ConfigError, match="max_cost"):
        Budget(max_cost=-1.0)


def test_budget_cost_limit() -> None:
    budget = Budget(max_cost=0.01)
    budget.reserve()
    budget.add_cost(0.02)
    with pytest.raises(BudgetExceeded, match=r"\$0.0200/\$0.0100"):
        budget.reserve()


def test_a_cost_limit_holds_back_room_for_the_final_calls_until_released() -> None:
    budget = Budget(max_cost=1.0, held_calls=3)
    for _ in range(5):  # 1/8 a call: after four, 0.5 spent and three more at the mean make 0.875
        budget.reserve()
        budget.add_cost(0.125)
    with pytest.raises(BudgetExceeded):  # 0.625 spent: three more would reach the limit
        budget.reserve()
    budget.release_hold()
    for _ in range(3):  # what was held back pays for the final evaluations
        budget.reserve()
        budget.add_cost(0.125)
    with pytest.raises(BudgetExceeded):
        budget.reserve()


def test_a_budget_says_whether_it_affords_more_calls_here_and_above() -> None:
    outer = Budget(max_calls=10)
    inner = Budget(max_cost=1.0, parent=outer)
    for _ in range(4):
        inner.reserve()
        inner.add_cost(0.125)  # 0.5 spent in 4 calls
    assert inner.affords(4) and not inner.affords(5)  # five more at the mean would cost 1.125
    assert outer.affords(6) and not outer.affords(7)  # the calls were reserved in the enclosing budget too
    assert not Budget(max_calls=10, calls=4, parent=None).affords(7)
    assert not Budget(max_cost=5.0, parent=Budget(max_calls=10, calls=9)).affords(2)  # the enclosing one is short


def test_configure_accepts_model_strings_and_restores_as_a_context_manager(fake_model: Any) -> None:
    outer, inner = fake_model("Answer: outer"), fake_model("Answer: inner")
    configure(lm=outer.model)
    assert isinstance(mipro_config.current().lm, LM)
    with configure(lm=inner.model, cache=False) as settings:
        assert settings.lm.model == inner.model and not settings.cache
        assert mipro_config.current().lm.model == inner.model
    assert mipro_config.current().lm.model == outer.model and mipro_config.current().cache


def test_configure_rejects_unknown_settings() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['modle'\]"):
        configure(modle="x")


def test_context_is_per_thread(fake_model: Any) -> None:
    global_model, local_model = fake_model("Answer: global").model, fake_model("Answer: local").model
    configure(lm=global_model)
    seen: list[str] = []
    with context(lm=LM(local_model)):
        worker = threading.Thread(target=lambda: seen.append(mipro_config.current().lm.model))
        worker.start()
        worker.join()
        assert mipro_config.current().lm.model == local_model
    assert seen == [global_model]
    assert mipro_config.current().lm.model == global_model


def test_default_lm_without_configuration_explains_how(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_mipro.lm import default_lm, local

    monkeypatch.setattr(local, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no language model is configured"):
        default_lm()


def _in_a_fresh_interpreter(code: str) -> str:
    """What ``code`` prints when run by a new Python, where litellm is not loaded yet."""
    import subprocess
    import sys

    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    return done.stdout


def test_litellm_is_imported_without_collections_and_its_objects_are_frozen() -> None:
    code = (
        "import gc\n"
        "from pytest_mipro.lm._litellm import get_litellm\n"
        "full = gc.get_stats()[2]['collections']\n"
        "get_litellm()\n"
        "print(gc.get_stats()[2]['collections'] - full, gc.get_freeze_count(), gc.isenabled())\n"
    )
    full_collections, frozen, enabled = _in_a_fresh_interpreter(code).split()
    assert full_collections == "0"  # six of them, for nothing, when the import ran with the collector on
    assert int(frozen) > 100_000  # litellm's objects, which no later collection walks
    assert enabled == "True"


def test_a_collector_the_user_switched_off_stays_off_after_the_import() -> None:
    code = "import gc\ngc.disable()\nfrom pytest_mipro.lm._litellm import get_litellm\nget_litellm()\nprint(gc.isenabled())\n"
    assert _in_a_fresh_interpreter(code).strip() == "False"


def test_what_the_process_builds_after_loading_litellm_is_frozen_at_exit() -> None:
    code = (
        "import atexit, gc\n"
        "from pytest_mipro.lm._litellm import get_litellm\n"
        "get_litellm()\n"
        "before = gc.get_freeze_count()\n"
        "later = [[i] for i in range(50_000)]\n"
        "atexit._run_exitfuncs()\n"
        "print(gc.get_freeze_count() - before)\n"
    )
    assert int(_in_a_fresh_interpreter(code)) >= 50_000  # so the last collection at exit does not walk them


def test_a_background_warm_up_loads_litellm_at_low_priority_and_a_call_meanwhile_waits_for_it() -> None:
    import sys

    code = (
        "import os, sys, threading\n"
        "from pytest_mipro.lm import _litellm\n"
        "thread = _litellm.load_in_background()\n"
        "nice = base = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "while thread.is_alive() and nice == base:  # until the thread has lowered itself\n"
        "    try:\n"
        "        nice = os.getpriority(os.PRIO_PROCESS, thread.native_id)\n"
        "    except OSError:  # it ended meanwhile (or not Linux)\n"
        "        break\n"
        "litellm = _litellm.get_litellm()  # waits for the thread rather than importing again\n"
        "providers = [e['provider'] for e in litellm.custom_provider_map]\n"
        "print(nice, os.getpriority(os.PRIO_PROCESS, 0), sorted(providers))\n"
    )
    thread_nice, process_nice, providers = _in_a_fresh_interpreter(code).split(" ", 2)
    if sys.platform.startswith("linux"):
        assert int(thread_nice) == int(process_nice) + 10  # only the loading thread is lowered
    assert providers.strip() == "['fake', 'local']"  # set up once


def test_usage_is_a_value_that_adds_and_subtracts() -> None:
    from pytest_mipro import Usage

    before = Usage(calls=2, cache_hits=1, prompt_tokens=10, completion_tokens=4, cost=0.5)
    after = before + Usage(calls=1, prompt_tokens=3, errors=1)

    assert after == Usage(3, 1, 13, 4, 0.5, 1) and after.tokens == 17
    assert after - before == Usage(calls=1, prompt_tokens=3, errors=1)
    assert Usage.from_dict(after.to_dict()) == after and Usage.from_dict({"calls": 2}) == Usage(calls=2)
    with pytest.raises(FrozenInstanceError):
        after.calls = 0  # type: ignore[misc]


def test_loading_litellm_through_us_leaves_its_global_settings_alone() -> None:
    """drop_params is passed per call: the user's own litellm calls keep litellm's defaults."""
    code = (
        "import litellm\n"
        "before = (litellm.drop_params, litellm.suppress_debug_info)\n"
        "from pytest_mipro.lm._litellm import get_litellm\n"
        "from pytest_mipro.lm import LM, register_fake_model\n"
        "get_litellm()\n"
        "register_fake_model('echo', lambda messages, params: 'ok')\n"
        "reply = LM('fake/echo', cache=False, frequency_penalty=0.5).complete([{'role': 'user', 'content': 'hi'}]).text\n"
        "print(before == (litellm.drop_params, litellm.suppress_debug_info), reply)\n"
    )
    assert _in_a_fresh_interpreter(code).split() == ["True", "ok"]


def test_importing_the_plugin_sets_no_environment_variable() -> None:
    import subprocess
    import sys

    code = "import os\nimport pytest_mipro.plugin\nprint('LITELLM_LOCAL_MODEL_COST_MAP' in os.environ)\n"
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert done.stdout.strip() == "False"
