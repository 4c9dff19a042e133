"""The response cache stays under its size limit, and `pytest-mipro cache` shows, prunes and clears it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_mipro import LM, ConfigError
from pytest_mipro.lm import cache


@pytest.mark.parametrize(
    ("text", "size"),
    [("1073741824", 2**30), ("500MB", 500 * 1000**2), ("2GiB", 2 * 2**30), ("512m", 512 * 2**20), ("1.5 KiB", 1536)],
)
def test_sizes_parse(text: str, size: int) -> None:
    assert cache.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "-5MB", "0", "10 parsecs", "inf", "nan"])
def test_a_bad_size_names_the_setting_and_the_format(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"MIPRO_CACHE_SIZE_LIMIT='{text}' is not a size; use a number of bytes or one like 500MB"):
        cache.parse_size(text)


def test_the_lm_cache_evicts_past_its_size_limit(
    fake_model: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIPRO_CACHE_SIZE_LIMIT", "256KiB")
    monkeypatch.setenv("MIPRO_CACHE_DIR", str(tmp_path / "bounded"))
    model = fake_model(lambda messages, params: "x" * 2000)
    lm = model.lm()

    for i in range(400):  # about 800 kB of replies
        lm([{"role": "user", "content": f"question {i}"}])
    store = cache.open_cache(cache.cache_dir(None))

    assert store.volume() <= 2 * 256 * 1024  # the limit, plus SQLite's own pages
    assert 0 < len(store) < 400
    assert lm([{"role": "user", "content": "question 399"}]) == "x" * 2000  # the newest are kept
    assert model.calls == 400


def test_the_default_limit_is_one_gibibyte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIPRO_CACHE_SIZE_LIMIT", raising=False)
    assert cache.size_limit() == 2**30


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_mipro", "cache", *args], capture_output=True, text=True, check=False)


def test_cache_info_prune_and_clear(fake_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "replies"
    monkeypatch.setenv("MIPRO_CACHE_DIR", str(folder))
    lm: LM = fake_model(lambda messages, params: "y" * 1000).lm()
    for i in range(300):
        lm([{"role": "user", "content": f"q{i}"}])
    cache.open_cache(cache.cache_dir(None)).close()  # as a finished run would leave it

    shown = cli("info", "--dir", str(folder))
    assert shown.returncode == 0, shown.stderr
    assert f"{folder}: 300 replies, " in shown.stdout and "(limit 1.0 GiB)" in shown.stdout

    pruned = cli("prune", "--dir", str(folder), "--max-size", "150KiB")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith(f"{folder}: 300 -> ") and "(max 150.0 KiB)" in pruned.stdout
    assert 0 < cache.info(folder).entries < 300 and cache.info(folder).size <= 150 * 1024

    cleared = cli("clear", "--dir", str(folder))
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert cache.info(folder).entries == 0


def test_cache_commands_on_a_folder_without_a_cache_are_one_line_errors(tmp_path: Path) -> None:
    result = cli("info", "--dir", str(tmp_path))

    assert result.returncode == 2
    expected = f"{tmp_path} holds no pytest-mipro response cache (no cache.db); nothing to do"
    assert result.stderr.strip() == f"pytest-mipro cache: error: {expected}"
    bad = cli("prune", "--dir", str(tmp_path), "--max-size", "lots")
    assert bad.returncode == 2 and "--max-size='lots' is not a size" in bad.stderr
