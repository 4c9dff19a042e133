"""On-disk response cache: diskcache (SQLite underneath) is safe across threads and processes."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = ".mipro/cache"
_OPEN: dict[str, Any] = {}
_LOCK = threading.Lock()


def cache_dir(configured: str | None) -> Path:
    """Where replies are cached: the setting, else $MIPRO_CACHE_DIR, else ./.mipro/cache."""
    return _resolved(configured or os.environ.get("MIPRO_CACHE_DIR") or DEFAULT_CACHE_DIR, os.getcwd())


@functools.lru_cache(maxsize=64)
def _resolved(directory: str, cwd: str) -> Path:
    """``directory`` made absolute, once (this runs on every LM call, and resolving hits the disk)."""
    return (Path(cwd) / directory).resolve()


def open_cache(directory: Path) -> Any:
    """One diskcache.Cache per directory per process."""
    key = str(directory)
    with _LOCK:
        if key not in _OPEN:
            import diskcache  # type: ignore[import-untyped]

            directory.mkdir(parents=True, exist_ok=True)
            _OPEN[key] = diskcache.Cache(key, size_limit=2**32)
        return _OPEN[key]


def request_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any], sample_id: int | None) -> str:
    """SHA-256 over everything that can change the reply.

    The sample id separates several samples of one request at temperature > 0, while a
    rerun that draws the same ids (same seed) hits the cache.
    """
    payload = {"model": model, "messages": messages, "params": params, "sample_id": sample_id}
    text = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
