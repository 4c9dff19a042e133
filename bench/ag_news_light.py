"""MIPROv2(auto="light") on AG News with the embedded local model: held-out accuracy before and after.

    python bench/ag_news_light.py            # prints a markdown table

Data: bench/data/ag_news_sample.jsonl, whose rows are disjoint from the tests' AG News rows.
The first 100 rows are the trainset (MIPROv2's default split: 20 train, 80 validation);
the next 200 are held out and only scored at the end. The LM cache lives in a fresh
temporary folder unless --cache-dir is given, so every call is counted as made.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from pytest_mipro import (
    LM,
    Evaluate,
    Example,
    MIPROv2,
    Predict,
    configure,
    load_examples,
)
from pytest_mipro.lm import LOCAL_MODEL

DATA = Path(__file__).resolve().parent / "data" / "ag_news_sample.jsonl"
INSTRUCTIONS = "Classify the news article by topic. Answer with one word: world, sports, business or science."


def topic_metric(example: Example, prediction: Any, trace: Any = None) -> bool:
    """The whole answer must be the label ("Sports." counts; "World, Sports, ..." does not)."""
    return str(prediction.label).strip().strip(".").lower() == example.label


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=100, help="trainset rows (default 100)")
    parser.add_argument("--test", type=int, default=200, help="held-out rows (default 200)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--cache-dir", help="LM cache folder (default: a fresh temporary one)")
    parser.add_argument("--save", help="write the optimized program here (.json or .yaml)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    examples = load_examples(DATA, inputs=["text"])
    train, test = examples[: args.train], examples[args.train : args.train + args.test]
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="mipro-bench-cache-")
    # One-word answers need few tokens; instructions get more room (and the proposer's temperature).
    task, prompt = LM(LOCAL_MODEL, max_tokens=16), LM(LOCAL_MODEL, max_tokens=160)
    configure(lm=task, prompt_model=prompt, cache_dir=cache_dir)
    student = Predict("text -> label", instructions=INSTRUCTIONS)

    started = time.monotonic()
    optimizer = MIPROv2(metric=topic_metric, auto="light", seed=args.seed)
    optimized = optimizer.compile(student, trainset=train)
    compile_seconds = time.monotonic() - started
    result = optimizer.last_result
    assert result is not None

    held_out = Evaluate(devset=test, metric=topic_metric)
    before, after = held_out(student), held_out(optimized)
    eval_seconds = time.monotonic() - started - compile_seconds
    if args.save:
        optimized.save(args.save)
    best = optimized.dump_state()["self"]
    kinds = [t.kind.value for t in result.trial_logs]
    minibatches = kinds.count("minibatch")
    full_evals = kinds.count("full")
    stopped = sum(t.pruned for t in result.trial_logs)
    return [
        ("model", f"{LOCAL_MODEL} (task max_tokens=16, prompt model max_tokens=160)"),
        ("data", f"AG News: train {len(train)} (default split {len(result.valset_ids)} validation), held-out test {len(test)}"),
        ("seed", str(args.seed)),
        ("held-out accuracy, unoptimized", f"{before.score:.3f} (parse failures {before.parse_failures}/{before.n})"),
        ("held-out accuracy, optimized", f"**{after.score:.3f}** (parse failures {after.parse_failures}/{after.n})"),
        ("validation score, baseline -> best", f"{result.baseline_score:.3f} -> {result.score:.3f}"),
        ("trials", (f"{result.num_trials}: {minibatches} minibatch evaluations, {full_evals} full, then the baseline; "
                    f"{stopped} of these stopped early by racing")),
        ("optimized program", f"{len(best['demos'])} demos; instruction: {json.dumps(best['instructions'])[:160]}"),
        ("task LM calls (compile)", str(result.task_usage.calls)),
        ("prompt LM calls (compile)", str(result.prompt_model_total_calls)),
        ("cache hits (compile, task + prompt)",
         str(result.task_usage.cache_hits + result.prompt_usage.cache_hits)),
        ("tokens (compile, prompt + completion)",
         str(result.task_usage.tokens + result.prompt_usage.tokens)),
        ("wall time, compile", f"{compile_seconds:.0f} s"),
        ("wall time, held-out evaluation (2 x test)", f"{eval_seconds:.0f} s"),
    ]


def main(argv: list[str]) -> None:
    rows = run(parse_args(argv))
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main(sys.argv[1:])
