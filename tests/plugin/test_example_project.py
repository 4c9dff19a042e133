"""The committed example project's lockfile is present and fresh (no LM call needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"


def test_example_project_lockfile_is_fresh(tmp_path: Path) -> None:
    env = {**os.environ, "MIPRO_CACHE_DIR": str(tmp_path / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--mipro-check"],
        cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
    assert not (tmp_path / "cache").exists()  # checking made no LM call, so no cache was opened
