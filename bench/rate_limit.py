"""Benchmark: does ``--mipro-rpm N`` hold for a whole run, with xdist workers and LM threads?

A loopback OpenAI-compatible chat server (fast and deterministic: tests/http_servers.py)
sits behind the test suite's proxy, which records the arrival time of every request. A
project of several small targets is optimized with ``-n WORKERS --mipro-threads THREADS
--mipro-rpm N``; the proxy's log gives the most requests in any 60 s window and the wall
time against ``calls / N`` minutes.

    python bench/rate_limit.py                        # N=120, -n 4, 8 threads, 8 targets (about 2 minutes)
    python bench/rate_limit.py --rpm 60 --targets 4   # smaller
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from http_servers import ChatServer, FaultProxy, food_prompter, food_task  # noqa: E402

CONFTEST = """
import pytest
from pytest_mipro import Example

WORDS = {"apple": "fruit", "pear": "fruit", "plum": "fruit", "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable"}


@pytest.fixture
def mipro_examples():
    return [Example(item=f"{w} {i}", kind=k) for i in range(3) for w, k in WORDS.items()]


@pytest.fixture
def mipro_metric():
    return lambda example, prediction, trace=None: prediction.kind.strip().lower() == example.kind
"""

TARGET = """
@pytest.mark.mipro(Predict("item -> kind", instructions="Say what kind of food this is ({n})."), name="food{n}",
                   auto=None, num_candidates=4, num_trials=6, minibatch=False, seed={n})
def test_food{n}(mipro):
    pass
"""


def write_project(folder: Path, targets: int, api_base: str) -> None:
    (folder / "conftest.py").write_text(CONFTEST)
    body = "import pytest\nfrom pytest_mipro import Predict\n" + "".join(TARGET.format(n=n) for n in range(targets))
    (folder / "test_targets.py").write_text(body)
    (folder / "pytest.ini").write_text(
        textwrap.dedent(
            f"""
            [pytest]
            mipro_model = openai/plugin-task
            mipro_prompt_model = openai/plugin-prompter
            mipro_api_base = {api_base}
            """
        )
    )


def busiest_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, stamp in enumerate(times):
        while stamp - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def limiter_log(path: Path) -> list[float]:
    """Times (s since the epoch) the limiter admitted a request, as far as its log still holds them."""
    import sqlite3

    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type = 'table'")]
        return sorted(ms / 1000 for table in tables for (ms,) in db.execute(f"select item_timestamp from '{table}'"))


def run(rpm: int, workers: int, threads: int, targets: int, latency: float) -> dict[str, object]:
    server = ChatServer({"plugin-task": food_task, "plugin-prompter": food_prompter}, delay=latency)
    server.start()
    proxy = FaultProxy(("127.0.0.1", server.port))
    proxy.start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_project(folder, targets, proxy.api_base)
        env = {**os.environ, "MIPRO_CACHE_DIR": str(folder / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "sk-bench"}
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mipro-optimize", "--mipro-no-cache",
            "-n", str(workers), "--mipro-threads", str(threads), "--mipro-rpm", str(rpm),
        ]  # fmt: skip
        started = time.monotonic()
        result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        logged = limiter_log(folder / ".mipro" / "ratelimit.sqlite")
    proxy.stop()
    server.stop()
    if result.returncode != 0:
        raise SystemExit(result.stdout[-4000:] + result.stderr[-2000:])
    stamps = [seen.at for seen in proxy.seen]
    calls = len(stamps)
    sending = stamps[-1] - stamps[0] if stamps else 0.0
    return {
        "rpm": rpm,
        "workers": workers,
        "threads": threads,
        "targets": targets,
        "latency_s": latency,
        "requests": calls,
        "busiest_60s_window": busiest_window(stamps, 60.0),
        "busiest_10s_window": busiest_window(stamps, 10.0),
        "wall_s": round(wall, 1),
        "first_to_last_request_s": round(sending, 1),
        "calls_over_rpm_s": round(60.0 * calls / rpm, 1),
        "wall_over_calls_over_rpm": round(wall / (60.0 * calls / rpm), 3),
        "arrivals_s": [round(t - stamps[0], 3) for t in stamps],
        "admitted_s": [round(t - logged[0], 3) for t in logged] if logged else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpm", type=int, default=120)
    parser.add_argument("-n", "--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the chat server takes per request")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "rate_limit.json")
    args = parser.parse_args()
    row = run(args.rpm, args.workers, args.threads, args.targets, args.latency)
    row["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps({k: v for k, v in row.items() if not k.endswith("_s") or not isinstance(v, list)}, indent=2))
    args.output.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
