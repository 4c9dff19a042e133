"""End to end over HTTP: the example project optimized and gated through a real OpenAI-compatible server.

llama-cpp-python's server serves the embedded Gemma 3 270M on loopback (the session fixture
``llama_server``); pytest-mipro reaches it through litellm as ``openai/gemma-3-270m`` with
``--mipro-api-base``. The optimization goes through the fault proxy, which answers 10% of
the requests with a fault (all kinds but a hang, which would cost a minute's timeout each).
One target and a call budget (the final evaluations reserve 100 of its 130 calls) keep it to a few
minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from http_servers import FAULTS, FaultProxy

EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"
MODEL = "openai/gemma-3-270m"

pytestmark = pytest.mark.local_model


def _pytest(project: Path, api_base: str, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MIPRO_CACHE_DIR": str(cache),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OPENAI_API_KEY": "sk-local-server-needs-none",  # the OpenAI client wants one; the server ignores it
    }
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-k", "triage",
        "--mipro-model", MODEL, "--mipro-prompt-model", MODEL, "--mipro-api-base", api_base,
        "--mipro-lm-param", "max_tokens=24", "--mipro-lm-param", "timeout=60", *args,
    ]  # fmt: skip
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)


def test_example_project_optimized_and_gated_through_the_server(llama_server: Any, tmp_path: Path) -> None:
    project = tmp_path / "example"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mipro", "__pycache__", ".pytest_cache"))
    cache = tmp_path / "cache"

    proxy = FaultProxy(("127.0.0.1", llama_server.port), rate=0.1, kinds=tuple(k for k in FAULTS if k != "hang"), seed=1)
    proxy.start()
    try:
        options = ["--mipro-optimize", "--mipro-budget", "calls=130", "--mipro-report", "opt.json"]
        optimized = _pytest(project, proxy.api_base, *options, cache=cache)
    finally:
        proxy.stop()

    report = json.loads((project / "opt.json").read_text())
    (target,) = [t for t in report["targets"] if t["target"] == "triage"]
    assert target["mode"] == "optimize", optimized.stdout[-3000:]
    assert target["outcome"] != "error", target["message"]
    lock = (project / "prompts.lock").read_text()
    assert f"task_model: {MODEL}" in lock and f"prompt_model: {MODEL}" in lock
    assert target["counts"]["calls"] > 0 and target["counts"]["errors"] == 0
    assert sum(proxy.faults().values()) > 0 and target["counts"]["retries"] <= sum(proxy.faults().values())
    assert proxy.early_retries() == []
    assert "127.0.0.1" not in lock  # the API base is a connection setting, not part of the lock

    gated = _pytest(project, llama_server.api_base, "--mipro-report", "gate.json", cache=tmp_path / "cold-cache")

    (gate,) = [t for t in json.loads((project / "gate.json").read_text())["targets"] if t["target"] == "triage"]
    assert gate["mode"] == "gate"
    assert gate["outcome"] in ("passed", "failed"), gated.stdout[-3000:]  # judged: not missing, stale or an error
    assert gate["judgement"]["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert gate["counts"]["calls"] > 0  # scored through the server (a cold cache)
