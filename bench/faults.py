"""The fault table of docs/hosted-models.md: which faults a run survives, and with what lock.

For each fault kind (and a mix of all of them), the fault proxy of tests/http_servers.py
answers a share of the requests with that fault, in front of the loopback chat server.
Each run optimizes a small two-target project with ``--mipro-optimize`` (a cold cache of its
own, one worker, two threads) and its lockfile, without the ``counts`` (what the run spent), is
compared with a fault-free run's. Retries are the run's own count (the JSON report),
injected faults the proxy's.

    python bench/faults.py               # every kind at 30%, the mix at 10% and 30%, 2 seeds each (about 5 minutes)
    python bench/faults.py --seeds 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from http_servers import FAULTS, ChatServer, FaultProxy, food_prompter, food_task  # noqa: E402
from rate_limit import write_project  # noqa: E402

TARGETS = 2


def optimize(server: ChatServer, kinds: tuple[str, ...], rate: float, seed: int) -> dict[str, Any]:
    proxy = FaultProxy(("127.0.0.1", server.port), rate=rate, kinds=kinds, seed=seed, retry_after=1.0, hang=2.5)
    proxy.start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_project(folder, TARGETS, proxy.api_base)
        env = {**os.environ, "MIPRO_CACHE_DIR": str(folder / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "sk-bench"}
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--mipro-optimize",
            "--mipro-threads", "2", "--mipro-lm-param", "timeout=1.5", "--mipro-lm-param", "num_retries=8", "--mipro-report", "report.json",
        ]  # fmt: skip
        result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        proxy.stop()
        lock = yaml.safe_load((folder / "prompts.lock").read_text()) if (folder / "prompts.lock").exists() else None
        report = json.loads((folder / "report.json").read_text()) if (folder / "report.json").exists() else {"targets": []}
    for entry in (lock or {}).get("targets", {}).values():
        entry.pop("counts")
    counts = [t["counts"] for t in report["targets"]]
    return {
        "ok": result.returncode == 0,
        "lock": lock,
        "injected": sum(proxy.faults().values()),
        "retries": sum(c.get("retries", 0) for c in counts),
        "errors": sum(c.get("errors", 0) for c in counts),
        "early_retries": len(proxy.early_retries()),
        "requests": len(proxy.seen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "faults.json")
    args = parser.parse_args()
    server = ChatServer({"plugin-task": food_task, "plugin-prompter": food_prompter})
    server.start()
    reference = optimize(server, FAULTS, 0.0, 0)
    assert reference["ok"] and reference["lock"], "the fault-free run failed"
    plan = [((kind,), 0.3) for kind in FAULTS] + [(FAULTS, 0.1), (FAULTS, 0.3)]
    rows = []
    for kinds, rate in plan:
        runs = [optimize(server, kinds, rate, seed) for seed in range(1, args.seeds + 1)]
        rows.append(
            {
                "kind": kinds[0] if len(kinds) == 1 else "all, mixed",
                "rate": rate,
                "runs": len(runs),
                "completed": sum(r["ok"] for r in runs),
                "lock_identical": all(r["lock"] == reference["lock"] for r in runs),
                "requests": sum(r["requests"] for r in runs),
                "injected": sum(r["injected"] for r in runs),
                "retries_counted": sum(r["retries"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "early_retries": sum(r["early_retries"] for r in runs),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    server.stop()
    args.output.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
