"""dspy.MIPROv2 against pytest_mipro.MIPROv2 on one task, one model, one split.

    .venv-bench/bin/python bench/compare_dspy.py                 # seeds 1, 2, 3
    .venv-bench/bin/python bench/compare_dspy.py --quick         # seed 1, a 50-example test split

Both optimizers run ``auto="light"`` with their defaults on AG News topic classification
(bench/data/ag_news_sample.jsonl: the first 100 rows train, each optimizer cuts its own
validation set from them the same way, the next 200 rows are the held-out test split).
Both call the embedded Gemma 3 270M base model through litellm: the task model as provider
``local`` and the prompt model as provider ``localprompt``, two registrations of one
counting wrapper around the same handler, so calls, tokens and time are counted
identically for both systems. Every optimization starts with empty caches (each system's
own response cache in a fresh temporary directory). DSPy uses its JSONAdapter: its chat
format does not parse on a base model, and with ``response_format`` enforced by a llama.cpp
grammar (litellm is told the provider supports response schemas) its replies always parse.

Writes a markdown table to stdout and bench/results/compare_dspy.md, and every number to
bench/results/compare_dspy.json. dspy is a bench-only extra: pip install -e '.[local,bench]'.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "ag_news_sample.jsonl"
RESULTS = ROOT / "bench" / "results"
MODEL = "gemma-3-270m"
TASK_PROVIDER, PROMPT_PROVIDER = "local", "localprompt"
LABELS = ("world", "sports", "business", "science")
INSTRUCTIONS = "Classify the news article by topic: world, sports, business or science."
TEXT_DESC = "a news article: headline and first sentences"
LABEL_DESC = "one of: world, sports, business, science"
SYSTEMS = ("ours", "dspy")


@dataclass
class Settings:
    seeds: list[int]
    train_size: int = 100
    test_size: int = 200
    task_max_tokens: int = 32  # a label, or {"label": "..."}: a runaway reply costs both systems alike
    prompt_max_tokens: int = 200
    max_errors: int = 1000  # DSPy raises on unparsable replies; neither run may abort on them
    threads: int = 1
    systems: tuple[str, ...] = SYSTEMS


# --- counting every call at the provider -----------------------------------------------


@dataclass
class Tally:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0


@dataclass
class CallCounter:
    """Calls that reach the model, per provider name (cache hits never get here)."""

    tallies: dict[str, Tally] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, provider: str, usage: Any, seconds: float) -> None:
        with self.lock:
            tally = self.tallies.setdefault(provider, Tally())
            tally.calls += 1
            tally.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            tally.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
            tally.model_seconds += seconds

    def snapshot(self) -> dict[str, Tally]:
        with self.lock:
            return {name: Tally(**asdict(t)) for name, t in self.tallies.items()}


COUNTER = CallCounter()


def register_providers() -> Any:
    """Route ``local/`` and ``localprompt/`` to the embedded model through one counting wrapper."""
    from pytest_mipro.lm import local
    from pytest_mipro.lm._litellm import get_litellm, register_provider

    litellm = get_litellm()  # registers our providers first; ours below replace "local"
    inner = local.LocalModelHandler()

    class CountingHandler(litellm.CustomLLM):  # type: ignore[misc,name-defined]
        def __init__(self, provider: str) -> None:
            super().__init__()
            self.provider = provider

        def completion(self, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            response = inner.completion(*args, **kwargs)
            COUNTER.add(self.provider, response.usage, time.perf_counter() - started)
            return response

    for provider in (TASK_PROVIDER, PROMPT_PROVIDER):
        register_provider(provider, CountingHandler(provider))
        # DSPy's JSONAdapter asks litellm whether the model takes a response schema.
        litellm.register_model({f"{provider}/{MODEL}": _model_info(provider)})
    return litellm


def _model_info(provider: str) -> dict[str, Any]:
    return {
        "litellm_provider": provider,
        "mode": "chat",
        "supports_response_schema": True,
        "max_tokens": 4096,
        "max_input_tokens": 4096,
        "max_output_tokens": 4096,
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
    }


# --- task -----------------------------------------------------------------------------


def load_rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def normalize(value: Any) -> str:
    return str(value or "").strip().strip(".\"'` ").lower()


def metric(example: Any, prediction: Any, trace: Any = None) -> bool:
    """Exact match of the normalized label (the same function for both systems)."""
    return normalize(getattr(prediction, "label", "")) == normalize(example["label"])


@dataclass
class TestScore:
    accuracy: float
    failures: int  # the program raised (DSPy: a reply that did not parse)
    seconds: float


def score_on(predict: Callable[[str], Any], test: Sequence[Any]) -> TestScore:
    started = time.perf_counter()
    correct = failures = 0
    for example in test:
        try:
            correct += metric(example, predict(example["text"]))
        except Exception:  # noqa: BLE001 - a failed example scores 0, as in both Evaluates
            failures += 1
    return TestScore(correct / len(test), failures, time.perf_counter() - started)


@dataclass
class RunResult:
    system: str
    seed: int
    unoptimized: TestScore
    optimized: TestScore
    task_calls: int
    prompt_calls: int
    prompt_tokens: int
    completion_tokens: int
    model_seconds: float
    wall_seconds: float
    valset_score: float | None
    program: dict[str, Any]

    @property
    def calls(self) -> int:
        return self.task_calls + self.prompt_calls


def measured(system: str, seed: int, compile_: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run ``compile_`` and count what reached the model meanwhile."""
    before = COUNTER.snapshot()
    started = time.perf_counter()
    program = compile_()
    wall = time.perf_counter() - started
    after = COUNTER.snapshot()
    delta = {p: _minus(after.get(p, Tally()), before.get(p, Tally())) for p in (TASK_PROVIDER, PROMPT_PROVIDER)}
    task, prompt = delta[TASK_PROVIDER], delta[PROMPT_PROVIDER]
    counts = {
        "task_calls": task.calls,
        "prompt_calls": prompt.calls,
        "prompt_tokens": task.prompt_tokens + prompt.prompt_tokens,
        "completion_tokens": task.completion_tokens + prompt.completion_tokens,
        "model_seconds": round(task.model_seconds + prompt.model_seconds, 2),
        "wall_seconds": round(wall, 2),
    }
    log(f"{system} seed {seed}: {counts}")
    return program, counts


