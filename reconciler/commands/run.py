"""``reconciler run``: the daemon that follows a Git branch and keeps the world converged.

Registered by ``cli.py``. It reads the settings from the environment (through ``wiring``),
sets up JSON logs on stderr (:func:`reconciler.runtime.logging.setup_logging`), builds
:class:`reconciler.wiring.DaemonWorld` and runs :class:`reconciler.runtime.loop.Daemon` in one
asyncio event loop, with SIGTERM and SIGINT asking for a graceful stop. docs/daemon.md is the
operator's guide.

Exit codes: 0 after a graceful stop (and, with ``--once``, when the pass failed nothing);
1 on bad settings, an address that cannot be listened on (one line, no traceback), a bug, or
a ``--once`` pass with failures.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from reconciler.commands.common import EXIT_ERROR, EXIT_OK, error
from reconciler.errors import LoadError, MigrationError, ProviderError, SpecError
from reconciler.runtime.lease import LeaseLostError
from reconciler.runtime.logging import setup_logging
from reconciler.runtime.loop import Daemon, LoopSettings
from reconciler.wiring import DaemonWorld, load_settings

log = logging.getLogger("reconciler.run")

_BIND_ERRORS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def register(subparsers: Any) -> None:
    """Add the ``run`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="follow a Git branch and keep the world converged (the daemon)",
        description="Follow a branch of a Git remote and reconcile continuously: changed "
        "resources first, sweeps for the rest, webhooks, a leader lease in D1, health and "
        "metrics over HTTP. Settings come from the environment (see docs/daemon.md).",
    )
    parser.add_argument("--repo-url", required=True, help="the Git remote to follow")
    parser.add_argument("--branch", default="main", help="the branch to follow (default: main)")
    parser.add_argument(
        "--specs",
        default="specs",
        metavar="DIR",
        help="the specs directory inside the repository (default: specs)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".reconciler"),
        help="the daemon's own directory, for its copy of the repository (default: .reconciler)",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address of the HTTP endpoints (default: 127.0.0.1:8080; 'off' serves nothing)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="Git poll interval when no push webhook arrives (default: 60)",
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="passes run at once, on different tenants"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="on SIGTERM, how long passes in flight may finish (default: 20)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="take the lease, make one full pass at the branch head, release and exit",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    parser.set_defaults(handler=run)


def parse_listen(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (IPv6 as ``[::]:8080``) as a pair; ``off`` as None.

    Raises:
        ValueError: not ``HOST:PORT`` with a port number.
    """
    if text.lower() == "off":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--listen must look like HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def run(args: argparse.Namespace) -> int:
    """Run the daemon until stopped; return the exit code."""
    setup_logging(args.log_level)
    try:
        listen = None if args.once else parse_listen(args.listen)
        settings = load_settings()
        loop_settings = LoopSettings(interval=args.interval, workers=args.workers, grace=args.grace)
        world = DaemonWorld(
            settings,
            repo_url=args.repo_url,
            branch=args.branch,
            workdir=args.workdir,
            specs_subdir=args.specs,
            listen=listen,
        )
    except (ValueError, MigrationError) as exc:
        return error(exc)
    try:
        return asyncio.run(_main(world, loop_settings, once=args.once))
    except OSError as exc:
        if listen is None or exc.errno not in _BIND_ERRORS:
            raise
        host, port = listen
        print(
            f"error: cannot serve the HTTP endpoints on {host}:{port}: {exc.strerror or exc} "
            "(choose another with --listen HOST:PORT, or --listen off)",
            file=sys.stderr,
        )
        return EXIT_ERROR


async def _main(world: DaemonWorld, settings: LoopSettings, *, once: bool) -> int:
    async with world:
        daemon = Daemon(world.parts, settings)
        world.serve(daemon)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop)
        try:
            if once:
                return await _once(daemon)
            return await daemon.run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)


async def _once(daemon: Daemon) -> int:
    try:
        result = await daemon.run_once()
    except (ProviderError, SpecError, LoadError, LeaseLostError) as exc:
        log.error("the pass could not run", extra={"error": str(exc)})
        return EXIT_ERROR
    return EXIT_OK if result.ok else EXIT_ERROR
