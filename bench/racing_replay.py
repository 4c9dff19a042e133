"""What racing costs and saves: replay the search against every candidate's known scores.

Step 1 (``score``, real model, about 15 minutes on 2 cores): bootstrap demos and propose
instructions for one seed of the AG News task of bench/compare_dspy.py, exactly as
``MIPROv2(auto="light")`` does, then score every (instruction, demo set) candidate on the
whole validation set and on a test slice. Writes bench/results/racing_scores_seed<N>.json.

Step 2 (``replay``, half a minute): run the real search code (Optuna TPE, minibatches, full
evaluations, racing) many times with different seeds against those scores, for several
search designs (``race_confidence`` values, minibatch sizes, full evaluations only),
counting the examples each run pays for and the validation and test score of the candidate
it picks. Writes bench/results/racing_replay.md.

    .venv/bin/python bench/racing_replay.py score --seed 1     # and 2, 3
    .venv/bin/python bench/racing_replay.py replay --runs 40   # every saved seed

The replay leaves out the one-time calls (bootstrapping and proposals, 27 in compare_dspy),
which the search design does not touch.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import random
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# (label, SearchSettings overrides): the default first, then the alternatives we measured.
DESIGNS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("default (light): minibatch 35, race_confidence 0.85", {}),
    ("race_confidence None (only certain losers stop)", {"race_confidence": None}),
    ("race_confidence 0.8", {"race_confidence": 0.8}),
    ("race_confidence 0.9", {"race_confidence": 0.9}),
    ("race_confidence 0.95 (medium and heavy; light until 2026-11-29)", {"race_confidence": 0.95}),
    ("race_confidence 0.99", {"race_confidence": 0.99}),
    ("minibatch 20", {"minibatch_size": 20}),
    ("minibatch 25", {"minibatch_size": 25}),
    ("a full evaluation every 10 trials, not 5", {"full_eval_steps": 10}),
    ("8 trials, not 10, at race_confidence 0.95", {"race_confidence": 0.95, "num_trials": 8}),
    ("no minibatches: every trial a raced full evaluation", {"minibatch": False}),
    ("no minibatches, race_confidence 0.98", {"minibatch": False, "race_confidence": 0.98}),
)


# --- step 1: every candidate's scores -------------------------------------------------


def score_candidates(seed: int, test_size: int, out: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import compare_dspy as cd

    from pytest_mipro import config
    from pytest_mipro.optimizer.mipro import ProposerSwitches, _Run

    cd.register_providers()
    ours = cd.Ours(cd.Settings(seeds=[seed]))
    rows = cd.load_rows()
    train, test = ours.examples(rows[:100]), ours.examples(rows[100 : 100 + test_size])
    task_lm, prompt_lm = ours.lms()
    optimizer = ours.pm.MIPROv2(cd.metric, prompt_model=prompt_lm, task_model=task_lm, auto="light", seed=seed,
                                      num_threads=1, max_errors=1000)
    with ours.pm.context(cache_dir=tempfile.mkdtemp(prefix="racing-")):
        student = ours.student()
        # The candidates compile() would search, without running its search.
        plan = optimizer._plan(student, train, None, None, None, None, None, True)
        run = _Run(optimizer, plan, student, None, ProposerSwitches(True, True, True, True), 10, False)
        with config.context(budget=run.budget, lm=run.task_model):
            space = run._candidates()
            evaluate = run._evaluator()
            name = space.names[0]
            scores: dict[str, Any] = {}
            grid = itertools.product(range(len(space.instructions[name])), range(len(space.demo_sets[name])))
            for instruction, demos in grid:
                program = space.build(((instruction, demos),))
                val, held_out = evaluate(program, plan.valset), evaluate(program, test)
                scores[f"{instruction},{demos}"] = {
                    "val": [r.score for r in val.results],
                    "test": [r.score for r in held_out.results],
                }
                print(f"candidate {instruction},{demos}: val {val.score:.3f} test {held_out.score:.3f}", flush=True)
    payload = {"seed": seed, "date": datetime.date.today().isoformat(), "valset_size": len(plan.valset),
               "test_size": len(test), "candidates": scores}
    out.write_text(json.dumps(payload) + "\n", encoding="utf-8")


# --- step 2: replays ------------------------------------------------------------------


class ReplayedEvaluate:
    """Stands in for ``Evaluate``: looks each (candidate, example) score up instead of calling the model."""

    num_threads = 1

    def __init__(self, scores: dict[tuple[int, int], list[float]], uids: dict[str, int]) -> None:
        self.scores, self.uids = scores, uids
        self.calls = 0

    def __call__(self, program: Any, examples: Sequence[Any]) -> Any:
        from pytest_mipro.optimizer.evaluate import EvaluationResult, ExampleResult

        predictor = program.predictors()[0]
        candidate = (int(predictor.instructions.removeprefix("instruction ")), predictor.demos[0]["set"] if predictor.demos else 0)
        row = self.scores[candidate]
        self.calls += len(examples)
        results = [ExampleResult(ex, None, float(row[self.uids[ex.uid]])) for ex in examples]
        return EvaluationResult(sum(r.score for r in results) / max(1, len(results)), results)


def replay_once(table: dict[str, Any], seed: int, **overrides: Any) -> tuple[int, tuple[int, int]]:
    from pytest_mipro import Example, Predict
    from pytest_mipro.optimizer.mipro import _startup_trials
    from pytest_mipro.optimizer.presets import AUTO_PRESETS, DEFAULT_MINIBATCH_SIZE, num_trials_for
    from pytest_mipro.optimizer.search import (
        BayesianSearch,
        SearchSettings,
        SearchSpace,
    )

    candidates = {tuple(map(int, key.split(","))): row["val"] for key, row in table["candidates"].items()}
    n_instructions = 1 + max(i for i, _ in candidates)
    n_sets = 1 + max(d for _, d in candidates)
    valset = [Example(index=j, label="?").with_inputs("index") for j in range(table["valset_size"])]
    evaluate = ReplayedEvaluate(candidates, {ex.uid: j for j, ex in enumerate(valset)})
    demo_sets = [[]] + [[Example(set=d, index=-1, label="?")] for d in range(1, n_sets)]
    space = SearchSpace(
        Predict("index -> label", instructions="instruction 0"),
        {"self": [f"instruction {i}" for i in range(n_instructions)]},
        {"self": demo_sets},
    )
    trials = num_trials_for(1, n_sets, zero_shot=False)
    defaults: dict[str, Any] = {"num_trials": trials, "minibatch_size": DEFAULT_MINIBATCH_SIZE, "full_eval_steps": 5, "seed": seed,
                                "n_startup_trials": _startup_trials(trials), "race_confidence": AUTO_PRESETS["light"].race_confidence}
    settings = SearchSettings(**{**defaults, **overrides})
    outcome = BayesianSearch(space=space, valset=valset, evaluate=evaluate, settings=settings, rng=random.Random(seed)).run()
    ((instruction, demos),) = outcome.best_combo
    return evaluate.calls, (instruction, demos)


def replay(tables: list[dict[str, Any]], runs: int) -> str:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    lines = [
        (
            f"Racing replay: AG News seeds {', '.join(str(t['seed']) for t in tables)} "
            f"(each its own {', '.join(str(len(t['candidates'])) for t in tables)} candidates, "
            f"scores of {', '.join(sorted({t['date'] for t in tables}))}), {runs} searches per design and seed "
            f"(search seeds 0-{runs - 1}), validation set {tables[0]['valset_size']}, test slice {tables[0]['test_size']}. "
            "Means over every search; the best candidate scores "
            + ", ".join(f"{_best(t)['val']:.3f} / {_best(t)['test']:.3f}" for t in tables)
            + " (validation / test)."
        ),
        "",
        "| search design | search calls (mean) | picked: validation (mean) | picked: test (mean) | worst validation pick |",
        "|---|---|---|---|---|",
    ]
    for label, overrides in DESIGNS:
        calls, val, test = [], [], []
        for table in tables:
            mean = _candidate_means(table)
            for seed in range(runs):
                spent, (instruction, demos) = replay_once(table, seed, **overrides)
                picked = mean[f"{instruction},{demos}"]
                calls.append(spent)
                val.append(picked["val"])
                test.append(picked["test"])
        lines.append(f"| {label} | {statistics.mean(calls):.0f} | {statistics.mean(val):.3f} | "
                     f"{statistics.mean(test):.3f} | {min(val):.3f} |")
    return "\n".join(lines) + "\n"


def _candidate_means(table: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {key: {split: statistics.mean(row[split]) for split in ("val", "test")} for key, row in table["candidates"].items()}


def _best(table: dict[str, Any]) -> dict[str, float]:
    return max(_candidate_means(table).values(), key=lambda m: m["val"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    score = sub.add_parser("score", help="score every candidate of one seed with the real model")
    score.add_argument("--seed", type=int, default=1)
    score.add_argument("--test-size", type=int, default=40)
    again = sub.add_parser("replay", help="replay searches against the saved scores")
    again.add_argument("--seeds", type=int, nargs="+", help="which saved scores (default: every saved seed)")
    again.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    if args.step == "score":
        score_candidates(args.seed, args.test_size, RESULTS / f"racing_scores_seed{args.seed}.json")
        return 0
    paths = [RESULTS / f"racing_scores_seed{seed}.json" for seed in args.seeds] if args.seeds else sorted(
        RESULTS.glob("racing_scores_seed*.json"))
    text = replay([json.loads(path.read_text(encoding="utf-8")) for path in paths], args.runs)
    (RESULTS / "racing_replay.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
