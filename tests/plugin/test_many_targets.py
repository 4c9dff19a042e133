"""A run of 40 targets (more than the terminal's table limit) stays readable: the terminal gets one line per kind of result, failures
first and named; the per-target tables go to the report files, failures first there too."""

from __future__ import annotations

import json
import re

import pytest

from pytest_mipro.report import TABLE_LIMIT

from .conftest import Project, many_targets

# t000..t039: threshold 0.95 for i % 10 == 7 (FAIL), 0.8 for i % 10 == 3 (INCONCLUSIVE),
# other instructions for i % 20 == 11 (stale), no entry from t037 on (missing). The gate runs
# skip the cache, so the task model's kale mistakes (7/9 right) reach every target.
FAILED = ["t007", "t017", "t027"]
STALE = ["t011", "t031"]
MISSING = ["t037", "t038", "t039"]
INCONCLUSIVE = ["t003", "t013", "t023", "t033"]
PASSED = 40 - 8 - len(INCONCLUSIVE)


@pytest.fixture
def many(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    many_targets(project)
    monkeypatch.setenv("FAKE_WRONG", "kale")
    return project


def test_terminal_summary_counts_kinds_and_names_failures_first(many: Project) -> None:
    result = many.run("--mipro-no-cache", "--mipro-report", "report.md")

    result.assert_outcomes(passed=32, failed=8, warnings=4)
    out = result.stdout.str()
    start = out.index("mipro: 40 targets: 8 failed, 32 passed")
    kinds = out[start:].splitlines()[1:6]
    assert [line.split()[:2] for line in kinds] == [
        ["missing", "3"], ["stale", "2"], ["FAIL", "3"], ["INCONCLUSIVE", "4"], ["PASS", str(PASSED)]
    ]
    assert kinds[0].endswith(", ".join(MISSING)) and kinds[1].endswith(", ".join(STALE)) and kinds[2].endswith(", ".join(FAILED))
    assert kinds[3].endswith(", ".join(INCONCLUSIVE))
    assert f"mipro: the per-target table is in {many.path / 'report.md'}" in out
    assert len(re.findall(r"^t\d{3} ", out, re.MULTILINE)) == 0  # no per-target rows in the terminal
    assert 40 > TABLE_LIMIT


def test_reports_list_every_target_failures_first(many: Project) -> None:
    many.run("--mipro-no-cache", "--mipro-report", "report.html").assert_outcomes(passed=32, failed=8, warnings=4)
    many.run("--mipro-no-cache", "--mipro-report", "report.json").assert_outcomes(passed=32, failed=8, warnings=4)

    page = (many.path / "report.html").read_text(encoding="utf-8")
    order = re.findall(r"<details class='target' id='t-test-many-py--test-(t\d{3})'( open)?>", page)
    assert [name for name, _ in order][:12] == MISSING + STALE + FAILED + INCONCLUSIVE
    assert len(order) == 40
    opened = [name for name, is_open in order if is_open]
    assert opened == MISSING + STALE + FAILED + INCONCLUSIVE  # failures and warnings start open, passes closed
    table = page[page.index("<section id='summary'") :]
    table = table[: table.index("</section>")]
    assert table.count("<tr") == 41 and table.count("<tr class='failed'>") == 8
    records = json.loads((many.path / "report.json").read_text())["targets"]
    assert len(records) == 40
