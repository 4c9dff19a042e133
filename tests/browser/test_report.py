"""The HTML report (``--mipro-report report.html``) in a real browser: every section of every
target rendered, the example filter clicked, screenshots at desktop and phone width, and a
script error in the page failing the render.

The report is real: the plugin tests' food project (fake models) with two targets, optimized
twice. The first run (seed 2) locks ``produce`` with its base instructions and no demos (it
scores 0); the second (seed 1, while the task model labels ``kale`` wrongly) locks new
instructions for both and three demos for ``produce``. So the second run's report has a trial
history, prompt diffs against the lock it replaces, and flipped examples: ``produce`` (0.778,
threshold 0.95) FAILs, ``food`` (0.778, threshold 0.5) PASSes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from chromium import Chromium, Element, JavaScriptError, RenderedPage, png_size
from plugin.conftest import FAST, INNER_CONFTEST, Project

TWO_TARGETS = f'''
import pytest
from pytest_mipro import Predict

food = Predict("item -> kind", instructions="Say what kind of food this is.")
produce = Predict("item -> kind", instructions="Is this fruit or a vegetable?")


@pytest.mark.mipro(food, name="food", threshold=0.5, {FAST})
def test_food(mipro):
    pass


@pytest.mark.mipro(produce, name="produce", threshold=0.95, {FAST})
def test_produce(mipro):
    pass
'''

# The prompter proposes no RULE-42 for ``produce`` (its base instructions ask "fruit or a
# vegetable?"), so only demos make that target right: its locked prompt has demos to diff.
PLAIN_PROPOSALS = INNER_CONFTEST.replace(
    '    if wanted.lower() == "proposed instruction":\n',
    '    if wanted.lower() == "proposed instruction" and "fruit or a vegetable?" in str(messages):\n'
    "        return f'{wanted}: Answer fruit or vegetable (draw {params.get(\"seed\")}).'\n"
    '    if wanted.lower() == "proposed instruction":\n',
)
assert PLAIN_PROPOSALS != INNER_CONFTEST

# Put before </body> in a copy of the report: clicks each filter of one target's examples in
# turn and writes the ids of the rows still displayed after each click into an attribute.
CLICKER = """<script>
window.addEventListener("load", function () {
  var box = document.querySelector("#%s section.examples");
  var seen = [];
  ["failed", "flipped", "all"].forEach(function (name) {
    box.querySelector("button[data-filter=" + name + "]").click();
    var shown = Array.prototype.filter.call(box.querySelectorAll("tbody tr"), function (row) {
      return getComputedStyle(row).display !== "none";
    }).map(function (row) { return row.querySelector("td.id code").textContent; });
    var pressed = box.querySelector("button[aria-pressed=true]").getAttribute("data-filter");
    seen.push(name + ":" + pressed + "=" + shown.join(","));
  });
  box.setAttribute("data-test-clicks", seen.join(";"));
});
</script>"""

NETWORK = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def _built() -> dict[str, Path]:
    return {}


@pytest.fixture
def report(_built: dict[str, Path], project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.html of the second optimize run (made by the module's first test: two optimize runs)."""
    if "report" not in _built:
        project.pytester.makeconftest(PLAIN_PROPOSALS)
        (project.path / "test_food.py").unlink()
        project.write_test(TWO_TARGETS, name="test_two")
        project.run("--mipro-optimize", "--mipro-seed", "2", "-q").assert_outcomes(passed=1, failed=1)
        monkeypatch.setenv("FAKE_WRONG", "kale")
        result = project.run("--mipro-optimize", "--mipro-seed", "1", "--mipro-no-cache", "--mipro-report", "report.html", "-q")
        result.assert_outcomes(passed=1, failed=1)
        kept = tmp_path_factory.mktemp("report") / "report.html"
        shutil.copy(project.path / "report.html", kept)
        _built["report"] = kept
    return _built["report"]


def target(page: RenderedPage, name: str) -> Element:
    (found,) = [d for d in page.find_all("details", class_="target") if _find(d, "h2").text == name]
    return found


