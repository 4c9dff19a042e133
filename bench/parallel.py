"""Benchmark: wall time of `pytest --mipro-optimize` with xdist workers and LM threads.

A fake model with a fixed latency per call stands in for a hosted API, so the numbers show
how well the optimizer overlaps waiting, not how fast a model is. One single-predictor
target at the light preset, on 200 labeled examples (DSPy's suggested minimum for MIPROv2;
a quarter is held out and the preset validates on its full 100); for each of -n 0/2/4 and
1/8 threads, over several seeds: wall time, LM calls, the LM-latency bound
(calls x latency / concurrency) and the final validation score.

    python bench/parallel.py                  # full table (about 6 minutes on 2 cores)
    python bench/parallel.py --examples 120   # a smaller task: fixed start-up weighs more
    python bench/parallel.py --quick          # one seed, fewer configurations
    python bench/parallel.py --timeline -n 0 --threads 8 --seeds 2   # where one run's time goes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CONFTEST = '''
import hashlib, os, random, time
import pytest
from pytest_mipro import Example, Predict
from pytest_mipro.lm import register_fake_model

LATENCY = {latency}
JITTER = {jitter}  # sigma of a lognormal factor (mean 1) on each call's latency; 0: every call takes LATENCY
TIMELINE = os.environ.get("MIPRO_BENCH_TIMELINE")  # a file to log every call's start and end to


def wait(kind, request):
    factor = 1.0
    if JITTER:  # drawn from the request, so a rerun waits the same
        factor = random.Random(hashlib.sha256(repr(request).encode()).digest()).lognormvariate(-JITTER**2 / 2, JITTER)
    started = time.time()
    time.sleep(LATENCY * factor)
    if TIMELINE:
        with open(TIMELINE, "a") as log:  # one short append per call: whole lines, even across processes
            log.write(f"{{os.getpid()}} {{kind}} {{started:.4f}} {{time.time():.4f}}\\n")


WORDS = {{"apple": "fruit", "pear": "fruit", "plum": "fruit", "fig": "fruit",
          "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable", "okra": "vegetable"}}


def slow_task(messages, params):
    """Right more often with more demos and with the RULE in the instruction (fixed per example)."""
    wait("task", messages)
    item = messages[-1]["content"].split("\\n")[0].split(":", 1)[1].strip()
    demos = sum(1 for m in messages if m["role"] == "assistant")
    skill = 20 + 10 * min(demos, 4) + (25 if "RULE" in messages[0]["content"] else 0)
    luck = int(hashlib.sha256(item.encode()).hexdigest(), 16) % 100
    return WORDS[item.split()[0]] if luck < skill else "unknown"


def slow_prompt(messages, params):
    """Proposes instructions; about half of them carry the rule."""
    wait("prompt", (messages, params))
    if "instruction" not in messages[-1]["content"].lower():
        return "Foods."
    draw = int(hashlib.sha256(repr((messages, params)).encode()).hexdigest(), 16) % 4
    return "Classify the food. RULE: sweet ones are fruit." if draw < 2 else f"Classify the food ({{draw}})."


register_fake_model("slow-task", slow_task)
register_fake_model("slow-prompt", slow_prompt)
classify = Predict("food -> kind", instructions="Say fruit or vegetable.")


@pytest.fixture
def mipro_examples():
    rng = random.Random(0)
    data = [Example(food=f"{{w}} #{{i}}", kind=k).with_inputs("food") for i in range({per_word}) for w, k in WORDS.items()]
    rng.shuffle(data)
    return data


@pytest.fixture
def mipro_metric():
    return lambda ex, pred, trace=None: pred.kind.strip() == ex.kind
'''

TEST = '''
import pytest
from conftest import classify


@pytest.mark.mipro(classify, name="classify")
def test_classify(mipro):
    assert mipro.score >= 0.0
'''


FOODS = 8  # the conftest's WORDS: labeled examples come in rounds of one per food
DEFAULT_EXAMPLES = 200  # DSPy's guidance for MIPROv2; the light preset then validates on its full 100


def write_project(root: Path, latency: float, jitter: float = 0.0, examples: int = DEFAULT_EXAMPLES) -> None:
    if examples % FOODS or examples < 5 * FOODS:
        raise SystemExit(f"--examples {examples}: use a multiple of {FOODS}, at least {5 * FOODS}")
    (root / "conftest.py").write_text(CONFTEST.format(latency=latency, jitter=jitter, per_word=examples // FOODS))
    (root / "test_bench.py").write_text(TEST)
    (root / "pytest.ini").write_text("[pytest]\nmipro_model = fake/slow-task\nmipro_prompt_model = fake/slow-prompt\n")


def run_once(
    workers: int, threads: int, seed: int, latency: float, jitter: float = 0.0,
    timeline: Path | None = None, examples: int = DEFAULT_EXAMPLES,
) -> dict:
    with tempfile.TemporaryDirectory(prefix="mipro-bench-") as tmp:
        root = Path(tmp)
        write_project(root, latency, jitter, examples)
        report = root / "report.json"
        # hypothesis (a dev extra) imports itself for its end-of-run summary: a second on two
        # cores that is not ours to measure.
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--mipro-optimize",
               f"--mipro-threads={threads}", f"--mipro-seed={seed}", f"--mipro-report={report}", "-n", str(workers)]
        env = {**os.environ, "MIPRO_CACHE_DIR": str(root / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        if timeline is not None:
            env["MIPRO_BENCH_TIMELINE"] = str(timeline)
        launched, started = time.time(), time.monotonic()
        proc = subprocess.run(cmd, check=False, cwd=root, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"pytest failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        target = json.loads(report.read_text())["targets"][0]
        return {"wall": wall, "calls": target["counts"]["calls"], "score": target["score"], "launched": launched}


def show_timeline(workers: int, threads: int, seed: int, latency: float, jitter: float, examples: int) -> None:
    """One run with every call logged: when each process made its first and last call, and
    how many calls were in flight over time against the ``workers x threads`` available."""
    with tempfile.TemporaryDirectory(prefix="mipro-timeline-") as tmp:
        log = Path(tmp) / "calls.log"
        run = run_once(workers, threads, seed, latency, jitter, timeline=log, examples=examples)
        calls = [line.split() for line in log.read_text().splitlines()]
    t0 = run["launched"]
    spans = [(float(start) - t0, float(end) - t0) for _, _, start, end in calls]
    print(f"-n {workers}, {threads} threads, seed {seed}, {latency * 1000:.0f} ms, {examples} examples: {run['wall']:.2f} s, "
          f"{len(calls)} calls ({sum(kind == 'prompt' for _, kind, _, _ in calls)} to the prompt model)")
    for pid in sorted({p for p, *_ in calls}, key=lambda p: min(float(c[2]) for c in calls if c[0] == p)):
        mine = [(float(start) - t0, float(end) - t0) for p, _, start, end in calls if p == pid]
        print(f"  process {pid}: {len(mine)} calls, first at {min(a for a, _ in mine):.2f} s, last ends at {max(b for _, b in mine):.2f} s")
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    step = max(0.1, round((last - first) / 20, 1))
    print(f"  calls in flight (mean per {step:.1f} s from the first call; {workers or 1} x {threads} available):")
    t = first
    while t < last:
        busy = sum(max(0.0, min(b, t + step) - max(a, t)) for a, b in spans) / step
        print(f"  {t:6.1f} s {busy:5.1f} {'#' * round(busy)}")
        t += step
    capacity = (workers or 1) * threads * (last - first)
    print(f"  before the first call: {first:.2f} s; after the last: {run['wall'] - last:.2f} s; "
          f"call slots used between them: {sum(b - a for a, b in spans) / capacity:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per fake LM call (the mean, with --jitter)")
    parser.add_argument("--jitter", type=float, default=0.0, help="sigma of a lognormal factor on each call's latency, as hosted APIs vary")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                        help=f"labeled examples (a multiple of {FOODS}); a quarter is held out, the light preset validates on up to 100")
    parser.add_argument("--quick", action="store_true", help="one seed; -n 0 and 4 only")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "parallel.json")
    parser.add_argument("--timeline", action="store_true", help="one run (-n, --threads, first seed) with its calls over time")
    parser.add_argument("-n", dest="workers", type=int, default=0, help="xdist workers, with --timeline")
    parser.add_argument("--threads", type=int, default=8, help="--mipro-threads, with --timeline")
    args = parser.parse_args()
    if args.timeline:
        show_timeline(args.workers, args.threads, args.seeds[0], args.latency, args.jitter, args.examples)
        return
    seeds = args.seeds[:1] if args.quick else args.seeds
    grid = [(n, t) for n in ((0, 4) if args.quick else (0, 2, 4)) for t in (1, 8)]
    rows = []
    for workers, threads in grid:
        runs = [run_once(workers, threads, seed, args.latency, args.jitter, examples=args.examples) for seed in seeds]
        calls = statistics.mean(r["calls"] for r in runs)
        concurrency = max(1, workers) * threads
        rows.append({
            "workers": workers, "threads": threads,
            "wall_s": statistics.mean(r["wall"] for r in runs),
            "calls": calls,
            "latency_bound_s": calls * args.latency / concurrency,
            "score": statistics.mean(r["score"] for r in runs),
            "runs": runs,
        })
        print(f"-n {workers} threads {threads}: {rows[-1]['wall_s']:.1f} s", file=sys.stderr)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"latency": args.latency, "jitter": args.jitter, "examples": args.examples, "seeds": seeds, "rows": rows}, indent=2)
        + "\n"
    )
    print(textwrap.dedent("""
        | -n | threads | wall time (s) | LM calls | latency bound (s) | final val score | speed-up vs -n 0 |
        |---|---|---|---|---|---|---|"""))
    serial = {r["threads"]: r["wall_s"] for r in rows if r["workers"] == 0}
    for r in rows:
        speedup = serial[r["threads"]] / r["wall_s"]
        print(f"| {r['workers']} | {r['threads']} | {r['wall_s']:.1f} | {r['calls']:.0f} | "
              f"{r['latency_bound_s']:.1f} | {r['score']:.3f} | {speedup:.2f}x |")


if __name__ == "__main__":
    main()
