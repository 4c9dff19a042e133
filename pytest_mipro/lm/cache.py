"""On-disk response cache: diskcache (SQLite underneath) is safe across threads and processes.

The cache is bounded: past its size limit (``$MIPRO_CACHE_SIZE_LIMIT``, default 1 GiB) each
new reply evicts the least recently stored ones, so a cache that CI restores and saves on
every run cannot grow without end. ``pytest-mipro cache info|prune|clear`` inspects it,
shrinks it to a size, or empties it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DEFAULT_CACHE_DIR = ".mipro/cache"
DEFAULT_SIZE_LIMIT = 2**30  # bytes; about three million short replies
SIZE_LIMIT_ENV = "MIPRO_CACHE_SIZE_LIMIT"
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2}
_UNITS |= {"g": 1024**3, "gb": 1000**3, "gib": 1024**3, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}
_OPEN: dict[str, Any] = {}
_LOCK = threading.Lock()


def cache_dir(configured: str | None) -> Path:
    """Where replies are cached: the setting, else $MIPRO_CACHE_DIR, else ./.mipro/cache."""
    return _resolved(configured or os.environ.get("MIPRO_CACHE_DIR") or DEFAULT_CACHE_DIR, os.getcwd())


@functools.lru_cache(maxsize=64)
def _resolved(directory: str, cwd: str) -> Path:
    """``directory`` made absolute, once (this runs on every LM call, and resolving hits the disk)."""
    return (Path(cwd) / directory).resolve()


def parse_size(text: str, *, source: str = SIZE_LIMIT_ENV) -> int:
    """Bytes from ``1073741824``, ``500MB``, ``2GiB``, ``512m`` (K, M, G, T: binary; KB, MB...: decimal)."""
    match = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([a-z]*)", text.strip().lower())
    size = int(float(match[1]) * _UNITS[match[2]]) if match and match[2] in _UNITS else 0
    if size <= 0:
        raise ConfigError(f"{source}={text!r} is not a size; use a number of bytes or one like 500MB or 2GiB")
    return size


def size_limit() -> int:
    """The cache's size limit in bytes: ``$MIPRO_CACHE_SIZE_LIMIT``, else 1 GiB."""
    configured = os.environ.get(SIZE_LIMIT_ENV)
    return parse_size(configured) if configured else DEFAULT_SIZE_LIMIT


def open_cache(directory: Path) -> Any:
    """One diskcache.Cache per directory per process, evicting past :func:`size_limit`."""
    key = str(directory)
    with _LOCK:
        if key not in _OPEN:
            import diskcache  # type: ignore[import-untyped]

            directory.mkdir(parents=True, exist_ok=True)
            _OPEN[key] = diskcache.Cache(key, size_limit=size_limit())
        return _OPEN[key]


def request_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any], sample_id: int | None) -> str:
    """SHA-256 over everything that can change the reply.

    The sample id separates several samples of one request at temperature > 0, while a
    rerun that draws the same ids (same seed) hits the cache.
    """
    payload = {"model": model, "messages": messages, "params": params, "sample_id": sample_id}
    text = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- maintenance (pytest-mipro cache)


@dataclass(frozen=True)
class CacheInfo:
    directory: Path
    entries: int
    size: int  # bytes on disk
    limit: int  # the size limit this process applies


def _existing(directory: Path) -> Any:
    """A diskcache.Cache on an existing cache folder, for maintenance (closed by the caller)."""
    import diskcache

    if not (directory / "cache.db").is_file():
        raise ConfigError(f"{directory} holds no pytest-mipro response cache (no cache.db); nothing to do")
    return diskcache.Cache(str(directory), size_limit=size_limit())


def info(directory: Path) -> CacheInfo:
    with _existing(directory) as store:
        return CacheInfo(directory, len(store), int(store.volume()), size_limit())


def prune(directory: Path, max_size: int) -> tuple[CacheInfo, CacheInfo]:
    """Evict the least recently stored replies until the cache takes at most ``max_size`` bytes."""
    before = info(directory)
    with _existing(directory) as store:
        store.reset("size_limit", max_size)
        try:
            while store.volume() > max_size and len(store) and store.cull():
                pass
        finally:
            store.reset("size_limit", size_limit())
    return before, info(directory)


def clear(directory: Path) -> int:
    """Remove every cached reply; returns how many there were."""
    with _existing(directory) as store:
        return int(store.clear())