def _find(element: Element, tag: str | None = None, class_: str | None = None) -> Element:
    found = _find_all(element, tag, class_)
    assert found, f"no <{tag or '*'} class={class_!r}> in <{element.tag} id={element.attrs.get('id')!r}>"
    return found[0]


def _find_all(element: Element, tag: str | None = None, class_: str | None = None) -> list[Element]:
    return [e for e in element.iter()[1:] if (tag is None or e.tag == tag) and (class_ is None or class_ in e.classes)]


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text))


def test_every_section_of_every_target_renders(chromium: Chromium, report: Path, tmp_path: Path) -> None:
    page = chromium.render(report, width=1280, height=900, screenshot=tmp_path / "desktop.png")

    assert page.js_errors == ()
    assert page.screenshot is not None and png_size(page.screenshot) == (1280, 900)
    assert page.screenshot.stat().st_size > 20_000  # a page was drawn, not a blank window
    assert page.find("h1").text == "pytest-mipro report"
    # Failures first: produce FAILs, food PASSes (not the alphabetical order).
    targets = page.find_all("details", class_="target")
    assert [_find(d, "h2").text for d in targets] == ["produce", "food"]
    assert all("open" in d.attrs for d in targets)
    rows = page.find(id="summary").iter()
    assert [e.text for e in rows if e.tag == "a"] == ["produce", "food"]

    for name, verdict, threshold in (("produce", "FAIL", 0.95), ("food", "PASS", 0.5)):
        section = target(page, name)
        badge = _find(_find(section, "summary"), class_="badge")
        assert badge.text == verdict and ("b-fail" if verdict == "FAIL" else "b-pass") in badge.classes

        # The score chart: bounds band, threshold line, locked score (the first run's), the score.
        chart = _find(_find(section, "section", "score"), "svg")
        bounds = _find(chart, "rect", "bounds")
        assert _find(bounds, "title").text == "one-sided 95% bounds [0.504, 0.924]"
        axis = int(chart.attrs["viewbox"].split()[2]) - 48  # 24 units of margin either side
        assert _find(chart, "line", "threshold").attrs["x1"] == f"{24 + axis * threshold:.1f}"
        assert f"threshold {threshold:.3f}" in chart.text
        assert _find(_find(chart, "circle", "score"), "title").text == "score 0.778"
        locked = 0.0 if name == "produce" else 1.0
        assert _find(_find(chart, "polygon", "locked"), "title").text == f"locked score {locked:.3f}"
        assert f"locked {locked:.3f}" in chart.text
        assert float(bounds.attrs["width"]) == pytest.approx(axis * (0.924 - 0.504), abs=1)

        # The locked prompt, as a diff against the first run's.
        prompt = _find(section, "section", "prompt")
        assert _find(prompt, "h3").text == "Prompt locked by this run (changes against the previous lock)"
        instructions = _find(prompt, "pre", "instructions")
        assert _find_all(instructions, "ins") and _find_all(instructions, "del")
        assert "changed" in [b.text for b in _find_all(prompt, class_="badge")]

        # The trial history: every evaluation a dot, the pruned ones marked, the pick ringed.
        plot = _find(_find(section, "section", "trials"), "svg")
        dots = _find_all(plot, "circle", "trial")
        assert len(dots) == 4  # three trials and the baseline
        pruned = [d for d in dots if "pruned" in d.classes]
        assert pruned and all(_find(d, "title").text.split()[1].endswith("-pruned:") for d in pruned)
        assert {d.attrs["fill"] for d in pruned} == {"#d4a72c"}
        (pick,) = _find_all(plot, "circle", "pick")
        picked = [d for d in dots if (d.attrs["cx"], d.attrs["cy"]) == (pick.attrs["cx"], pick.attrs["cy"])]
        assert picked and "full" in picked[0].classes and "pruned" not in picked[0].classes
        assert _find(plot, "polyline").attrs["points"]
        assert "stopped early" in _find(section, class_="legend").text

        # Per-example results: failures first, the filter's counts.
        examples = _find(section, "section", "examples")
        rows = _find_all(_find(examples, "tbody"), "tr")
        scores = [_number(_find(r, "td", "score").text) for r in rows]
        assert len(rows) == 9 and scores == sorted(scores) and scores[:2] == [0.0, 0.0]
        assert all("failed" in r.classes for r in rows[:2]) and not any("failed" in r.classes for r in rows[2:])
        assert all("kale" in _find(r, "td").text or "kale" in r.text for r in rows[:2])
        buttons = {b.attrs["data-filter"]: b for b in _find_all(examples, "button")}
        flipped = 7 if name == "produce" else 2  # produce's seven from 0 to 1; food's two kale from 1 to 0
        assert [b.text for b in buttons.values()] == ["all (9)", "failed (2)", f"flipped ({flipped})"]
        assert buttons["all"].attrs["aria-pressed"] == "true" and examples.attrs["data-show"] == "all"
        assert sum("flipped" in r.classes for r in rows) == flipped

    # produce had no demos before: all three are new.
    produce_prompt = _find(target(page, "produce"), "section", "prompt")
    demos = _find_all(produce_prompt, "div", "demo")
    assert len(demos) == 3 and all("added" in d.classes for d in demos)
    assert "item: pear 0" in demos[0].text and "kind: fruit" in demos[0].text
    assert not any("augmented:" in d.text for d in demos)  # dspy's marker is a tag, not a field sent to the model
    assert "No demos." in _find(target(page, "food"), "section", "prompt").text

    # Nothing from the network: no http(s) or protocol-relative src/href anywhere.
    assert not NETWORK.search(report.read_text(encoding="utf-8"))
    assert not NETWORK.search(page.dom)
    assert not [e for e in page.root.iter() if e.tag in ("link", "img", "iframe") or (e.tag == "script" and "src" in e.attrs)]


