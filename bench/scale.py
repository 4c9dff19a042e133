"""Benchmark: how the plugin's own cost grows with the number of targets (issue 19).

For N targets (each a ``Predict("item -> kind")`` with its own instructions and 200 labeled
examples) it writes a synthetic project: a fake task model (deterministic, no sleeps, right
on nine items in ten), one test per target, and a ``prompts.lock`` whose entries are fresh
and hold 200 per-example results each. The entries are built with the plugin's own
functions (``target_from_declaration``, ``target_fingerprint``), so ``--mipro-check`` passes.
Then it measures, each in a separate cold process:

- ``read lock``: ``Lockfile.read`` in a fresh interpreter (the parse alone, timed inside);
- ``check``: ``pytest --mipro-check`` (no LM call);
- ``gate``: a plain ``pytest`` on a warm response cache (0 LM calls, asserted), after one
  untimed cold-cache run that fills it; ``gate -n 2``: the same with two xdist workers;
- ``trivial``: ``pytest`` on N tests that do nothing (the same files without the marker),
  the cost of pytest itself, to compare the plugin's overhead with;
- ``optimize -k``: ``pytest --mipro-optimize -k <one target>`` in the N-target project (one
  small search, then the merge into and rewrite of the N-entry lock);
- ``load_lock``: application code applying one target's prompts (``Module.load_lock``),
  timed inside a fresh interpreter, and 50 ``load_lock`` calls of different targets;
- the peak memory (max RSS) of each process.

It prints a table (seconds, and milliseconds per target for the rows that do N targets'
work) and the ratio between the largest N and N=10, and writes the numbers as JSON.

    python bench/scale.py             # N = 1, 10, 100, 500 (about 12 minutes on 2 cores)
    python bench/scale.py --quick     # N = 1, 10, 100 (about 2 minutes)
    python bench/scale.py --sizes 1 10 --keep /tmp/scale   # keep the generated projects
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = 200
PER_FILE = 10  # targets per test file
TASK_MODEL = "fake/scale-task"

MODEL_MODULE = '''
"""The synthetic project's task: say whether a number is even or odd (the fake model is right 9 times in 10)."""
import os

from pytest_mipro import Example, Predict
from pytest_mipro.lm import register_fake_model

EXAMPLES = {examples}


def label(number):
    return "even" if number % 2 == 0 else "odd"


def program(i):
    return Predict("item -> kind", instructions=f"Say whether the number is even or odd (target {{i}}).")


def examples(i):
    return [Example(item=f"number {{i * 100_000 + j}}", kind=label(i * 100_000 + j)) for j in range(EXAMPLES)]


def metric(example, prediction, trace=None):
    return prediction.kind.strip().lower() == example.kind


def reply(item):
    number = int(item.split()[-1])
    return label(number + 1) if number % 10 == 7 else label(number)


def _field(text, name):
    for line in text.splitlines():
        head, sep, rest = line.partition(":")
        if sep and head.strip().lower() == name:
            return rest.strip()
    return ""