def _minus(a: Tally, b: Tally) -> Tally:
    return Tally(a.calls - b.calls, a.prompt_tokens - b.prompt_tokens, a.completion_tokens - b.completion_tokens,
                 a.model_seconds - b.model_seconds)


# --- pytest_mipro ---------------------------------------------------------------------


class Ours:
    def __init__(self, settings: Settings) -> None:
        import pytest_mipro as pm
        from pytest_mipro.signature import Field

        self.pm = pm
        self.settings = settings
        fields = (Field("text", "input", TEXT_DESC), Field("label", "output", LABEL_DESC))
        self.signature = pm.Signature(instructions=INSTRUCTIONS, fields=fields)

    def examples(self, rows: Sequence[dict[str, str]]) -> list[Any]:
        return [self.pm.Example(row).with_inputs("text") for row in rows]

    def student(self) -> Any:
        return self.pm.Predict(self.signature)

    def lms(self) -> tuple[Any, Any]:
        task = self.pm.LM(f"{TASK_PROVIDER}/{MODEL}", max_tokens=self.settings.task_max_tokens)
        prompt = self.pm.LM(f"{PROMPT_PROVIDER}/{MODEL}", max_tokens=self.settings.prompt_max_tokens)
        return task, prompt

    def score(self, program: Any, test: Sequence[Any], task_lm: Any) -> TestScore:
        with self.pm.context(lm=task_lm, cache_dir=tempfile.mkdtemp(prefix="mipro-test-")):
            return score_on(lambda text: program(text=text), test)

    def optimize(self, seed: int, train: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
        task_lm, prompt_lm = self.lms()
        optimizer = self.pm.MIPROv2(
            metric, prompt_model=prompt_lm, task_model=task_lm, auto="light", seed=seed,
            num_threads=1, max_errors=self.settings.max_errors,
        )
        with self.pm.context(cache_dir=tempfile.mkdtemp(prefix="mipro-cold-")):
            program, counts = measured("ours", seed, lambda: optimizer.compile(self.student(), trainset=train))
        result = optimizer.last_result
        counts["valset_score"] = result.score if result else None
        counts["program"] = program.dump_state()
        counts["trial_logs"] = [t.to_dict() for t in result.trial_logs] if result else []
        return program, counts


# --- DSPy -----------------------------------------------------------------------------


class Dspy:
    def __init__(self, settings: Settings) -> None:
        import dspy

        self.dspy = dspy
        self.settings = settings
        logging.getLogger("dspy").setLevel(logging.WARNING)

        class Topic(dspy.Signature):
            text: str = dspy.InputField(desc=TEXT_DESC)
            label: str = dspy.OutputField(desc=LABEL_DESC)

        self.signature = Topic.with_instructions(INSTRUCTIONS)

    def examples(self, rows: Sequence[dict[str, str]]) -> list[Any]:
        return [self.dspy.Example(**row).with_inputs("text") for row in rows]

    def student(self) -> Any:
        return self.dspy.Predict(self.signature)

    def lms(self) -> tuple[Any, Any]:
        def lm(provider: str, max_tokens: int) -> Any:
            return self.dspy.LM(f"{provider}/{MODEL}", engine="litellm", temperature=0.0, max_tokens=max_tokens)

        return lm(TASK_PROVIDER, self.settings.task_max_tokens), lm(PROMPT_PROVIDER, self.settings.prompt_max_tokens)

    def fresh_cache(self, prefix: str) -> None:
        self.dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True,
                                  disk_cache_dir=tempfile.mkdtemp(prefix=prefix))

    def score(self, program: Any, test: Sequence[Any], task_lm: Any) -> TestScore:
        self.fresh_cache("dspy-test-")
        with self.dspy.context(lm=task_lm, adapter=self.dspy.JSONAdapter()):
            return score_on(lambda text: program(text=text), test)

    def optimize(self, seed: int, train: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
        task_lm, prompt_lm = self.lms()
        self.dspy.configure(lm=task_lm, adapter=self.dspy.JSONAdapter())
        self.fresh_cache("dspy-cold-")
        optimizer = self.dspy.MIPROv2(
            metric=metric, prompt_model=prompt_lm, task_model=task_lm, auto="light", seed=seed,
            num_threads=1, max_errors=self.settings.max_errors,
        )
        program, counts = measured("dspy", seed, lambda: optimizer.compile(self.student(), trainset=list(train)))
        counts["valset_score"] = _fraction(getattr(program, "score", None))
        counts["program"] = {
            "instructions": program.signature.instructions,
            "demos": [dict(d) if hasattr(d, "keys") else d.toDict() for d in program.demos],
        }
        return program, counts


def _fraction(score: Any) -> float | None:
    """DSPy reports percentages."""
    return None if score is None else float(score) / 100.0


# --- the run --------------------------------------------------------------------------


def run_system(
    system: str, settings: Settings, rows: list[dict[str, str]], on_result: Callable[[RunResult], None]
) -> None:
    runner: Ours | Dspy = Ours(settings) if system == "ours" else Dspy(settings)
    train = runner.examples(rows[: settings.train_size])
    test = runner.examples(rows[settings.train_size : settings.train_size + settings.test_size])
    task_lm, _ = runner.lms()
    # temperature 0: the unoptimized program scores the same for every seed, so once per system
    unoptimized = runner.score(runner.student(), test, task_lm)
    log(f"{system} unoptimized: {unoptimized}")
    for seed in settings.seeds:
        program, counts = runner.optimize(seed, train)
        optimized = runner.score(program, test, task_lm)
        log(f"{system} seed {seed} optimized: {optimized}")
        trial_logs = counts.pop("trial_logs", None)
        result = RunResult(system=system, seed=seed, unoptimized=unoptimized, optimized=optimized, **counts)
        if trial_logs is not None:
            result.program["_trial_logs"] = trial_logs
        on_result(result)


def summary(results: list[RunResult]) -> dict[str, dict[str, float]]:
    by_system: dict[str, dict[str, float]] = {}
    for system in SYSTEMS:
        runs = [r for r in results if r.system == system]
        if not runs:
            continue
        by_system[system] = {
            "unoptimized_accuracy": statistics.mean(r.unoptimized.accuracy for r in runs),
            "optimized_accuracy": statistics.mean(r.optimized.accuracy for r in runs),
            "calls": statistics.mean(r.calls for r in runs),
            "task_calls": statistics.mean(r.task_calls for r in runs),
            "prompt_calls": statistics.mean(r.prompt_calls for r in runs),
            "tokens": statistics.mean(r.prompt_tokens + r.completion_tokens for r in runs),
            "wall_seconds": statistics.mean(r.wall_seconds for r in runs),
        }
    return by_system


def targets(means: dict[str, dict[str, float]]) -> dict[str, Any]:
    if set(means) != set(SYSTEMS):
        return {}
    ours, theirs = means["ours"], means["dspy"]
    return {
        "accuracy_at_least_dspy": ours["optimized_accuracy"] >= theirs["optimized_accuracy"],
        "calls_at_most_half": ours["calls"] <= theirs["calls"] / 2,
        "wall_time_at_most_half": ours["wall_seconds"] <= theirs["wall_seconds"] / 2,
        "calls_ratio": round(ours["calls"] / theirs["calls"], 3) if theirs["calls"] else None,
        "wall_time_ratio": round(ours["wall_seconds"] / theirs["wall_seconds"], 3) if theirs["wall_seconds"] else None,
    }


def markdown(results: list[RunResult], settings: Settings, meta: dict[str, Any]) -> str:
    lines = [
        (
            f"AG News, {settings.train_size} train (each optimizer validates on the last 80% of it) / "
            f"{settings.test_size} test, Gemma 3 270M base (GGUF, llama.cpp, {settings.threads} thread), "
            f"`auto=\"light\"`, {meta['date']}, {meta['machine']}."
        ),
        "",
        "| system | seed | test acc. unoptimized | test acc. optimized | LM calls task / prompt | tokens | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tokens = r.prompt_tokens + r.completion_tokens
        lines.append(
            f"| {r.system} | {r.seed} | {r.unoptimized.accuracy:.3f} | {r.optimized.accuracy:.3f} | "
            f"{r.task_calls} / {r.prompt_calls} | {tokens:,} | {r.wall_seconds:.0f} |"
        )
    means = summary(results)
    for system, m in means.items():
        lines.append(
            f"| **{system} mean** | | {m['unoptimized_accuracy']:.3f} | {m['optimized_accuracy']:.3f} | "
            f"{m['task_calls']:.0f} / {m['prompt_calls']:.0f} | {m['tokens']:,.0f} | {m['wall_seconds']:.0f} |"
        )
    goal = targets(means)
    if goal:
        lines += ["", _targets_line(goal)]
    return "\n".join(lines) + "\n"


def _targets_line(goal: dict[str, Any]) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return (
        f"Targets: accuracy >= DSPy's: {mark(goal['accuracy_at_least_dspy'])}; "
        f"LM calls <= half: {mark(goal['calls_at_most_half'])} (ratio {goal['calls_ratio']}); "
        f"wall time <= half: {mark(goal['wall_time_at_most_half'])} (ratio {goal['wall_time_ratio']})."
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path, list[Path] | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated; DSPy treats seed 0 as unset")
    parser.add_argument("--quick", action="store_true", help="seed 1 only and a 50-example test split")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--train-size", type=int, default=100)
    parser.add_argument("--test-size", type=int)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads ($MIPRO_LOCAL_THREADS)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for compare_dspy.{json,md}")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="DIR",
                        help="no run: combine the compare_dspy.json of runs made apart (e.g. one per system) into --out")
    args = parser.parse_args(argv)
    seeds = [1] if args.quick and args.seeds == "1,2,3" else [int(s) for s in args.seeds.split(",")]
    settings = Settings(seeds=seeds, train_size=args.train_size, threads=args.threads, systems=tuple(args.systems.split(",")))
    settings.test_size = args.test_size or (50 if args.quick else settings.test_size)
    return settings, args.out, args.merge


def main(argv: Sequence[str] | None = None) -> int:
    settings, out, merge = parse_args(argv)
    if merge:
        return merged(merge, out)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["MIPRO_LOCAL_THREADS"] = str(settings.threads)
    os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="dspy-import-"))
    logging.getLogger("optuna").setLevel(logging.WARNING)
    register_providers()
    rows = load_rows()
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
    }
    results: list[RunResult] = []

    def keep(result: RunResult) -> None:
        results.append(result)  # written after every run, so a long run can be read as it goes
        write(out, results, settings, meta, markdown(results, settings, meta))

    for system in settings.systems:
        run_system(system, settings, rows, keep)
    print(markdown(results, settings, meta))
    return 0


