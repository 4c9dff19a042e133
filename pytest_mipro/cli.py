"""The ``pytest-mipro`` command (also ``python -m pytest_mipro``).

``pytest-mipro diff OLD NEW`` compares two lockfiles and prints what a reviewer needs to
judge the change (see :mod:`pytest_mipro.diff`). ``-`` reads a lockfile from standard
input, and an empty file counts as a lockfile without targets, so a base branch that has
none yet can be compared with ``git show base:prompts.lock > old.lock || true``.

Exit status: 0 after printing the comparison, 2 when an argument or a lockfile is wrong.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LockfileError

if TYPE_CHECKING:
    from .lockfile import Lockfile

PROG = "pytest-mipro"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except LockfileError as exc:
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
    return parser


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
