"""Headless Chromium for tests of HTML pages: the DOM after scripts ran, a screenshot, JS errors.

Uses Debian's ``chromium`` (installed by .ci/run), or the executable named by
``$MIPRO_CHROMIUM``. Each :meth:`Chromium.render` is one browser process on a fresh profile:

    page = chromium.render(path, width=390, screenshot=tmp_path / "phone.png")
    assert page.find(id="verdict").text == "PASS"

**JavaScript errors.** ``--dump-dom`` prints the DOM but not what went wrong, so every error
is caught twice, and either way fails the render (:class:`JavaScriptError`):

1. A probe script is put first in ``<head>`` of a copy of the page. It records uncaught
   errors (``error`` events, including syntax errors in later scripts and resources that
   fail to load), unhandled promise rejections and ``console.error`` calls in an attribute
   of ``<html>``, which ``--dump-dom`` then carries out. The attribute and the probe are
   taken out of :attr:`RenderedPage.dom` again (so is the ``<base>`` that keeps the copy's
   relative links pointing where the original's did).
2. With ``--enable-logging=stderr --v=0`` Chromium logs every console message to stderr;
   lines saying ``Uncaught`` are errors too (this catches what happens before the probe
   could, or a page that replaces ``console.error``).

**Width.** The probe also measures, at ``load`` and a moment later, how far the page is
wider than the window (:attr:`RenderedPage.overflow`): a long line that does not wrap on a
phone shows up as a number above 0.

Timers run on virtual time (``--virtual-time-budget``), so work a page defers with
``setTimeout`` is done, and its errors seen, before the DOM is dumped. Host names resolve to
nothing (``--host-resolver-rules``), so a page that needs the network shows it: its
resources fail to load, which the probe reports as errors.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

ERRORS_ATTRIBUTE = "data-test-js-errors"
OVERFLOW_ATTRIBUTE = "data-test-overflow"
_PROBE_ID = "test-js-error-probe"
_BASE_ID = "test-page-base"
_PROBE = f"""<script id="{_PROBE_ID}">(function () {{
  var root = document.documentElement;
  function note(text) {{
    var seen = root.getAttribute("{ERRORS_ATTRIBUTE}");
    root.setAttribute("{ERRORS_ATTRIBUTE}", (seen ? seen + "\\n" : "") + String(text).replace(/\\n/g, " "));
  }}
  window.addEventListener("error", function (event) {{
    if (event.target && event.target !== window && event.target.tagName) {{
      note("failed to load <" + event.target.tagName.toLowerCase() + "> " + (event.target.src || event.target.href || ""));
    }} else {{
      note((event.message || "error") + " (" + event.filename + ":" + event.lineno + ")");
    }}
  }}, true);
  window.addEventListener("unhandledrejection", function (event) {{
    note("unhandled rejection: " + (event.reason && event.reason.stack || event.reason));
  }});
  function measure() {{
    var wider = Math.max(0, root.scrollWidth - root.clientWidth);
    root.setAttribute("{OVERFLOW_ATTRIBUTE}", Math.max(wider, Number(root.getAttribute("{OVERFLOW_ATTRIBUTE}") || 0)));
  }}
  window.addEventListener("load", function () {{ measure(); setTimeout(measure, 250); }});
  var consoleError = console.error;
  console.error = function () {{
    note("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return consoleError.apply(console, arguments);
  }};
}})();</script>"""
_CONSOLE_LINE = re.compile(r":CONSOLE[:(]?\d*\)?\] \"(?P<message>.*)\", source: (?P<source>.*)$")
_FLAGS = (
    "--headless",
    "--no-sandbox",  # as root, and in containers without user namespaces
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> Path | None:
    """``$MIPRO_CHROMIUM`` if set (empty: none), else chromium or chrome on ``PATH``."""
    if "MIPRO_CHROMIUM" in os.environ:
        named = os.environ["MIPRO_CHROMIUM"]
        return Path(named) if named and Path(named).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


class JavaScriptError(AssertionError):
    """The page threw, rejected a promise, logged an error or failed to load a resource."""


@dataclass
class Element:
    """An element of the rendered DOM: tag, attributes, and all the text inside it."""

    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def iter(self) -> list[Element]:
        """This element and every one inside it, in document order."""
        found = [self]
        for child in self.children:
            found += child.iter()
        return found


@dataclass(frozen=True)
class RenderedPage:
    """What Chromium made of a page: its DOM after scripts ran, console output, errors."""

    dom: str
    root: Element
    js_errors: tuple[str, ...]
    console: tuple[str, ...]
    screenshot: Path | None
    overflow: int = 0  # CSS pixels the page is wider than the window (content running off the right edge)

    def find_all(self, tag: str | None = None, *, id: str | None = None, class_: str | None = None) -> list[Element]:
        """Elements matching every criterion given (a tag name, an id, one class name)."""
        return [
            e for e in self.root.iter()
            if (tag is None or e.tag == tag) and (id is None or e.attrs.get("id") == id) and (class_ is None or class_ in e.classes)
        ]

    def find(self, tag: str | None = None, *, id: str | None = None, class_: str | None = None) -> Element:
        """The first match; an AssertionError naming the criteria when there is none."""
        found = self.find_all(tag, id=id, class_=class_)
        assert found, f"no element with tag={tag!r} id={id!r} class={class_!r} in the rendered page"
        return found[0]


class Chromium:
    """Renders pages with one headless Chromium process each, in ``workdir``."""

    def __init__(self, executable: Path, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir

    def render(
        self,
        page: Path,
        *,
        width: int = 1280,
        height: int = 900,
        screenshot: Path | None = None,
        check_js: bool = True,
        time_budget_ms: int = 3000,
        timeout: float = 90.0,
    ) -> RenderedPage:
        """Load ``page`` (a file) at ``width`` x ``height`` CSS pixels; dump its DOM, and save a
        ``screenshot`` (PNG) if given. Raises :class:`JavaScriptError` on any JavaScript error
        unless ``check_js`` is false (then they are in :attr:`RenderedPage.js_errors`)."""
        probed = self._probed_copy(page)
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=self.workdir)
        cmd = [str(self.executable), *_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        cmd += [f"--virtual-time-budget={time_budget_ms}", "--dump-dom"]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            cmd.append(f"--screenshot={screenshot}")
        done = subprocess.run([*cmd, probed.as_uri()], capture_output=True, text=True, timeout=timeout, check=False)
        shutil.rmtree(profile, ignore_errors=True)
        if done.returncode != 0 or "<html" not in done.stdout:
            raise RuntimeError(f"chromium exited {done.returncode} without a DOM:\n{done.stderr[-3000:]}")
        rendered = _rendered(done.stdout, done.stderr, screenshot)
        if check_js and rendered.js_errors:
            raise JavaScriptError(f"{page.name}: JavaScript errors:\n" + "\n".join(rendered.js_errors))
        return rendered

    def _probed_copy(self, page: Path) -> Path:
        """A copy of ``page`` in the work folder with the probe first in ``<head>`` (and a
        ``<base>`` pointing at the page's folder, so relative links resolve as they would)."""
        html = page.read_text(encoding="utf-8")
        head = re.search(r"<head[^>]*>", html, re.IGNORECASE)
        at = head.end() if head else 0
        base = "" if re.search(r"<base\s", html, re.IGNORECASE) else f'<base id="{_BASE_ID}" href="{page.resolve().parent.as_uri()}/">'
        copy = Path(tempfile.mkstemp(prefix=f"{page.stem}-", suffix=".html", dir=self.workdir)[1])
        copy.write_text(html[:at] + base + _PROBE + html[at:], encoding="utf-8")
        return copy


def _rendered(stdout: str, stderr: str, screenshot: Path | None) -> RenderedPage:
    console = tuple(m.group("message") for m in map(_CONSOLE_LINE.search, stderr.splitlines()) if m)
    builder = _TreeBuilder()
    builder.feed(stdout)
    root = builder.root
    html = next((e for e in root.iter() if e.tag == "html"), root)
    probed = [line for line in html.attrs.pop(ERRORS_ATTRIBUTE, "").splitlines() if line]
    overflow = int(float(html.attrs.pop(OVERFLOW_ATTRIBUTE, "0") or 0))
    uncaught = [f"console: {message}" for message in console if "Uncaught" in message]
    _drop_probe(root)
    dom = re.sub(rf'\s(?:{ERRORS_ATTRIBUTE}|{OVERFLOW_ATTRIBUTE})="[^"]*"', "", stdout, count=2)
    dom = re.sub(rf'<script id="{_PROBE_ID}">.*?</script>', "", dom, count=1, flags=re.DOTALL)
    dom = re.sub(rf'<base id="{_BASE_ID}"[^>]*>', "", dom, count=1)
    shot = screenshot if screenshot and screenshot.exists() else None
    return RenderedPage(dom, root, tuple(probed + uncaught), console, shot, overflow)


def _drop_probe(element: Element) -> None:
    element.children = [c for c in element.children if c.attrs.get("id") not in (_PROBE_ID, _BASE_ID)]
    for child in element.children:
        _drop_probe(child)


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _TreeBuilder(HTMLParser):
    """The dumped DOM as :class:`Element` objects (it is serialized by Chromium, so well formed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self._open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self._open[-1].children.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        if self._open[-1].tag in ("script", "style"):
            return
        for element in self._open:
            element.text += data


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, from its IHDR chunk."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)
