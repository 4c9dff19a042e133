"""The one place litellm is imported: lazily, once, with our defaults applied first."""

from __future__ import annotations

import atexit
import functools
import gc
import os
from types import ModuleType


@functools.cache
def get_litellm() -> ModuleType:
    # Without this, importing litellm fetches the model price map from the network.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    # litellm brings openai and pydantic: a large object graph that the interpreter's last
    # garbage collection walks for most of a second at exit, in every process (each xdist
    # worker too). Freezing the heap at exit skips that walk; the OS frees the memory anyway.
    atexit.register(gc.freeze)
    litellm.suppress_debug_info = True
    litellm.drop_params = True  # providers ignore params they do not know instead of failing
    from . import fake, local

    register_provider(local.PROVIDER, local.LocalModelHandler())
    register_provider(fake.PROVIDER, fake.FakeHandler())
    return litellm


def register_provider(name: str, handler: object) -> None:
    """Add a litellm custom provider, keeping any the user registered."""
    import litellm

    entries = [e for e in litellm.custom_provider_map if e["provider"] != name]
    litellm.custom_provider_map = [*entries, {"provider": name, "custom_handler": handler}]  # type: ignore[typeddict-item]
    litellm.utils.custom_llm_setup()