def merged(sources: list[Path], out: Path) -> int:
    """Combine runs saved apart; settings and machine come from the first source."""
    payloads = [json.loads((path / "compare_dspy.json").read_text(encoding="utf-8")) for path in sources]
    first = payloads[0]
    settings = Settings(**{**first["settings"], "seeds": sorted({s for p in payloads for s in p["settings"]["seeds"]}),
                           "systems": tuple(dict.fromkeys(x for p in payloads for x in p["settings"]["systems"]))})
    results = [_run_from_dict(run) for payload in payloads for run in payload["runs"]]
    meta = {"date": first["date"], "machine": first["machine"]}
    text = markdown(results, settings, meta)
    write(out, results, settings, meta, text)
    print(text)
    return 0


def _run_from_dict(run: dict[str, Any]) -> RunResult:
    names = {f for f in RunResult.__dataclass_fields__}
    values = {k: v for k, v in run.items() if k in names}
    values["unoptimized"], values["optimized"] = TestScore(**run["unoptimized"]), TestScore(**run["optimized"])
    return RunResult(**values)


def write(out: Path, results: list[RunResult], settings: Settings, meta: dict[str, Any], text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    means = summary(results)
    payload = {
        **meta,
        "versions": _versions(),
        "settings": asdict(settings),
        "runs": [{**asdict(r), "calls": r.calls} for r in results],
        "means": means,
        "targets": targets(means),
    }
    (out / "compare_dspy.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "compare_dspy.md").write_text(text, encoding="utf-8")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("pytest-mipro", "dspy", "litellm", "llama_cpp_python", "optuna"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


if __name__ == "__main__":
    sys.exit(main())
