"""The one place litellm is imported: lazily, once, with our defaults applied first."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

_loaded: ModuleType | None = None
_loading = threading.Lock()


def get_litellm() -> ModuleType:
    """litellm, imported and set up on first use (any thread; the others wait for it)."""
    global _loaded
    if _loaded is None:
        with _loading:
            if _loaded is None:
                _loaded = _import_litellm()
    return _loaded


def load_in_background() -> threading.Thread:
    """Start importing litellm on a low-priority thread; join it, or just call :func:`get_litellm`.

    For a process that waits for another's one-time steps: the import takes seconds of CPU,
    and at low priority it uses what the busy process leaves instead of slowing it down.
    """
    thread = threading.Thread(target=_load_at_low_priority, name="mipro-load-litellm", daemon=True)
    thread.start()
    return thread


def _load_at_low_priority() -> None:
    if sys.platform.startswith("linux"):  # on Linux a niceness can be set per thread
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            pass
    get_litellm()


def _import_litellm() -> ModuleType:
    # Without this, importing litellm fetches the model price map from the network.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with _collector_paused():
        import litellm

    # What the process builds after this still makes a large heap, which the interpreter's
    # last garbage collection walks at exit, in every process (each xdist worker too).
    # Freezing it at exit skips that walk; the OS frees the memory anyway.
    atexit.register(gc.freeze)
    from . import fake, local

    register_provider(local.PROVIDER, local.LocalModelHandler())
    register_provider(fake.PROVIDER, fake.FakeHandler())
    module: ModuleType = litellm
    return module


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Run a large import without cyclic garbage collection, then freeze what it built.

    litellm brings openai and pydantic: about half a million objects, which the collector
    walked six times during the import (2.15 s on 2 cores, 1.5 s without; it found 55
    objects to free) and would walk again in every later full collection. Freezing them
    moves them out of the collector's sight for good; the import leaves almost no garbage
    behind (about 2,000 objects) to be kept by mistake. A collector the user had switched
    off stays off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def register_provider(name: str, handler: object) -> None:
    """Add a litellm custom provider, keeping any the user registered."""
    import litellm

    entries = [e for e in litellm.custom_provider_map if e["provider"] != name]
    litellm.custom_provider_map = [*entries, {"provider": name, "custom_handler": handler}]
    litellm.utils.custom_llm_setup()
