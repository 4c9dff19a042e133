"""One optimizing process for the resume and shared-study tests (run as a script).

Usage: python _worker.py CONFIG_JSON. Prints one JSON line with what this process did.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import pytest_mipro as pm
from pytest_mipro.lm import register_fake_model
from pytest_mipro.optimizer.checkpoint import Checkpoint

LABELS = {"apple": "fruit", "pear": "fruit", "plum": "fruit", "carrot": "vegetable", "leek": "vegetable", "kale": "vegetable"}


class CallCounter:
    def __init__(self, kill_after: int | None, latency: float) -> None:
        self.calls = 0
        self.kill_after = kill_after
        self.latency = latency
        self.lock = threading.Lock()

    def task(self, messages: list[dict], params: dict) -> str:
        with self.lock:
            self.calls += 1
            if self.kill_after is not None and self.calls > self.kill_after:
                os._exit(17)  # a crash in the middle of a trial: no cleanup, no finally blocks
        time.sleep(self.latency)
        demos = sum(1 for m in messages if m["role"] == "assistant")
        word = messages[-1]["content"].split("\n")[0].split(":", 1)[1].split()[0]
        return LABELS[word] if demos >= 3 else "unknown"


def main(cfg: dict) -> None:
    counter = CallCounter(cfg.get("kill_after"), cfg.get("latency", 0.0))
    register_fake_model("worker-task", counter.task)
    register_fake_model("worker-prompt", lambda m, p: "Classify the food as fruit or vegetable.")
    data = [pm.Example(food=f"{w} {i}", kind=k).with_inputs("food") for i in range(6) for w, k in LABELS.items()]
    checkpoint = Checkpoint(cfg["dir"], storage_url=cfg.get("storage"), run_id=cfg["run_id"], worker=cfg.get("worker", 0))
    own_trials: list[str] = []  # labels: kind, with -pruned when racing stopped it
    optimizer = pm.MIPROv2(
        metric=lambda ex, pred, trace=None: pred.kind == ex.kind,
        task_model=pm.LM("fake/worker-task", num_retries=0),
        prompt_model=pm.LM("fake/worker-prompt", num_retries=0),
        auto=None,
        num_candidates=4,
        checkpoint=checkpoint,
        on_trial=lambda t: own_trials.append(t.label),
    )
    with pm.configure(cache=False):
        program = optimizer.compile(
            pm.Predict("food -> kind"),
            trainset=data[:12],
            valset=data[12:],
            num_trials=cfg["num_trials"],
            minibatch_size=6,
            minibatch_full_eval_steps=3,
        )
    result = {
        "score": program.score,
        "own_minibatch_trials": sum(label.startswith("minibatch") for label in own_trials),
        "task_calls": counter.calls,
        "logged_minibatch_trials": sum(t["kind"] == "minibatch" for t in program.trial_logs),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
