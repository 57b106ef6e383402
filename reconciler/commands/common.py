"""What the subcommands share: exit codes, the options they share and error output.

Used by every module of ``commands/``; each fact here (an exit code, the wording of an invalid
fleet, the options ``plan`` and ``apply`` both take) is written once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from reconciler.core.levers import parse_address
from reconciler.errors import Problem

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_ERROR",
    "EXIT_OK",
    "add_plan_options",
    "add_source_options",
    "error",
    "guarded",
    "print_invalid",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BLOCKED = 3

_T = TypeVar("_T")


def add_source_options(parser: argparse.ArgumentParser, *, specs_help: str, ref_help: str) -> None:
    """``--specs DIR``, ``--repo`` and ``--ref``: where the specs are read from."""
    parser.add_argument("--specs", default="specs", metavar="DIR", help=specs_help)
    parser.add_argument("--repo", type=Path, help="read the specs from this Git repository")
    parser.add_argument("--ref", help=ref_help)


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """The planning options ``plan`` and ``apply`` share (after their own)."""
    parser.add_argument(
        "--allow-mass-deletion",
        action="store_true",
        help="let hostname deletions exceed the blast-radius cap",
    )
    parser.add_argument(
        "--target",
        action="append",
        type=_address,
        default=[],
        metavar="KIND/NAME",
        help="plan only this resource and what it depends on (Tenant/, Site/, Hostname/ or "
        "Invoice/NAME; repeatable; a tenant covers its sites, a site its hostnames)",
    )
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--now", type=float, default=None, help=argparse.SUPPRESS)


def _address(text: str) -> str:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def error(message: object) -> int:
    """Print ``error: message`` on stderr; return ``EXIT_ERROR``."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def guarded(make: Callable[[], _T]) -> _T | None:
    """``make()``, or None after printing the ``ValueError`` (bad settings) it raised."""
    try:
        return make()
    except ValueError as exc:
        error(exc)
        return None


def print_invalid(label: str, problems: list[Problem], *, suffix: str = "") -> None:
    """Print each problem on stdout, then ``LABEL is invalid: N problems`` on stderr."""
    for problem in problems:
        print(problem.render())
    count = len(problems)
    print(
        f"{label} is invalid: {count} problem{'s' if count != 1 else ''}{suffix}", file=sys.stderr
    )