def _log():
    log = os.environ.get("SCALE_LM_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write("call\\n")


def task(messages, params):
    _log()
    return "Kind: " + reply(_field(messages[-1]["content"], "item"))


def prompter(messages, params):
    _log()
    wanted = messages[-1]["content"].rstrip().splitlines()[-1].rstrip(":").strip()
    if wanted.lower() == "proposed instruction":
        return f"{{wanted}}: Look at the last digit and say even or odd (draw {{params.get('seed')}})."
    return f"{{wanted}}: some observations."


register_fake_model("scale-task", task)
register_fake_model("scale-prompter", prompter)
'''

CONFTEST = '''
import pytest

import scale_model


@pytest.fixture
def mipro_metric():
    return scale_model.metric
'''

INI = """
[pytest]
mipro_model = fake/scale-task
mipro_prompt_model = fake/scale-prompter
"""

TARGET = '''

p{i} = scale_model.program({i})


@pytest.mark.mipro(p{i}, name="t{i:04d}", threshold=0.5, examples=scale_model.examples({i}), {options})
def test_t{i:04d}(mipro):
    pass
'''
TRIVIAL = '''

def test_t{i:04d}():
    pass
'''
OPTIONS = "auto=None, num_candidates=2, num_trials=2, minibatch=False"

READ = """
import json, sys, time
from pytest_mipro.lockfile import Lockfile
started = time.perf_counter()
lock = Lockfile.read("prompts.lock")
print(json.dumps({"inner": time.perf_counter() - started, "entries": len(lock.entries)}))
"""

LOAD_LOCK = """
import json, sys, time
sys.path.insert(0, ".")
import scale_model
n = int(sys.argv[1])
program = scale_model.program(0)
started = time.perf_counter()
program.load_lock("prompts.lock", "t0000")
one = time.perf_counter() - started
names = [f"t{i:04d}" for i in range(0, n, max(1, n // 50))]
started = time.perf_counter()
for name in names:
    scale_model.program(0).load_lock("prompts.lock", name)
print(json.dumps({"inner": one, "many": time.perf_counter() - started, "many_count": len(names)}))
"""

# Runs one command and reports its wall time and peak RSS (ru_maxrss of its only child).
LAUNCHER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - started
rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
out, err = done.stdout[-4000:], done.stderr[-4000:]
print(json.dumps({"seconds": seconds, "rc": done.returncode, "rss_mb": rss_kb / 1024, "stdout": out, "stderr": err}))
"""


def write_project(root: Path, n: int, *, trivial: bool = False) -> None:
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text(INI)
    tests = root / "tests"
    tests.mkdir()
    if not trivial:
        (root / "scale_model.py").write_text(MODEL_MODULE.format(examples=EXAMPLES))
        (root / "conftest.py").write_text(CONFTEST)
    for start in range(0, n, PER_FILE):
        head = "" if trivial else "import pytest\n\nimport scale_model\n"
        body = "".join(
            (TRIVIAL if trivial else TARGET).format(i=i, options=OPTIONS) for i in range(start, min(n, start + PER_FILE))
        )
        (tests / f"test_scale_{start // PER_FILE:03d}.py").write_text(head + body)


def write_lock(root: Path, n: int) -> float:
    """The lock of a project optimized to its base prompts: fresh entries with 200 results each."""
    started = time.perf_counter()
    sys.path.insert(0, str(root))
    try:
        import scale_model  # type: ignore[import-not-found]

        from pytest_mipro.declaration import target_from_declaration
        from pytest_mipro.lm import LM
        from pytest_mipro.lockfile import ExampleScores, LockEntry, Lockfile
        from pytest_mipro.scoring import predictor_locks, target_fingerprint

        task_lm = LM(TASK_MODEL)
        entries = {}
        for i in range(n):
            name = f"t{i:04d}"
            kwargs = {"name": name, "threshold": 0.5, "examples": scale_model.examples(i)}
            target = target_from_declaration(
                [scale_model.program(i)], kwargs, default_name=name, lookup={"mipro_metric": scale_model.metric}.__getitem__
            )
            scores = tuple(float(scale_model.reply(ex.item) == ex.kind) for ex in target.examples)
            entries[name] = LockEntry(
                name=name,
                predictors=predictor_locks(target.program),
                score=sum(scores) / len(scores),
                fingerprint=target_fingerprint(target, task_lm),
                threshold=0.5,
                n=len(scores),
                task_model=TASK_MODEL,
                prompt_model="fake/scale-prompter",
                optimizer={"auto": None, "seed": 9, "trials": 2},
                results=ExampleScores(tuple(ex.uid for ex in target.examples), scores),
            )
        Lockfile(root / "prompts.lock", entries).write()
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("scale_model", None)
    return time.perf_counter() - started


def measure(root: Path, command: list[str], log: Path | None = None) -> dict[str, object]:
    """Run ``command`` in ``root`` as a fresh process; its time, peak RSS and LM calls."""
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    if log is not None:
        log.unlink(missing_ok=True)
        env["SCALE_LM_LOG"] = str(log)
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], cwd=root, env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    if log is not None:
        result["lm_calls"] = len(log.read_text().splitlines()) if log.exists() else 0
    if result["rc"] != 0:
        tail = f"{str(result['stdout'])[-1500:]}\n{str(result['stderr'])[-1500:]}"
        print(f"  ! {' '.join(command[-4:])}: exit {result['rc']}\n{tail}", file=sys.stderr)
    out = str(result.pop("stdout"))
    result.pop("stderr")
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if last.startswith("{"):
        result.update(json.loads(last))
    else:
        result["summary"] = last
    return result


def run_size(base: Path, n: int) -> dict[str, dict[str, object]]:
    root, plain = base / f"n{n}", base / f"n{n}-trivial"
    write_project(root, n)
    write_project(plain, n, trivial=True)
    print(f"N={n}: lock written in {write_lock(root, n):.1f} s", file=sys.stderr)
    log = base / f"lm-{n}.log"
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    rows: dict[str, dict[str, object]] = {}
    rows["read lock"] = measure(root, [sys.executable, "-c", READ])
    rows["check"] = measure(root, [*pytest, "--mipro-check"], log)
    rows["gate, cold cache (setup)"] = measure(root, pytest, log)
    rows["gate"] = measure(root, pytest, log)
    rows["gate -n 2"] = measure(root, [*pytest, "-n", "2"], log)
    rows["trivial"] = measure(plain, pytest)
    rows["load_lock"] = measure(root, [sys.executable, "-c", LOAD_LOCK, str(n)])
    saved = (root / "prompts.lock").read_bytes()
    rows["optimize -k"] = measure(root, [*pytest, "--mipro-optimize", "-k", "test_t0000"], log)
    (root / "prompts.lock").write_bytes(saved)
    for name in ("gate", "gate -n 2", "check"):
        if rows[name].get("lm_calls"):
            print(f"  ! N={n} {name}: {rows[name]['lm_calls']} LM calls, expected 0", file=sys.stderr)
    print(f"N={n}: " + ", ".join(f"{k} {float(v['seconds']):.2f}s" for k, v in rows.items()), file=sys.stderr)
    return rows


PER_TARGET = ("check", "gate", "gate -n 2", "trivial")


def table(results: dict[int, dict[str, dict[str, object]]]) -> str:
    sizes = sorted(results)
    header = (
        "| N | read lock (parse) | check | gate, warm cache | gate -n 2 | pytest, N trivial tests "
        "| optimize -k one | load_lock one (50 targets) | peak RSS, gate |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for n in sizes:
        r = results[n]

        def per(name: str, r: dict[str, dict[str, object]] = r, n: int = n) -> str:
            s = float(r[name]["seconds"])  # type: ignore[arg-type]
            return f"{s:.2f} s ({1000 * s / n:.1f} ms/target)"

        read = r["read lock"]
        load = r["load_lock"]
        lines.append(
            f"| {n} | {float(read['seconds']):.2f} s ({float(read.get('inner', 0)):.3f} s) | {per('check')} | {per('gate')} | "  # type: ignore[arg-type]
            f"{per('gate -n 2')} | {per('trivial')} | {float(r['optimize -k']['seconds']):.2f} s | "  # type: ignore[arg-type]
            f"{float(load.get('inner', 0)) * 1000:.1f} ms ({float(load.get('many', 0)):.3f} s) | {float(r['gate']['rss_mb']):.0f} MB |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


def _seconds(results: dict[int, dict[str, dict[str, object]]], n: int, name: str) -> float:
    return float(results[n][name]["seconds"])  # type: ignore[arg-type]


def ratios(results: dict[int, dict[str, dict[str, object]]]) -> dict[str, float]:
    """The largest N against N=10: per-target time (t/N), the marginal time per target (the
    slope between the two largest N against the slope below, start-up removed), whole time
    for the one-target rows, and memory."""
    if 10 not in results or max(results) <= 10:
        return {}
    big = max(results)
    found = {}
    for name in (*PER_TARGET, "read lock"):
        found[f"{name}, per target"] = round((_seconds(results, big, name) / big) / (_seconds(results, 10, name) / 10), 2)
        sizes = sorted(results)
        if len(sizes) >= 3:  # the cost of one more target: the last interval's slope against the one before
            (a, b, c) = sizes[-3:]
            slopes = [(_seconds(results, y, name) - _seconds(results, x, name)) / (y - x) for x, y in ((b, c), (a, b))]
            key = f"{name}, marginal per target ({b}->{c} / {a}->{b})"
            found[key] = round(slopes[0] / slopes[1], 2) if slopes[1] > 0 else math.nan
    for name in ("optimize -k", "load_lock"):
        found[f"{name}, whole"] = round(_seconds(results, big, name) / _seconds(results, 10, name), 2)
    found["gate / trivial pytest, largest N"] = round(_seconds(results, big, "gate") / _seconds(results, big, "trivial"), 2)
    rss = [float(results[n]["gate"]["rss_mb"]) for n in (big, 10)]  # type: ignore[arg-type]
    found["peak RSS of the gate, largest N / N=10"] = round(rss[0] / rss[1], 2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 1, 10, 100")
    parser.add_argument("--sizes", type=int, nargs="+", help="the numbers of targets (default 1 10 100 500)")
    parser.add_argument("--keep", type=Path, help="write the projects here and keep them (default: a temp folder)")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/scale.json, scale_quick.json with --quick)")
    args = parser.parse_args()
    sizes = args.sizes or ([1, 10, 100] if args.quick else [1, 10, 100, 500])
    out = args.out or Path(__file__).parent / "results" / ("scale_quick.json" if args.quick else "scale.json")
    base = args.keep or Path(tempfile.mkdtemp(prefix="mipro-scale-"))
    if args.keep and base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for n in sizes:
            results[n] = run_size(base, n)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(table(results))
    found = ratios(results)
    if found:
        print(f"\nratios, N={max(results)} / N=10:")
        for name, value in found.items():
            print(f"  {name}: {value}x")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine, "examples": EXAMPLES}
    record |= {"sizes": {str(n): rows for n, rows in results.items()}, "ratios": found}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
