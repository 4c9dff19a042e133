"""The headless-Chromium harness (tests/chromium.py) on small pages: DOM after scripts ran,
screenshots at desktop and phone width, and every kind of JavaScript error caught.

The HTML report's own browser tests use the same ``chromium`` fixture.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from chromium import Chromium, JavaScriptError, find_chromium, png_size

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>harness check</title>
<style>
  body { font: 16px system-ui, sans-serif; margin: 2rem; }
  .badge { display: inline-block; padding: .2rem .6rem; border-radius: .4rem; background: #1a7f37; color: #fff; }
  main { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
  @media (max-width: 600px) { main { grid-template-columns: 1fr; } }
  pre { white-space: pre-wrap; overflow-wrap: anywhere; }
</style></head>
<body>
<h1>Report <span class="badge" id="verdict">…</span></h1>
<main>
  <section id="score"><h2>Score</h2><svg width="200" height="40" role="img"><rect width="120" height="40" fill="#0969da"/></svg></section>
  <section id="examples"><h2>Examples</h2><ul id="rows"></ul></section>
</main>
<pre id="message">INCONCLUSIVE: the threshold 0.750 lies inside the one-sided 95% bounds [0.738, 0.907]; about 63 examples would decide it</pre>
<script>
  document.getElementById("verdict").textContent = "PASS";
  for (const name of ["apple 0", "kale 1", "leek 0"]) {
    const li = document.createElement("li");
    li.className = "row";
    li.textContent = name;
    document.getElementById("rows").appendChild(li);
  }
  document.documentElement.dataset.layout = matchMedia("(max-width: 600px)").matches ? "narrow" : "wide";
  setTimeout(() => document.body.classList.add("settled"), 500);
</script>
</body></html>
"""


def write(tmp_path: Path, html: str, name: str = "page.html") -> Path:
    page = tmp_path / name
    page.write_text(textwrap.dedent(html), encoding="utf-8")
    return page


def test_dom_after_scripts_ran_and_desktop_screenshot(chromium: Chromium, tmp_path: Path) -> None:
    page = chromium.render(write(tmp_path, PAGE), width=1280, height=800, screenshot=tmp_path / "desktop.png")

    assert page.js_errors == ()
    assert page.find(id="verdict").text == "PASS"
    assert [li.text for li in page.find_all("li", class_="row")] == ["apple 0", "kale 1", "leek 0"]
    assert {s.attrs["id"] for s in page.find_all("section")} == {"score", "examples"}
    assert page.find("rect").attrs["fill"] == "#0969da"
    assert page.find("html").attrs["data-layout"] == "wide"
    assert "settled" in page.find("body").classes  # a timer's work is done before the dump
    assert page.screenshot is not None and png_size(page.screenshot) == (1280, 800)
    # The probe that watched for errors is not part of what the test sees.
    assert "test-js-error-probe" not in page.dom and "data-test-js-errors" not in page.dom
    assert "test-page-base" not in page.dom


def test_phone_width_takes_the_narrow_layout(chromium: Chromium, tmp_path: Path) -> None:
    page = chromium.render(write(tmp_path, PAGE), width=390, height=844, screenshot=tmp_path / "phone.png")

    assert page.find("html").attrs["data-layout"] == "narrow"
    assert page.overflow == 0  # the long message wraps
    assert page.screenshot is not None and png_size(page.screenshot) == (390, 844)


ERRORS = {
    "thrown at load": ("<script>undefinedFunction();</script>", "undefinedFunction is not defined"),
    "thrown in a timer": ("<script>setTimeout(() => { throw new Error('late failure'); }, 200);</script>", "late failure"),
    "syntax error": ("<script>const x = ;</script>", "SyntaxError"),
    "rejected promise": ("<script>Promise.reject(new Error('nobody caught me'));</script>", "nobody caught me"),
    "console.error": ("<script>console.error('chart data missing', 3);</script>", "console.error: chart data missing 3"),
    "network asset": ('<img src="https://example.com/logo.png" alt="">', "failed to load <img> https://example.com/logo.png"),
}


@pytest.mark.parametrize("kind", list(ERRORS))
def test_javascript_errors_fail_the_render(chromium: Chromium, tmp_path: Path, kind: str) -> None:
    snippet, expected = ERRORS[kind]
    page = write(tmp_path, f"<!doctype html><html><head><title>x</title></head><body><p>text</p>{snippet}</body></html>")

    with pytest.raises(JavaScriptError, match="JavaScript errors") as caught:
        chromium.render(page)

    assert expected in str(caught.value)


def test_errors_can_be_inspected_instead(chromium: Chromium, tmp_path: Path) -> None:
    page = write(tmp_path, "<html><body><script>null.x;</script><p id='after'>still here</p></body></html>")

    rendered = chromium.render(page, check_js=False)

    # Seen twice: by the probe in the page and in Chromium's console log on stderr.
    assert any("Cannot read properties of null" in e and not e.startswith("console:") for e in rendered.js_errors)
    assert any(e.startswith("console: Uncaught TypeError") for e in rendered.js_errors)
    assert rendered.find(id="after").text == "still here"


def test_content_wider_than_a_phone_is_measured(chromium: Chromium, tmp_path: Path) -> None:
    line = "INCONCLUSIVE: " + "x" * 150
    page = write(tmp_path, f"<html><head><meta name='viewport' content='width=device-width'></head><body><pre>{line}</pre></body></html>")

    rendered = chromium.render(page, width=390)

    assert rendered.overflow > 400
    assert "data-test-overflow" not in rendered.dom


def test_find_names_what_is_missing(chromium: Chromium, tmp_path: Path) -> None:
    rendered = chromium.render(write(tmp_path, PAGE))

    with pytest.raises(AssertionError, match="id='trials'"):
        rendered.find("section", id="trials")


def test_find_chromium_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIPRO_CHROMIUM", "")
    assert find_chromium() is None
    monkeypatch.setenv("MIPRO_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert find_chromium() is None
    fake = tmp_path / "chrome"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv("MIPRO_CHROMIUM", str(fake))
    assert find_chromium() == fake
