"""The ``reconciler`` command line: subcommands, output formats and exit codes; no decisions.

Exit codes follow terraform's ``-detailed-exitcode``: 0 nothing to do (or valid), 1 error,
2 changes pending, 3 blocked by policy. Errors from :mod:`reconciler.errors` become a clear
message on stderr and exit 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from reconciler import __version__
from reconciler.errors import ReconcilerError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_BLOCKED = 3

# Subcommand modules under reconciler/commands/, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = (
    "validate",
    "plan",
    "apply",
    "levers",  # the runbooks' manual verbs: publish, purge, retry-validation, recreate, ...
    "run",
    "status",
    "schemas",
    "migrate",
    "sandbox",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="GitOps reconciler for site-builder fleets on Cloudflare, D1, Stripe and "
        "WhatsApp.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"reconciler.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        code: int = handler(args)
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code
