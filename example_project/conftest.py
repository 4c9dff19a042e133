"""The model the prompts are optimized and gated with.

By default the embedded Gemma 3 270M model runs in-process (`pip install 'pytest-mipro[local]'`),
so the example needs no API key. `pytest --mipro-model openai/gpt-4o-mini` (or `mipro_model`
in pyproject.toml) overrides it for every target.
"""

from __future__ import annotations

import pytest

from pytest_mipro import LM, configure


def pytest_configure(config: pytest.Config) -> None:
    # Answers here are one word; a short token cap keeps a rambling base model cheap.
    # The prompt model writes whole instructions, so it gets more room.
    configure(
        lm=LM("local/gemma-3-270m", max_tokens=24),
        prompt_model=LM("local/gemma-3-270m", max_tokens=160, temperature=1.0),
    )
