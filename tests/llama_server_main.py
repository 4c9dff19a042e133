"""``python tests/llama_server_main.py ARGS``: ``python -m llama_cpp.server ARGS`` with plain CPU weight buffers.

The server offers no switch for llama.cpp's extra weight buffers, whose AMX kernels crash
on some CPUs; it runs inside :func:`pytest_mipro.lm.local.plain_cpu_buffers`, as the
in-process provider loads its model.
"""

from __future__ import annotations

if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    from pytest_mipro.lm.local import plain_cpu_buffers

    with plain_cpu_buffers():
        main()