def test_phone_width_wraps_everything(chromium: Chromium, report: Path, tmp_path: Path) -> None:
    page = chromium.render(report, width=390, height=844, screenshot=tmp_path / "phone.png")

    assert page.overflow == 0  # long instructions, node ids and messages wrap
    assert page.screenshot is not None and png_size(page.screenshot) == (390, 844)
    assert page.screenshot.stat().st_size > 10_000
    assert len(page.find_all("circle", class_="trial")) == 8


def test_example_filter_shows_failed_and_flipped_rows(chromium: Chromium, report: Path, tmp_path: Path) -> None:
    html = report.read_text(encoding="utf-8")
    clicking = tmp_path / "clicking.html"
    anchor = re.search(r"<details class='target' id='([^']+)'[^>]*>\s*<summary><span[^>]*>[^<]*</span> <h2>produce</h2>", html)
    assert anchor is not None
    clicking.write_text(html.replace("</body>", CLICKER % anchor.group(1) + "</body>"), encoding="utf-8")

    page = chromium.render(clicking)

    section = target(page, "produce")
    examples = _find(section, "section", "examples")
    rows = _find_all(_find(examples, "tbody"), "tr")
    ids = {kind: [_find(r, "code").text for r in rows if kind in r.classes] for kind in ("failed", "flipped")}
    every = [_find(r, "code").text for r in rows]
    assert len(ids["failed"]) == 2 and len(ids["flipped"]) == 7 and not set(ids["failed"]) & set(ids["flipped"])
    clicks = dict(part.split("=", 1) for part in examples.attrs["data-test-clicks"].split(";"))
    assert clicks == {
        "failed:failed": ",".join(ids["failed"]),
        "flipped:flipped": ",".join(ids["flipped"]),
        "all:all": ",".join(every),
    }
    assert examples.attrs["data-show"] == "all"  # the last click


def test_a_script_error_in_the_report_fails_the_render(chromium: Chromium, report: Path, tmp_path: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert html.count("<script>") == 1 and 'box.setAttribute("data-show"' in html
    # The filter's script with a typo a refactoring could make, and a click that runs it.
    broken = tmp_path / "broken.html"
    typo = html.replace('box.setAttribute("data-show"', 'box.setAttributes("data-show"')
    broken.write_text(typo.replace("</body>", "<script>document.querySelector('button').click();</script></body>"), encoding="utf-8")

    with pytest.raises(JavaScriptError, match="setAttributes is not a function"):
        chromium.render(broken)
