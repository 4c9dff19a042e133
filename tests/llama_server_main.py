"""``python tests/llama_server_main.py ARGS``: ``python -m llama_cpp.server ARGS`` with plain CPU weight buffers.

The same fix as ``pytest_mipro.lm.local._new_llama``: on CPUs that report AMX, a source
build of llama.cpp routes matrix products through AMX kernels that crash on the first
decode where the kernel does not grant AMX state. The server offers no switch for it, so
the default model parameters are swapped before it loads the model.
"""

from __future__ import annotations

from typing import Any

import llama_cpp.llama_cpp as native

_defaults = native.llama_model_default_params


def _plain_buffers() -> Any:
    params = _defaults()
    params.use_extra_bufts = False
    return params


native.llama_model_default_params = _plain_buffers

if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    main()
