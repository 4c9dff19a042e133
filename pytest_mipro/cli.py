"""The ``pytest-mipro`` command (also ``python -m pytest_mipro``).

``pytest-mipro diff OLD NEW`` compares two lockfiles and prints what a reviewer needs to
judge the change (see :mod:`pytest_mipro.diff`). ``-`` reads a lockfile from standard
input, and an empty file counts as a lockfile without targets, so a base branch that has
none yet can be compared with ``git show base:prompts.lock > old.lock || true``.

``pytest-mipro cache info|prune|clear`` shows the LM response cache (folder, replies, size,
size limit), evicts the least recently stored replies until it fits a size, or empties it.

Exit status: 0 on success, 2 when an argument, a lockfile or the cache folder is wrong.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, LockfileError

if TYPE_CHECKING:
    from .lockfile import Lockfile

PROG = "pytest-mipro"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (LockfileError, ConfigError) as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Tools for prompts.lock files written by pytest-mipro.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    diff = commands.add_parser(
        "diff",
        help="compare two lockfiles (e.g. the base branch's and a pull request's)",
        description="Compare two lockfiles target by target: instructions, demos, scores and bounds, "
        "a paired test on the examples both were scored on, models and optimizer settings.",
    )
    diff.add_argument("old", metavar="OLD", help="the lockfile before (`-` for standard input; an empty file has no targets)")
    diff.add_argument("new", metavar="NEW", help="the lockfile after")
    diff.add_argument("--format", choices=("markdown", "json"), default="markdown", help="output format (default: markdown)")
    diff.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    diff.set_defaults(run=_run_diff)
    cache = commands.add_parser(
        "cache",
        help="show, prune or clear the LM response cache",
        description="The LM response cache: `info` shows its folder, replies, size and size limit "
        "($MIPRO_CACHE_SIZE_LIMIT, default 1GiB); `prune` evicts the least recently stored replies "
        "until it fits --max-size; `clear` removes every reply.",
    )
    cache.add_argument("action", choices=("info", "prune", "clear"))
    cache.add_argument("--dir", metavar="PATH", help="the cache folder (default: $MIPRO_CACHE_DIR, else ./.mipro/cache)")
    cache.add_argument("--max-size", metavar="SIZE", help="prune to this size, e.g. 200MB (default: the size limit)")
    cache.set_defaults(run=_run_cache)
    return parser


def _run_cache(args: argparse.Namespace) -> int:
    from .lm import cache

    directory = cache.cache_dir(args.dir)
    if args.action == "info":
        found = cache.info(directory)
        print(f"{found.directory}: {found.entries} replies, {_size(found.size)} (limit {_size(found.limit)})")
    elif args.action == "prune":
        limit = cache.parse_size(args.max_size, source="--max-size") if args.max_size else cache.size_limit()
        before, after = cache.prune(directory, limit)
        print(
            f"{directory}: {before.entries} -> {after.entries} replies, {_size(before.size)} -> {_size(after.size)} "
            f"(max {_size(limit)})"
        )
    else:
        print(f"{directory}: removed {cache.clear(directory)} replies")
    return 0


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _run_diff(args: argparse.Namespace) -> int:
    from .diff import compare, render_markdown

    if args.old == "-" and args.new == "-":
        raise LockfileError("only one of OLD and NEW can be read from standard input")
    result = compare(_read(args.old), _read(args.new))
    text = result.to_json() if args.format == "json" else render_markdown(result)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _read(source: str) -> Lockfile:
    from .lockfile import Lockfile

    if source == "-":
        return Lockfile.parse(sys.stdin.read(), "<stdin>")
    return Lockfile.read(Path(source))  # a folder, a missing or unreadable file: a one-line error
