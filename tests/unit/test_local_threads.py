"""The embedded model's thread settings reach llama.cpp (no model is loaded here)."""

from __future__ import annotations

from typing import Any

import pytest


def test_one_thread_means_one_thread_for_prompts_too(monkeypatch: pytest.MonkeyPatch) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from pytest_mipro.lm import local

    made: list[dict[str, Any]] = []

    class RecordingLlama:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", RecordingLlama)
    monkeypatch.setenv("MIPRO_LOCAL_THREADS", "1")

    local._new_llama("model.gguf")

    # llama-cpp-python's n_threads_batch defaults to every core: two threads spinning per
    # process on a shared 2-core machine made each call several times slower.
    assert made[0]["n_threads"] == made[0]["n_threads_batch"] == 1
