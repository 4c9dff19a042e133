"""``MiproSettings``: the plugin's options, resolved and validated once per run.

Values come from the command line (``--mipro-*``) or, when a flag is absent, from its
ini twin (``mipro_*`` under ``[tool.pytest.ini_options]``). Every wrong value raises
:class:`ConfigError` naming the option; the plugin turns it into a pytest usage error.
No pytest import here: the plugin passes plain values in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

MODES = ("gate", "check", "optimize")
AUTO_CHOICES = ("light", "medium", "heavy")
DEFAULT_LOCKFILE = "prompts.lock"
DEFAULT_TOLERANCE = 0.05
DEFAULT_MIN_DROP = 0.02
DEFAULT_AUTO = "light"
REPORT_SUFFIXES = (".json", ".html", ".md")
STEP_SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"  # GitHub Actions: a Markdown file each step may append to

# Option name (without the leading "--mipro-") -> its ini twin. Tests import these.
OPTIONS = {
    "optimize": "mipro_optimize",
    "check": "mipro_check",
    "lockfile": "mipro_lockfile",
    "model": "mipro_model",
    "prompt-model": "mipro_prompt_model",
    "auto": "mipro_auto",
    "seed": "mipro_seed",
    "threads": "mipro_threads",
    "tolerance": "mipro_tolerance",
    "strict": "mipro_strict",
    "min-drop": "mipro_min_drop",
    "repeats": "mipro_repeats",
    "budget": "mipro_budget",
    "no-cache": "mipro_no_cache",
    "report": "mipro_report",
    "storage": "mipro_storage",
    "api-base": "mipro_api_base",
    "lm-param": "mipro_lm_params",
    "rpm": "mipro_rpm",
}
# Options given several times on the command line; their ini twins hold one value a line.
REPEATABLE = frozenset({"lm-param"})


@dataclass(frozen=True)
class Budget:
    """Spending limit per optimized target (``--mipro-budget``)."""

    max_calls: int | None = None
    max_cost: float | None = None


@dataclass(frozen=True)
class MiproSettings:
    """Resolved options. ``mode`` is ``gate`` (plain run), ``check`` or ``optimize``."""

    mode: str = "gate"
    lockfile: Path = Path(DEFAULT_LOCKFILE)
    model: str | None = None
    prompt_model: str | None = None
    auto: str = DEFAULT_AUTO
    seed: int | None = None
    threads: int | None = None
    tolerance: float = DEFAULT_TOLERANCE
    strict: bool = False  # an INCONCLUSIVE gate verdict fails the test instead of warning
    min_drop: float = DEFAULT_MIN_DROP  # the regression gate ignores significant drops this small
    repeats: int = 1  # samples per gate example
    budget: Budget | None = None
    cache: bool = True
    report: Path | None = None
    step_summary: Path | None = None  # $GITHUB_STEP_SUMMARY: the run's Markdown summary is appended there
    storage: str | None = None
    api_base: str | None = None  # for the models named by --mipro-model / --mipro-prompt-model
    lm_params: tuple[tuple[str, object], ...] = ()  # extra litellm parameters for those models
    rpm: int | None = None  # requests per minute for the whole run, all workers together
    verbosity: int = 0

    @property
    def optimize(self) -> bool:
        return self.mode == "optimize"

    @property
    def check(self) -> bool:
        return self.mode == "check"


@dataclass(frozen=True)
class Sources:
    """Where relative paths are resolved: CLI paths from the invocation dir, ini paths from the ini file's dir."""

    invocation_dir: Path
    ini_dir: Path
    rootdir: Path


def resolve(
    cli: Mapping[str, object],
    ini: Mapping[str, object],
    sources: Sources,
    *,
    verbosity: int = 0,
    environ: Mapping[str, str] | None = None,
) -> MiproSettings:
    """Build settings from command-line values (None when absent) and ini values ("" when unset).

    ``environ`` (the process environment) supplies ``$GITHUB_STEP_SUMMARY``; empty or unset: none.
    """
    value = _Picker(cli, ini)
    optimize, check = value.flag("optimize"), value.flag("check")
    if optimize and check:
        raise ConfigError("--mipro-optimize and --mipro-check cannot be combined: optimize writes the lockfile, check only reads it")
    return MiproSettings(
        mode="optimize" if optimize else "check" if check else "gate",
        lockfile=_lockfile(value, sources),
        model=_model(value.text("model"), "model"),
        prompt_model=_model(value.text("prompt-model"), "prompt-model"),
        auto=_auto(value.text("auto")),
        seed=_integer(value.text("seed"), "seed", minimum=0),
        threads=_integer(value.text("threads"), "threads", minimum=1),
        tolerance=_fraction(value.text("tolerance"), "tolerance", DEFAULT_TOLERANCE),
        strict=value.flag("strict"),
        min_drop=_fraction(value.text("min-drop"), "min-drop", DEFAULT_MIN_DROP),
        repeats=_integer(value.text("repeats"), "repeats", minimum=1) or 1,
        budget=parse_budget(value.text("budget")),
        cache=not value.flag("no-cache"),
        report=_report(value, sources),
        step_summary=_step_summary(environ or {}, sources),
        storage=_storage(value.text("storage")),
        api_base=_api_base(value.text("api-base")),
        lm_params=parse_lm_params(value.lines("lm-param")),
        rpm=_integer(value.text("rpm"), "rpm", minimum=1),
        verbosity=verbosity,
    )


