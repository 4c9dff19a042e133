"""dspy.MIPROv2 against pytest_mipro.MIPROv2 on one task, one model, one split.

    .venv-bench/bin/python bench/compare_dspy.py                 # every task, seeds 1, 2, 3
    .venv-bench/bin/python bench/compare_dspy.py --task snips_intent --quick  # one task, seed 1, 50 test rows
    .venv-bench/bin/python bench/compare_dspy.py --systems ours,random_demos  # without DSPy

Both optimizers run ``auto="light"`` with their defaults on each task (``--task``, see TASKS:
AG News topics, 4 classes; SNIPS intents, 7 classes; SNIPS place extraction, scored by token
F1): the first ``train_size`` rows train, each optimizer cuts its own validation set from them
the same way, the next ``test_size`` rows are the held-out test split. ``random_demos`` is
what a user gets without an optimizer: the mean test score of ``--random-sets`` random
labeled demo sets of the optimizers' set size (``max_labeled_demos``, 4), with its spread.
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
import random
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
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
MODEL = "gemma-3-270m"
TASK_PROVIDER, PROMPT_PROVIDER = "local", "localprompt"
SYSTEMS = ("ours", "dspy", "random_demos")
RANDOM_DEMOS = 4  # the optimizers' max_labeled_demos: the size of a labeled demo set


def normalize(value: Any) -> str:
    return str(value or "").strip().strip(".\"'` ").lower()


def exact_match(gold: str, predicted: Any) -> float:
    return float(normalize(predicted) == normalize(gold))


def token_f1(gold: str, predicted: Any) -> float:
    """SQuAD-style token F1 of the normalized answers: partial credit for a partly right span."""
    gold_tokens, tokens = _tokens(gold), _tokens(predicted)
    common = sum(min(gold_tokens.count(t), tokens.count(t)) for t in set(tokens))
    if not common:
        return 0.0
    precision, recall = common / len(tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _tokens(value: Any) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in str(value or "").lower()).split()


@dataclass(frozen=True)
class Task:
    """One benchmark task: a single-predictor program ``input -> output`` over a vendored sample."""

    name: str
    title: str
    data: Path
    input: str
    input_desc: str
    output: str
    output_desc: str
    instructions: str
    score: Callable[[str, Any], float]
    metric_name: str


TASKS = {
    "ag_news": Task(
        "ag_news", "AG News topics (4 classes)", DATA / "ag_news_sample.jsonl",
        "text", "a news article: headline and first sentences",
        "label", "one of: world, sports, business, science",
        "Classify the news article by topic: world, sports, business or science.", exact_match, "accuracy",
    ),
    "snips_intent": Task(
        "snips_intent", "SNIPS intents (7 classes)", DATA / "snips" / "intent.jsonl",
        "text", "a request to a voice assistant",
        "label", "one of: add_to_playlist, book_restaurant, get_weather, play_music, rate_book, "
        "search_creative_work, search_screening_event",
        "Classify the request by intent: add_to_playlist, book_restaurant, get_weather, play_music, "
        "rate_book, search_creative_work or search_screening_event.", exact_match, "accuracy",
    ),
    "snips_place": Task(
        "snips_place", "SNIPS place extraction (token F1)", DATA / "snips" / "place.jsonl",
        "text", "a weather or restaurant request that names a place",
        "place", "the place named in the request, copied from it",
        "Copy the place (city, state, country or landmark) named in the request.", token_f1, "token F1",
    ),
}


@dataclass
class Settings:
    seeds: list[int]
    task: str = "ag_news"
    train_size: int = 100
    test_size: int = 200
    task_max_tokens: int = 32  # a label, or {"label": "..."}: a runaway reply costs both systems alike
    prompt_max_tokens: int = 200
    max_errors: int = 1000  # DSPy raises on unparsable replies; neither run may abort on them
    threads: int = 1
    systems: tuple[str, ...] = ("ours", "dspy")
    random_sets: int = 20
    demo_set_strategy: str = "random"


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


def load_rows(task: Task) -> list[dict[str, str]]:
    return [json.loads(line) for line in task.data.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Metric:
    """The task's score of a prediction (the same function for every system)."""

    task: Task

    def __call__(self, example: Any, prediction: Any, trace: Any = None) -> float:
        return self.task.score(example[self.task.output], getattr(prediction, self.task.output, ""))


