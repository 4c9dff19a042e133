"""Make docs/report.png: the HTML report of example_project's two targets, run on fake models.

    python tests/browser/report_screenshot.py [docs/report.png]

A real report of example_project needs the local model and many minutes. This copies the
project (its app, data and tests) to a temporary folder, swaps its conftest for fake models
that know the labels, optimizes twice (seed 9, then seed 10 with other tickets answered
wrongly, as a re-tune would), and screenshots the second run's report in headless Chromium.
The fake task model answers right when its instructions ask for "one word" (which only the
second run's prompt model proposes), and on half the tickets when it sees three demos, except
on a few "hard" tickets that change between the runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from chromium import Chromium, find_chromium, png_size  # noqa: E402

FAKE_CONFTEST = '''
import os
import zlib
from pathlib import Path

import pytest
import yaml

from pytest_mipro import LM, configure, register_fake_model

DATA = Path(__file__).parent / "data"
LABELS = {}
for name in ("triage.yaml", "escalation.yaml"):
    for record in yaml.safe_load((DATA / name).read_text())["examples"]:
        LABELS.setdefault(record["ticket"], {}).update({k: v for k, v in record.items() if k != "ticket"})
WRONG = {"team": "technical", "product": "app", "priority": "normal"}
PROPOSALS = {
    "team": [
        "Route the ticket to the team that handles it: billing, technical, account or shipping.",
        "Read the support ticket and answer with one word: billing for charges, refunds and plans, technical "
        "for devices or the app not working, account for logins and profiles, shipping for orders and returns.",
    ],
    "product": [
        "Answer with one word: the Brightnest product the ticket is about (thermostat, camera, doorbell or app).",
        "Which product is this ticket about?",
    ],
    "priority": [
        "Rate how urgent the ticket is.",
        "Answer with one word: urgent when safety, security or a device needed right now is at stake, normal when "
        "something is broken but has a workaround, low for questions and wishes.",
    ],
}


def _field(text, label):
    for line in text.splitlines():
        if line.lower().startswith(label + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def task(messages, params):
    wanted = messages[-1]["content"].rstrip().splitlines()[-1].rstrip(":").strip().lower()
    ticket = _field(messages[-1]["content"], "ticket")
    truth = LABELS.get(ticket, {}).get(wanted, "")
    hard = zlib.crc32(ticket.encode()) % 7 == int(os.environ.get("DESK_RUN", "1"))
    demos = sum(m["role"] == "assistant" for m in messages)
    lucky = zlib.crc32(ticket.encode()) % 2 == 0  # demos alone get half the tickets right
    if not hard and ("one word" in messages[0]["content"] or (demos >= 3 and lucky)):
        return truth
    return WRONG.get(wanted, "unknown")


def prompter(messages, params):
    text = messages[-1]["content"]
    wanted = messages[-1]["content"].rstrip().splitlines()[-1].rstrip(":").strip()
    if wanted.lower() != "proposed instruction":
        return f"{wanted}: Support tickets for smart-home devices, each labeled for routing."
    # The request quotes the predictor's own base instructions (the program code names every field).
    basic = _field(text, "basic instruction")
    kind = "priority" if "priority" in basic else "product" if "product" in basic else "team"
    options = PROPOSALS[kind]
    if os.environ.get("DESK_RUN") == "1":  # the first run's prompt model wrote only vague instructions
        options = [o for o in options if "one word" not in o]
    return f"{wanted}: {options[(params.get('seed') or 0) % len(options)]}"


register_fake_model("desk", task)
register_fake_model("desk-prompter", prompter)


def pytest_configure(config):
    configure(lm=LM("fake/desk"), prompt_model=LM("fake/desk-prompter"))
'''


def build_report(work: Path) -> Path:
    project = work / "example_project"
    shutil.copytree(ROOT / "example_project", project, ignore=shutil.ignore_patterns("prompts.lock", ".mipro", "__pycache__"))
    (project / "conftest.py").write_text(FAKE_CONFTEST, encoding="utf-8")
    env = {**os.environ, "MIPRO_CACHE_DIR": str(work / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mipro-optimize", "--mipro-no-cache"]
    for run, seed in (("1", "9"), ("2", "10")):
        report = ["--mipro-report", "report.html"] if run == "2" else []
        done = subprocess.run([*base, "--mipro-seed", seed, *report], cwd=project, env={**env, "DESK_RUN": run}, check=False)
        if done.returncode not in (0, 1):  # 1: a target failed its gate, which the report should show
            raise SystemExit(f"pytest exited {done.returncode}")
    return project / "report.html"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "report.png"
    executable = find_chromium()
    if executable is None:
        raise SystemExit("chromium not found")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = build_report(work)
        html = report.read_text(encoding="utf-8").replace(str(work / "example_project") + "/", "")
        report.write_text(html, encoding="utf-8")
        page = Chromium(executable, work).render(report, width=1280, height=int(os.environ.get("SHOT_HEIGHT", "1800")), screenshot=out)
    print(f"{out}: {png_size(out)}, {out.stat().st_size} bytes, overflow {page.overflow}")


if __name__ == "__main__":
    main()
