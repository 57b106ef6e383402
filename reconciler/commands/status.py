"""``reconciler status``: the conditions of every resource, as the daemon last recorded them.

Registered by ``cli.py``; reads D1 through :class:`reconciler.runtime.status.StatusStore` on a
database built here the way ``reconciler migrate`` builds it: ``--database PATH`` opens that
SQLite file; without it the D1 settings from the environment decide (``D1_BACKEND=sqlite``
uses ``D1_SQLITE_PATH``; ``D1_BACKEND=d1`` uses the Cloudflare client with
``D1_DATABASE_ID``). It never creates a database: a missing file or a database without the
status table is an error that says to run ``reconciler migrate``.

Output: a table (RESOURCE, CONDITION, STATUS, REASON, AGE, MESSAGE) sorted by resource and
condition, with messages cut to the terminal's width when writing to one; ``--format json``
prints a list of objects. Exit code 0, or 1 on error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.commands.common import EXIT_OK
from reconciler.errors import MigrationError
from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.d1 import D1HttpDatabase, Database, SqliteDatabase
from reconciler.runtime.status import Condition, ResourceStatus, StatusStore
from reconciler.wiring import load_settings, wall_clock

HEADERS = ("RESOURCE", "CONDITION", "STATUS", "REASON", "AGE", "MESSAGE")
MIN_MESSAGE_WIDTH = 20


def register(subparsers: Any) -> None:
    """Add the ``status`` subcommand."""
    conditions = ", ".join(condition.value for condition in Condition)
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show each resource's conditions (Synced, Ready, Stuck, ...) as recorded in D1",
        description="Show the conditions the daemon recorded for each site, hostname and "
        f"tenant ({conditions}), with their reason, age and message.",
    )
    parser.add_argument("--tenant", metavar="T", help="only resources of tenant T")
    parser.add_argument("--site", metavar="S", help="only site S and its hostnames")
    parser.add_argument(
        "--condition", metavar="C", help="only condition C (any case, e.g. stuck, Ready)"
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )
    parser.add_argument(
        "--database",
        metavar="PATH",
        help="SQLite file to read (default: from D1_BACKEND / D1_SQLITE_PATH / D1_DATABASE_ID)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Read the conditions, print them, and return the exit code."""
    rows = asyncio.run(_read(args))
    if args.format == "json":
        print(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("no conditions recorded", file=sys.stderr)
        return EXIT_OK
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    for line in render_table(rows, now=wall_clock(), width=width):
        print(line)
    return EXIT_OK


async def _read(args: argparse.Namespace) -> list[ResourceStatus]:
    db, owner = _open(args.database)
    try:
        store = StatusStore(db, wall_clock)
        return await store.list(tenant=args.tenant, site=args.site, condition=args.condition)
    finally:
        await db.close()
        if owner is not None:
            await owner.aclose()


def _open(path: str | None) -> tuple[Database, CloudflareClient | None]:
    """Pick the backend: an explicit file, else the environment's D1 settings."""
    if path is None:
        try:
            settings = load_settings()
        except ValueError as exc:
            raise MigrationError(str(exc)) from exc
        if settings.d1.backend != "sqlite":
            if not settings.d1.database_id:
                raise MigrationError("D1_BACKEND=d1 needs D1_DATABASE_ID")
            client = CloudflareClient(settings.cloudflare)
            return D1HttpDatabase(client, settings.d1.database_id), client
        path = settings.d1.sqlite_path
    if not Path(path).is_file():
        raise MigrationError(
            f"the D1 SQLite file {path} does not exist: run `reconciler migrate` to create it"
        )
    return SqliteDatabase(path), None


def age(seconds: float) -> str:
    """A short age like kubectl's: ``45s``, ``12m``, ``5h``, ``3d``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3_600:
        return f"{int(seconds // 60)}m"
    if seconds < 48 * 3_600:
        return f"{int(seconds // 3_600)}h"
    return f"{int(seconds // 86_400)}d"


def render_table(rows: Sequence[ResourceStatus], *, now: float, width: int | None) -> list[str]:
    """The table's lines; with a ``width``, messages are cut so each line fits.

    Args:
        rows: the conditions, already sorted.
        now: epoch seconds, for the AGE column (time since the last transition).
        width: the terminal's width in columns, or None to keep messages whole.
    """
    cells = [
        (
            row.resource,
            row.condition,
            row.status_text,
            row.reason,
            age(now - row.last_transition_at),
            " ".join(row.message.split()),
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADERS[:-1])]
    room = None
    if width is not None:
        room = max(MIN_MESSAGE_WIDTH, width - sum(widths) - 2 * len(widths))
    lines = []
    for cell in (HEADERS, *cells):
        message = cell[-1]
        if room is not None and len(message) > room:
            message = message[: room - 1] + "…"
        fixed = "  ".join(value.ljust(w) for value, w in zip(cell[:-1], widths, strict=True))
        lines.append(f"{fixed}  {message}".rstrip())
    return lines