@dataclass
class TestScore:
    accuracy: float
    failures: int  # the program raised (DSPy: a reply that did not parse)
    seconds: float


def score_on(program: Any, test: Sequence[Any], metric: Metric) -> TestScore:
    started = time.perf_counter()
    correct = 0.0
    failures = 0
    for example in test:
        try:
            correct += metric(example, program(**example.inputs()))
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
    breakdown: dict[str, int] = field(default_factory=dict)  # where the calls went (ours only)
    spread: float | None = None  # random_demos: standard deviation of the sets' test scores

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


def call_breakdown(task_calls: int, prompt_calls: int, trial_logs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Where the calls of one optimization went: proposer, teacher runs and each kind of evaluation.

    A trial log's ``lm_calls`` is the run's count so far (task and prompt model), so a trial
    made the difference to the one before. The first trial is taken to have paid for each of
    its examples (cold cache); what came before it is the proposer's and the teacher's.
    """
    by_kind: dict[str, int] = {}
    before = None
    for trial in sorted(trial_logs, key=lambda t: int(t["number"])):
        kind = str(trial["kind"]) + ("-pruned" if trial.get("pruned") else "")
        spent = int(trial["num_examples"]) if before is None else int(trial["lm_calls"]) - before
        by_kind[kind] = by_kind.get(kind, 0) + spent
        before = int(trial["lm_calls"])
    teacher = task_calls - sum(by_kind.values())
    return {"proposer": prompt_calls, "teacher": teacher, **dict(sorted(by_kind.items()))}


# --- pytest_mipro ---------------------------------------------------------------------


class Ours:
    def __init__(self, settings: Settings) -> None:
        import pytest_mipro as pm
        from pytest_mipro.signature import Field

        self.pm = pm
        self.settings = settings
        self.task = TASKS[settings.task]
        self.metric = Metric(self.task)
        fields = (Field(self.task.input, "input", self.task.input_desc),
                  Field(self.task.output, "output", self.task.output_desc))
        self.signature = pm.Signature(instructions=self.task.instructions, fields=fields)

    def examples(self, rows: Sequence[dict[str, str]]) -> list[Any]:
        return [self.pm.Example(row).with_inputs(self.task.input) for row in rows]

    def student(self, demos: Sequence[Any] = ()) -> Any:
        program = self.pm.Predict(self.signature)
        program.demos = list(demos)
        return program

    def lms(self) -> tuple[Any, Any]:
        task = self.pm.LM(f"{TASK_PROVIDER}/{MODEL}", max_tokens=self.settings.task_max_tokens)
        prompt = self.pm.LM(f"{PROMPT_PROVIDER}/{MODEL}", max_tokens=self.settings.prompt_max_tokens)
        return task, prompt

    def score(self, program: Any, test: Sequence[Any], task_lm: Any) -> TestScore:
        with self.pm.context(lm=task_lm, cache_dir=tempfile.mkdtemp(prefix="mipro-test-")):
            return score_on(program, test, self.metric)

    def optimize(self, seed: int, train: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
        task_lm, prompt_lm = self.lms()
        optimizer = self.pm.MIPROv2(
            self.metric, prompt_model=prompt_lm, task_model=task_lm, auto="light", seed=seed,
            num_threads=1, max_errors=self.settings.max_errors, demo_set_strategy=self.settings.demo_set_strategy,
        )
        with self.pm.context(cache_dir=tempfile.mkdtemp(prefix="mipro-cold-")):
            program, counts = measured("ours", seed, lambda: optimizer.compile(self.student(), trainset=train))
        result = optimizer.last_result
        counts["valset_score"] = result.score if result else None
        counts["program"] = program.dump_state()
        counts["trial_logs"] = [t.to_dict() for t in result.trial_logs] if result else []
        counts["breakdown"] = call_breakdown(counts["task_calls"], counts["prompt_calls"], counts["trial_logs"])
        return program, counts


class RandomDemos(Ours):
    """No optimizer: the task's instructions with ``random_sets`` random labeled demo sets."""

    def optimize(self, seed: int, train: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError  # scored in run_random_demos: there is no single program

    def sets(self, seed: int, train: Sequence[Any]) -> list[list[Any]]:
        rng = random.Random(seed)
        return [rng.sample(list(train), min(RANDOM_DEMOS, len(train))) for _ in range(self.settings.random_sets)]


# --- DSPy -----------------------------------------------------------------------------


class Dspy:
    def __init__(self, settings: Settings) -> None:
        import dspy

        self.dspy = dspy
        self.settings = settings
        self.task = task = TASKS[settings.task]
        self.metric = Metric(task)
        logging.getLogger("dspy").setLevel(logging.WARNING)
        namespace = {
            "__annotations__": {task.input: str, task.output: str},
            "__doc__": task.instructions,
            task.input: dspy.InputField(desc=task.input_desc),
            task.output: dspy.OutputField(desc=task.output_desc),
        }
        self.signature = type("TaskSignature", (dspy.Signature,), namespace)

    def examples(self, rows: Sequence[dict[str, str]]) -> list[Any]:
        return [self.dspy.Example(**row).with_inputs(self.task.input) for row in rows]

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
            return score_on(program, test, self.metric)

    def optimize(self, seed: int, train: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
        task_lm, prompt_lm = self.lms()
        self.dspy.configure(lm=task_lm, adapter=self.dspy.JSONAdapter())
        self.fresh_cache("dspy-cold-")
        optimizer = self.dspy.MIPROv2(
            metric=self.metric, prompt_model=prompt_lm, task_model=task_lm, auto="light", seed=seed,
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

UNOPTIMIZED: dict[tuple[str, str, int], TestScore] = {}


def run_system(
    system: str, settings: Settings, rows: list[dict[str, str]], on_result: Callable[[RunResult], None]
) -> None:
    runner: Ours | Dspy = {"ours": Ours, "dspy": Dspy, "random_demos": RandomDemos}[system](settings)
    train = runner.examples(rows[: settings.train_size])
    test = runner.examples(rows[settings.train_size : settings.train_size + settings.test_size])
    task_lm, _ = runner.lms()
    # temperature 0: the unoptimized program scores the same for every seed (and for ours and
    # random_demos, which share the program), so once per task and kind of program
    kind = (settings.task, "dspy" if isinstance(runner, Dspy) else "ours", settings.test_size)
    if kind not in UNOPTIMIZED:
        UNOPTIMIZED[kind] = runner.score(runner.student(), test, task_lm)
        log(f"{system} unoptimized: {UNOPTIMIZED[kind]}")
    unoptimized = UNOPTIMIZED[kind]
    for seed in settings.seeds:
        if isinstance(runner, RandomDemos):
            on_result(run_random_demos(runner, seed, train, test, unoptimized))
            continue
        program, counts = runner.optimize(seed, train)
        optimized = runner.score(program, test, task_lm)
        log(f"{system} seed {seed} optimized: {optimized}")
        trial_logs = counts.pop("trial_logs", None)
        result = RunResult(system=system, seed=seed, unoptimized=unoptimized, optimized=optimized, **counts)
        if trial_logs is not None:
            result.program["_trial_logs"] = trial_logs
        on_result(result)


def run_random_demos(runner: RandomDemos, seed: int, train: Sequence[Any], test: Sequence[Any],
                     unoptimized: TestScore) -> RunResult:
    """The mean test score of random labeled demo sets, with its spread (no optimization calls)."""
    task_lm, _ = runner.lms()
    started = time.perf_counter()
    scores = [runner.score(runner.student(demos), test, task_lm) for demos in runner.sets(seed, train)]
    accuracies = [s.accuracy for s in scores]
    mean = TestScore(statistics.mean(accuracies), sum(s.failures for s in scores), time.perf_counter() - started)
    log(f"random_demos seed {seed}: mean {mean.accuracy:.3f}, sd {statistics.pstdev(accuracies):.3f}, "
        f"min {min(accuracies):.3f}, max {max(accuracies):.3f}")
    return RunResult(
        system="random_demos", seed=seed, unoptimized=unoptimized, optimized=mean, task_calls=0, prompt_calls=0,
        prompt_tokens=0, completion_tokens=0, model_seconds=0.0, wall_seconds=0.0, valset_score=None,
        program={"set_scores": accuracies}, spread=round(statistics.pstdev(accuracies), 4),
    )


def summary(results: list[RunResult]) -> dict[str, dict[str, Any]]:
    by_system: dict[str, dict[str, Any]] = {}
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
            "breakdown": _mean_breakdown([r.breakdown for r in runs if r.breakdown]),
        }
        if system == "random_demos":
            by_system[system]["spread"] = statistics.mean(r.spread or 0.0 for r in runs)
    return by_system


def _mean_breakdown(breakdowns: list[dict[str, int]]) -> dict[str, float]:
    keys = sorted({k for b in breakdowns for k in b})
    return {k: round(statistics.mean(b.get(k, 0) for b in breakdowns), 1) for k in keys} if breakdowns else {}


def targets(means: dict[str, dict[str, Any]]) -> dict[str, Any]:
    goal: dict[str, Any] = {}
    if "ours" in means and "random_demos" in means:
        goal["above_random_demos"] = means["ours"]["optimized_accuracy"] > means["random_demos"]["optimized_accuracy"]
    if "ours" not in means or "dspy" not in means:
        return goal
    ours, theirs = means["ours"], means["dspy"]
    return {
        **goal,
        "accuracy_at_least_dspy": ours["optimized_accuracy"] >= theirs["optimized_accuracy"],
        "calls_at_most_half": ours["calls"] <= theirs["calls"] / 2,
        "wall_time_at_most_half": ours["wall_seconds"] <= theirs["wall_seconds"] / 2,
        "calls_ratio": round(ours["calls"] / theirs["calls"], 3) if theirs["calls"] else None,
        "wall_time_ratio": round(ours["wall_seconds"] / theirs["wall_seconds"], 3) if theirs["wall_seconds"] else None,
    }


def markdown(results: list[RunResult], settings: Settings, meta: dict[str, Any]) -> str:
    task = TASKS[settings.task]
    lines = [
        (
            f"{task.title}, {settings.train_size} train (each optimizer validates on the last 80% of it) / "
            f"{settings.test_size} test, Gemma 3 270M base (GGUF, llama.cpp, {settings.threads} thread), "
            f"`auto=\"light\"`, demo_set_strategy `{settings.demo_set_strategy}` (ours), {meta['date']}, "
            f"{meta['machine']}. Scores: test {task.metric_name}; random_demos: mean of "
            f"{settings.random_sets} random {RANDOM_DEMOS}-demo sets (± their standard deviation)."
        ),
        "",
        "| system | seed | test score unoptimized | test score optimized | LM calls task / prompt | tokens | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tokens = r.prompt_tokens + r.completion_tokens
        optimized = f"{r.optimized.accuracy:.3f}" + (f" ± {r.spread:.3f}" if r.spread is not None else "")
        lines.append(
            f"| {r.system} | {r.seed} | {r.unoptimized.accuracy:.3f} | {optimized} | "
            f"{r.task_calls} / {r.prompt_calls} | {tokens:,} | {r.wall_seconds:.0f} |"
        )
    means = summary(results)
    for system, m in means.items():
        lines.append(
            f"| **{system} mean** | | {m['unoptimized_accuracy']:.3f} | {m['optimized_accuracy']:.3f} | "
            f"{m['task_calls']:.0f} / {m['prompt_calls']:.0f} | {m['tokens']:,.0f} | {m['wall_seconds']:.0f} |"
        )
    if means.get("ours", {}).get("breakdown"):
        parts = ", ".join(f"{k} {v:g}" for k, v in means["ours"]["breakdown"].items())
        lines += ["", f"Where ours' calls went (mean per seed): {parts}."]
    goal = targets(means)
    if goal:
        lines += ["", _targets_line(goal)]
    return "\n".join(lines) + "\n"


def _targets_line(goal: dict[str, Any]) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    parts = []
    if "above_random_demos" in goal:
        parts.append(f"above random demo sets: {mark(goal['above_random_demos'])}")
    if "accuracy_at_least_dspy" in goal:
        parts += [
            f"score >= DSPy's: {mark(goal['accuracy_at_least_dspy'])}",
            f"LM calls <= half: {mark(goal['calls_at_most_half'])} (ratio {goal['calls_ratio']})",
            f"wall time <= half: {mark(goal['wall_time_at_most_half'])} (ratio {goal['wall_time_ratio']})",
        ]
    return "Targets: " + "; ".join(parts) + "."


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> tuple[list[Settings], Path, list[Path] | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="all", help=f"one of {', '.join(TASKS)}, or all (default)")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated; DSPy treats seed 0 as unset")
    parser.add_argument("--quick", action="store_true", help="seed 1 only and a 50-example test split")
    parser.add_argument("--systems", default="ours,dspy", help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--train-size", type=int, default=100)
    parser.add_argument("--test-size", type=int)
    parser.add_argument("--random-sets", type=int, default=20, help="random_demos: how many random demo sets")
    parser.add_argument("--demo-set-strategy", default="random", help="ours: MIPROv2(demo_set_strategy=...)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads ($MIPRO_LOCAL_THREADS)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="directory for compare_dspy[_TASK].{json,md} (no suffix for ag_news)")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="DIR",
                        help="no run: combine the compare_dspy.json of runs made apart (e.g. one per system) into --out")
    args = parser.parse_args(argv)
    tasks = list(TASKS) if args.task == "all" else [args.task]
    unknown = [t for t in tasks if t not in TASKS] + [s for s in args.systems.split(",") if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown task or system {unknown}: tasks are {', '.join(TASKS)}; systems {', '.join(SYSTEMS)}")
    seeds = [1] if args.quick and args.seeds == "1,2,3" else [int(s) for s in args.seeds.split(",")]
    settings = [
        Settings(seeds=seeds, task=task, train_size=args.train_size, threads=args.threads,
                 systems=tuple(args.systems.split(",")), random_sets=args.random_sets,
                 demo_set_strategy=args.demo_set_strategy,
                 test_size=args.test_size or (50 if args.quick else 200))
        for task in tasks
    ]
    return settings, args.out, args.merge


def result_name(task: str) -> str:
    return "compare_dspy" if task == "ag_news" else f"compare_dspy_{task}"


def main(argv: Sequence[str] | None = None) -> int:
    all_settings, out, merge = parse_args(argv)
    if merge:
        return merged(merge, out, result_name(all_settings[0].task))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["MIPRO_LOCAL_THREADS"] = str(all_settings[0].threads)
    os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="dspy-import-"))
    logging.getLogger("optuna").setLevel(logging.WARNING)
    register_providers()
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
    }
    for settings in all_settings:
        rows = load_rows(TASKS[settings.task])
        results: list[RunResult] = []

        def keep(result: RunResult, settings: Settings = settings, results: list[RunResult] = results) -> None:
            results.append(result)  # written after every run, so a long run can be read as it goes
            write(out, result_name(settings.task), results, settings, meta, markdown(results, settings, meta))

        for system in settings.systems:
            run_system(system, settings, rows, keep)
        print(markdown(results, settings, meta))
    return 0


def merged(sources: list[Path], out: Path, name: str) -> int:
    """Combine runs saved apart; settings and machine come from the first source."""
    payloads = [json.loads((path / f"{name}.json").read_text(encoding="utf-8")) for path in sources]
    first = payloads[0]
    settings = Settings(**{**first["settings"], "seeds": sorted({s for p in payloads for s in p["settings"]["seeds"]}),
                           "systems": tuple(dict.fromkeys(x for p in payloads for x in p["settings"]["systems"]))})
    results = [_run_from_dict(run) for payload in payloads for run in payload["runs"]]
    meta = {"date": first["date"], "machine": first["machine"]}
    text = markdown(results, settings, meta)
    write(out, name, results, settings, meta, text)
    print(text)
    return 0


def _run_from_dict(run: dict[str, Any]) -> RunResult:
    names = {f for f in RunResult.__dataclass_fields__}
    values = {k: v for k, v in run.items() if k in names}
    values["unoptimized"], values["optimized"] = TestScore(**run["unoptimized"]), TestScore(**run["optimized"])
    trial_logs = run.get("program", {}).get("_trial_logs")
    if trial_logs:  # recomputed: runs saved before the breakdown took differences have it wrong
        values["breakdown"] = call_breakdown(run["task_calls"], run["prompt_calls"], trial_logs)
    return RunResult(**values)


def write(out: Path, name: str, results: list[RunResult], settings: Settings, meta: dict[str, Any], text: str) -> None:
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
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(text, encoding="utf-8")


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
