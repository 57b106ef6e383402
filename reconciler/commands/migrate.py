"""``reconciler migrate``: apply pending D1 migrations, or show where each one stands.

Registered by ``cli.py``; calls :func:`reconciler.runtime.migrate.migrate` and
:func:`reconciler.runtime.migrate.migration_status` on a database built here: ``--database PATH``
opens that SQLite file; without it the D1 settings from the environment decide
(``D1_BACKEND=sqlite`` uses ``D1_SQLITE_PATH``; ``D1_BACKEND=d1`` uses the Cloudflare client
from ``providers/cloudflare.py`` with ``D1_DATABASE_ID``).

Before each migration a restore point is taken (a D1 Time Travel bookmark, or a snapshot of the
SQLite file) and kept with the migration's record; ``--restore-before NNNN`` (or
``--restore-to BOOKMARK``) prints what a restore would undo and, once confirmed (or ``--yes``),
puts the whole database back there (``runtime/restore.py``).

Exit codes: 0 applied, restored, or nothing to do; 1 error (the message names the file and the
SQL error, or the inconsistency found; a restore not confirmed); with ``--dry-run``, 2 when
migrations are pending; with ``--status``, 1 when the history has a problem that would block
``migrate``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from reconciler.commands.common import EXIT_ERROR, EXIT_OK
from reconciler.errors import MigrationError
from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.d1 import D1HttpDatabase, Database, SqliteDatabase
from reconciler.providers.d1_restore import RestorePoints, SqliteSnapshots, TimeTravel
from reconciler.runtime.lease import LeaderLease, default_holder, exclusive
from reconciler.runtime.migrate import MigrationStatus, migrate, migration_status
from reconciler.runtime.restore import plan_restore, render_plan, restore
from reconciler.runtime.restore_points import RestorePoint, read_restore_points
from reconciler.settings import Settings
from reconciler.wiring import load_checkpoints

EXIT_PENDING = 2


def register(subparsers: Any) -> None:
    """Add the ``migrate`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "migrate",
        help="apply pending D1 migrations (wrangler's convention), each in one transaction",
        description="Apply the pending migrations in DIR to the database, each file together "
        "with its d1_migrations row in one transaction. Refuses to start when an applied "
        "migration is missing or was edited, or a pending one looks partially applied.",
    )
    parser.add_argument(
        "--database",
        metavar="PATH",
        help="SQLite file to migrate (default: from D1_BACKEND / D1_SQLITE_PATH / D1_DATABASE_ID)",
    )
    parser.add_argument(
        "--dir",
        default="migrations",
        metavar="DIR",
        help="migrations directory (default: migrations)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--status", action="store_true", help="list migrations and their state")
    mode.add_argument(
        "--dry-run", action="store_true", help="check and show what would be applied; write nothing"
    )
    mode.add_argument(
        "--restore-before",
        metavar="NNNN",
        help="restore the whole database to the point taken before migration NNNN "
        "(prints what is undone and asks first)",
    )
    mode.add_argument(
        "--restore-to",
        metavar="BOOKMARK",
        help="restore the whole database to a bookmark a migrate run printed",
    )
    parser.add_argument(
        "--yes", action="store_true", help="restore without asking (the plan is still printed)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the database, run the chosen mode, print, and return the exit code."""
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    db, where, owner, points = _open(args.database)
    try:
        if args.status:
            statuses = await migration_status(db, directory)
            return _print_status(statuses, await read_restore_points(db), where)
        if args.restore_before is not None or args.restore_to is not None:
            return await _restore(db, points, where, args)
        report = await migrate(
            db, directory, progress=_print if args.dry_run else None, dry_run=True
        )
        if report.applied and not args.dry_run:
            async with _leased(db):
                report = await migrate(
                    db,
                    directory,
                    progress=_print,
                    restore_points=points,
                    checkpoint=load_checkpoints(),
                )
    finally:
        await db.close()
        if owner is not None:
            await owner.aclose()
    noun = "migration" if report.total_applied == 1 else "migrations"
    if report.dry_run:
        if report.applied:
            print(f"{where}: {len(report.applied)} to apply; {report.total_applied} {noun} after")
            return EXIT_PENDING
        print(f"database is up to date: {report.total_applied} {noun} applied")
        return EXIT_OK
    if report.applied:
        count = len(report.applied)
        print(
            f"applied {count} migration{'s' if count != 1 else ''} ({report.statements} statements)"
        )
    print(f"database is up to date: {report.total_applied} {noun} applied")
    return EXIT_OK


@contextlib.asynccontextmanager
async def _leased(db: Database) -> AsyncIterator[None]:
    """Hold the daemon's leader lease while pending migrations change the schema, so no daemon
    writes into a table being rebuilt (``runtime/lease.py`` rule 6); refuse, naming the holder,
    while one leads. A database without a ``leases`` table yet needs no lease."""
    tables = await db.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", ["leases"]
    )
    if not tables:
        yield
        return
    lease = LeaderLease(db, holder=default_holder("migrate"), ttl=60.0)
    async with exclusive(lease, verb="migrate"):
        yield


def _print(line: str) -> None:
    print(line, flush=True)


async def _restore(
    db: Database, points: RestorePoints | None, where: str, args: argparse.Namespace
) -> int:
    """Print the restore plan, ask (unless ``--yes``), restore, and say how to undo it."""
    if points is None:
        raise MigrationError(f"{where} has no restore points (an in-memory database)")
    plan = await plan_restore(db, before=args.restore_before, bookmark=args.restore_to)
    for line in render_plan(plan, where):
        print(line)
    if not args.yes and not _confirmed():
        print("not restored", file=sys.stderr)
        return EXIT_ERROR
    async with _leased(db):  # no daemon writes while the database is put back
        done = await restore(points, plan, db)
    print(f"restored {where} to {done.bookmark}" + (f": {done.message}" if done.message else ""))
    if done.previous_bookmark:
        print(f"to undo this restore: reconciler migrate --restore-to {done.previous_bookmark}")
    return EXIT_OK


def _confirmed() -> bool:
    """Ask on a terminal; refuse (with a hint) when nobody can answer."""
    if not sys.stdin.isatty():
        print("error: confirm with --yes (standard input is not a terminal)", file=sys.stderr)
        return False
    answer = input("restore? type 'yes' to go on: ")
    return answer.strip().lower() == "yes"


def _print_status(
    statuses: list[MigrationStatus], points: dict[str, RestorePoint], where: str
) -> int:
    print(f"migrations for {where}:")
    if not statuses:
        print("  (none)")
    width = max((len(status.name) for status in statuses), default=0)
    for status in statuses:
        line = f"  {status.name.ljust(width)}  {status.state.value}"
        if status.applied_at:
            line += f"  at {status.applied_at}"
        if status.detail:
            line += f"  ({status.detail})"
        if status.name in points:
            line += f"  restore point before: {points[status.name].bookmark}"
        print(line)
    problems = [status for status in statuses if status.is_problem]
    if problems:
        print(
            f"error: {len(problems)} problem{'s' if len(problems) != 1 else ''} "
            "would block migrate",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_OK


_Opened = tuple[Database, str, CloudflareClient | None, RestorePoints | None]


def _open(path: str | None) -> _Opened:
    """Pick the backend: an explicit file, else the environment's D1 settings."""
    if path is not None:
        return _sqlite(path)
    try:
        settings = Settings.from_env(os.environ)
    except ValueError as exc:
        raise MigrationError(str(exc)) from exc
    if settings.d1.backend == "sqlite":
        return _sqlite(settings.d1.sqlite_path)
    if not settings.d1.database_id:
        raise MigrationError("D1_BACKEND=d1 needs D1_DATABASE_ID")
    client = CloudflareClient(settings.cloudflare)
    database = D1HttpDatabase(client, settings.d1.database_id)
    points = TimeTravel(client, settings.d1.database_id)
    return database, f"D1 database {settings.d1.database_id}", client, points


def _sqlite(path: str) -> _Opened:
    """A SQLite file, with file snapshots as its restore points (none for ``:memory:``)."""
    db = SqliteDatabase(path)
    try:
        points: RestorePoints | None = SqliteSnapshots(db)
    except MigrationError:
        points = None
    return db, path, None, points