class _Picker:
    """The CLI value of an option when given, else its ini twin's."""

    def __init__(self, cli: Mapping[str, object], ini: Mapping[str, object]) -> None:
        self.cli, self.ini = cli, ini

    def from_cli(self, name: str) -> bool:
        return self.cli.get(name) not in (None, False)

    def flag(self, name: str) -> bool:
        return bool(self.cli.get(name)) or _ini_bool(self.ini.get(OPTIONS[name]), OPTIONS[name])

    def text(self, name: str) -> str | None:
        raw = self.cli.get(name) if self.from_cli(name) else self.ini.get(OPTIONS[name])
        text = "" if raw is None else str(raw).strip()
        return text or None

    def lines(self, name: str) -> list[str]:
        """A repeatable option's values: every command-line use, else the ini twin's lines."""
        raw = self.cli.get(name) if self.from_cli(name) else self.ini.get(OPTIONS[name])
        if raw is None:
            return []
        items = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, Sequence) else [raw]
        return [str(item).strip() for item in items if str(item).strip()]


def _ini_bool(raw: object, name: str) -> bool:
    if raw in (None, "", False):
        return False
    if raw is True:
        return True
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} = {raw!r}: expected true or false")


def _lockfile(value: _Picker, sources: Sources) -> Path:
    text = value.text("lockfile")
    if text is None:
        return sources.rootdir / DEFAULT_LOCKFILE
    base = sources.invocation_dir if value.from_cli("lockfile") else sources.ini_dir
    path = (base / text).resolve()
    if path.is_dir():
        raise ConfigError(f"--mipro-lockfile {text!r} is a directory; give a file path such as prompts.lock")
    return path


def _report(value: _Picker, sources: Sources) -> Path | None:
    text = value.text("report")
    if text is None:
        return None
    path = Path(text)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise ConfigError(
            f"--mipro-report {text!r}: the file must end in .json (machine-readable), .html (a page with plots)"
            " or .md (a Markdown summary, as for a CI job's summary)"
        )
    base = sources.invocation_dir if value.from_cli("report") else sources.ini_dir
    return (base / path).resolve()


def _step_summary(environ: Mapping[str, str], sources: Sources) -> Path | None:
    text = environ.get(STEP_SUMMARY_VARIABLE, "").strip()
    return (sources.invocation_dir / text).resolve() if text else None


def _model(text: str | None, option: str) -> str | None:
    if text is not None and "/" not in text:
        raise ConfigError(
            f"--mipro-{option} {text!r}: expected a litellm model string 'provider/name', "
            "e.g. openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, ollama_chat/llama3.2 or local/gemma-3-270m"
        )
    return text


def _storage(text: str | None) -> str | None:
    if not text:
        return None
    if "://" not in text:
        raise ConfigError(
            f"--mipro-storage {text!r} is not a database URL; use e.g. postgresql+psycopg://user@host/db"
        )
    return text


def _api_base(text: str | None) -> str | None:
    if text is not None and not text.lower().startswith(("http://", "https://")):
        raise ConfigError(f"--mipro-api-base {text!r}: expected an http:// or https:// URL, e.g. http://localhost:8000/v1")
    return text


def parse_lm_params(items: Sequence[str]) -> tuple[tuple[str, object], ...]:
    """``["max_tokens=64", "api_version=2024-10-21"]`` -> ``(("max_tokens", 64), ("api_version", "2024-10-21"))``.

    A value that reads as JSON (a number, true/false, a quoted string, a list or an object)
    is that value; anything else is a string.
    """
    params: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--mipro-lm-param {item!r}: expected KEY=VALUE, e.g. max_tokens=64 or api_version=2024-10-21")
        if key in ("model", "messages", "usage", "rate_limit"):
            raise ConfigError(f"--mipro-lm-param {item!r}: {key} is not a parameter; see --mipro-model and --mipro-rpm")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw.strip()
    return tuple(params.items())


def _auto(text: str | None) -> str:
    if text is None:
        return DEFAULT_AUTO
    if text.lower() not in AUTO_CHOICES:
        raise ConfigError(f"--mipro-auto {text!r}: choose one of {', '.join(AUTO_CHOICES)}")
    return text.lower()


def _integer(text: str | None, option: str, *, minimum: int) -> int | None:
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        raise ConfigError(f"--mipro-{option} {text!r}: expected a whole number") from None
    if number < minimum:
        raise ConfigError(f"--mipro-{option} {text!r}: must be at least {minimum}")
    return number


def _fraction(text: str | None, option: str, default: float) -> float:
    """A score difference such as --mipro-tolerance or --mipro-min-drop: a number in [0, 1]."""
    if text is None:
        return default
    number = _float(text, f"--mipro-{option}")
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"--mipro-{option} {text!r}: must be between 0 and 1 (scores are fractions)")
    return number


def parse_budget(text: str | None) -> Budget | None:
    """``"500"`` (LM calls), ``"calls=500"``, ``"cost=2.5"`` (dollars) or ``"calls=500,cost=2.5"``."""
    if text is None:
        return None
    calls: int | None = None
    cost: float | None = None
    for item in (part.strip() for part in text.split(",")):
        key, sep, raw = item.partition("=")
        key, raw = (key.strip().lower(), raw.strip()) if sep else ("calls", key.strip())
        if key == "calls" and calls is None:
            calls = _integer(raw, "budget", minimum=1)
        elif key == "cost" and cost is None:
            cost = _float(raw, "--mipro-budget cost")
            if cost <= 0:
                raise ConfigError(f"--mipro-budget {text!r}: cost must be a positive number of dollars")
        else:
            raise ConfigError(f"--mipro-budget {text!r}: expected '500', 'calls=500', 'cost=2.5' or 'calls=500,cost=2.5'")
    return Budget(calls, cost)


def _float(text: str, option: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a number") from None
    if math.isnan(number) or math.isinf(number):
        raise ConfigError(f"{option} {text!r}: expected a finite number")
    return number
