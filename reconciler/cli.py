"""The ``reconciler`` command line: subcommands, output formats and exit codes; no decisions.

Exit codes follow terraform's ``-detailed-exitcode``: 0 nothing to do (or valid), 1 error,
2 changes pending, 3 blocked by policy. A usage error (an unknown flag, a missing argument) is
1 too, never argparse's 2, which would read as "changes pending". Errors from
:mod:`reconciler.errors` and from the operating system (a port in use, a file that cannot be
written) become one clear line on stderr and exit 1; a closed pipe (``reconciler status |
head``) ends quietly. Anything else is a bug and keeps its traceback. Everything a command
prints on stdout and stderr passes through ``reconciler/redact.py``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from reconciler import __version__
from reconciler.errors import ReconcilerError
from reconciler.redact import RedactingStream

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
    "optimize",
)


class Parser(argparse.ArgumentParser):
    """argparse with usage errors exiting 1 (``EXIT_ERROR``) instead of 2 (``EXIT_CHANGES``).

    ``add_subparsers`` builds the subcommands' parsers with the same class.
    """

    def error(self, message: str) -> NoReturn:
        """Print the usage and the error, then exit 1."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = Parser(
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
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(stdout), RedactingStream(stderr)
    try:
        code: int = handler(args)
        sys.stdout.flush()
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR
    except OSError as exc:
        print(f"error: {_os_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    return code


def _os_error(exc: OSError) -> str:
    """An operating-system error in one line (``[Errno 98] ...`` made readable)."""
    text = exc.strerror or str(exc)
    if exc.filename is not None:
        text = f"{exc.filename}: {text}"
    return text


def _silence_stdout() -> None:
    """The reader of stdout went away (``| head``): drop what is left, as Python advises."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
