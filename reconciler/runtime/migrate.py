"""Apply D1 schema migrations the way ``wrangler d1 migrations apply`` does, and refuse to guess.

Called by ``commands/migrate.py`` (``reconciler migrate``) and by tests and the sandbox, with any
:class:`~reconciler.providers.d1.Database` (a local SQLite file or D1 over the REST API).

Rules (``contracts/d1/NOTES.md`` §2; docs/d1.md explains them for operators):

1. Files are ``migrations/NNNN_name.sql``, applied in the order of their leading number (file
   name breaks ties). "Applied" means the file name is a row of wrangler's ``d1_migrations``
   table, created here with wrangler's exact DDL, so both tools agree on what is applied.
2. Each migration's statements and its ``d1_migrations`` row (plus our checksum row) run as
   one batch: all or nothing. The first failure stops the run with a :class:`MigrationError`
   naming the file and the SQL error; earlier migrations stay applied.
3. Before applying anything the history is checked, and the run refuses when:
   a. a migration recorded as applied has no file any more;
   b. an applied file was edited since (its sha256 is kept in ``reconciler_migration_checksums``;
      migrations applied by wrangler have no checksum yet and are adopted on first sight);
   c. a pending migration looks partially applied: objects it creates (without ``IF NOT
      EXISTS``) or columns it adds already exist although its row is absent;
   d. a pending migration is numbered below one already applied (wrangler would apply it out
      of order).
4. With a :class:`~reconciler.providers.d1_restore.RestorePoints` (the CLI always passes one), a
   restore point (a D1 Time Travel bookmark, or a file snapshot on SQLite) is taken before each
   migration and kept in ``reconciler_restore_points`` (``runtime/restore_points.py``); a
   failed migration's message names the point to return to (``runtime/restore.py``).
5. Like wrangler, one leading ``BEGIN TRANSACTION;`` and ``COMMIT;`` are stripped (``sqlite3
   .dump`` output); a file with more transactions is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from reconciler.errors import MigrationError, ProviderError
from reconciler.providers.d1 import (
    Database,
    SqlError,
    Statement,
    strip_comments,
)
from reconciler.providers.d1_restore import RestorePoints
from reconciler.runtime.migration_files import (
    MigrationFile,
    altered_tables,
    discover,
    find_partial,
)
from reconciler.runtime.restore_points import RESTORE_POINTS_DDL, restore_point_statement

__all__ = [
    "CHECKSUM_TABLE",
    "MIGRATIONS_TABLE",
    "MigrateReport",
    "MigrationFile",
    "MigrationState",
    "MigrationStatus",
    "discover",
    "find_partial",
    "migrate",
    "migration_status",
]

MIGRATIONS_TABLE = "d1_migrations"
CHECKSUM_TABLE = "reconciler_migration_checksums"

# wrangler's DDL, verbatim (packages/wrangler/src/d1/migrations/helpers.ts, wrangler 4.86).
MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS d1_migrations(\n"
    "\t\tid INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "\t\tname TEXT UNIQUE,\n"
    "\t\tapplied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n"
    ")"
)
CHECKSUM_DDL = (
    f"CREATE TABLE IF NOT EXISTS {CHECKSUM_TABLE} (\n"
    "    name TEXT PRIMARY KEY,\n"
    "    sha256 TEXT NOT NULL,\n"
    "    recorded_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n"
    ")"
)
_INSERT_APPLIED = f"INSERT INTO {MIGRATIONS_TABLE} (name) VALUES (?)"
_INSERT_CHECKSUM = f"INSERT OR REPLACE INTO {CHECKSUM_TABLE} (name, sha256) VALUES (?, ?)"

# --------------------------------------------------------------------------- values


class MigrationState(StrEnum):
    """Where one migration stands."""

    APPLIED = "applied"
    UNVERIFIED = "applied (no checksum yet)"  # applied by wrangler; adopted on next migrate
    PENDING = "pending"
    MISSING = "applied, file missing"
    EDITED = "applied, file edited since"
    PARTIAL = "pending, partially applied"
    OUT_OF_ORDER = "pending, numbered below an applied migration"


PROBLEM_STATES = frozenset(
    {
        MigrationState.MISSING,
        MigrationState.EDITED,
        MigrationState.PARTIAL,
        MigrationState.OUT_OF_ORDER,
    }
)


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """One line of ``reconciler migrate --status``."""

    name: str
    state: MigrationState
    applied_at: str | None = None
    detail: str = ""

    @property
    def is_problem(self) -> bool:
        """True when this migration blocks ``migrate``."""
        return self.state in PROBLEM_STATES


@dataclass(frozen=True, slots=True)
class MigrateReport:
    """What a ``migrate`` run did (or, for a dry run, would do)."""

    applied: tuple[str, ...] = ()  # applied by this run (dry run: would be applied)
    already_applied: tuple[str, ...] = ()
    adopted: tuple[str, ...] = ()  # wrangler-applied migrations whose checksum was recorded
    dry_run: bool = False
    statements: int = 0  # statements run (or to run) by this run
    restore_points: tuple[tuple[str, str], ...] = ()  # (migration, bookmark taken before it)

    @property
    def total_applied(self) -> int:
        """Migrations applied in the database after this run (dry run: after a real run)."""
        return len(self.already_applied) + len(self.applied)


@dataclass(frozen=True, slots=True)
class _Applied:
    name: str
    applied_at: str | None
    sha256: str | None


# --------------------------------------------------------------------------- database reads


async def _table_exists(db: Database, name: str) -> bool:
    rows = await db.query(
        "SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    )
    return bool(rows)


async def _read_applied(db: Database, *, tables_exist: bool) -> list[_Applied]:
    if not tables_exist and not await _table_exists(db, MIGRATIONS_TABLE):
        return []
    rows = await db.query(f"SELECT name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY id")
    checksums: dict[str, str] = {}
    if tables_exist or await _table_exists(db, CHECKSUM_TABLE):
        for row in await db.query(f"SELECT name, sha256 FROM {CHECKSUM_TABLE}"):
            checksums[str(row["name"])] = str(row["sha256"])
    return [
        _Applied(
            name=str(row["name"]),
            applied_at=None if row["applied_at"] is None else str(row["applied_at"]),
            sha256=checksums.get(str(row["name"])),
        )
        for row in rows
    ]


async def _read_schema(
    db: Database, tables: set[str]
) -> tuple[dict[str, tuple[str, str]], dict[str, set[str] | None]]:
    objects: dict[str, tuple[str, str]] = {}
    for row in await db.query("SELECT type, name, tbl_name FROM sqlite_master"):
        name = str(row["name"]).lower()
        if name.startswith("sqlite_"):
            continue
        objects[name] = (str(row["type"]), str(row["tbl_name"]).lower())
    columns: dict[str, set[str] | None] = {}
    for table in sorted(tables):
        if objects.get(table, ("", ""))[0] != "table":
            continue
        quoted = '"' + table.replace('"', '""') + '"'
        rows = await db.query(f"PRAGMA table_info({quoted})")
        columns[table] = {str(row["name"]).lower() for row in rows}
    return objects, columns


# --------------------------------------------------------------------------- status and migrate


async def migration_status(db: Database, migrations_dir: Path) -> list[MigrationStatus]:
    """List every migration, applied or pending, with any problem that blocks ``migrate``.

    Read-only: nothing is created or recorded.

    Args:
        db: the database.
        migrations_dir: the migrations folder.

    Returns:
        Applied migrations in the order they were applied, then pending ones in the order
        ``migrate`` would apply them.
    """
    files = discover(migrations_dir)
    applied = await _read_applied(db, tables_exist=False)
    return await _statuses(db, files, applied)


async def _statuses(
    db: Database, files: list[MigrationFile], applied: list[_Applied]
) -> list[MigrationStatus]:
    by_name = {migration.name: migration for migration in files}
    applied_names = {record.name for record in applied}
    statuses: list[MigrationStatus] = []
    for record in applied:
        migration = by_name.get(record.name)
        if migration is None:
            statuses.append(
                MigrationStatus(
                    record.name,
                    MigrationState.MISSING,
                    record.applied_at,
                    "recorded in d1_migrations but the file is gone; restore it",
                )
            )
        elif record.sha256 is None:
            statuses.append(
                MigrationStatus(record.name, MigrationState.UNVERIFIED, record.applied_at)
            )
        elif record.sha256 != migration.sha256:
            statuses.append(
                MigrationStatus(
                    record.name,
                    MigrationState.EDITED,
                    record.applied_at,
                    f"applied with sha256 {record.sha256[:12]}, the file now has "
                    f"{migration.sha256[:12]}; restore it and put the change in a new migration",
                )
            )
        else:
            statuses.append(MigrationStatus(record.name, MigrationState.APPLIED, record.applied_at))
    pending = [migration for migration in files if migration.name not in applied_names]
    applied_files = [by_name[name] for name in applied_names if name in by_name]
    newest = max(applied_files, key=lambda item: item.sort_key, default=None)
    objects, columns = await _read_schema(db, altered_tables(pending))
    partial = find_partial(pending, objects, columns)
    for migration in pending:
        if newest is not None and migration.sort_key < newest.sort_key:
            statuses.append(
                MigrationStatus(
                    migration.name,
                    MigrationState.OUT_OF_ORDER,
                    detail=f"{newest.name} is already applied; renumber it after {newest.name}",
                )
            )
        elif migration.name in partial:
            statuses.append(
                MigrationStatus(
                    migration.name,
                    MigrationState.PARTIAL,
                    detail="already present: " + ", ".join(partial[migration.name]),
                )
            )
        else:
            statuses.append(MigrationStatus(migration.name, MigrationState.PENDING))
    return statuses


def _refusal(migrations_dir: Path, problems: list[MigrationStatus]) -> MigrationError:
    lines: list[str] = []
    for status in problems:
        where = migrations_dir / status.name
        if status.state is MigrationState.PARTIAL:
            lines.append(
                f"{where}: looks partially applied (not recorded in {MIGRATIONS_TABLE}, but "
                f"{status.detail.removeprefix('already present: ')} already exist); refusing to "
                "guess: finish or undo it by hand (docs/d1.md), then run migrate again"
            )
        elif status.state is MigrationState.MISSING:
            lines.append(f"{where}: {status.detail}")
        elif status.state is MigrationState.EDITED:
            lines.append(f"{where}: edited after it was applied: {status.detail}")
        else:
            lines.append(f"{where}: {status.state.value}: {status.detail}")
    head = "" if len(lines) == 1 else f"{len(lines)} problems in the migration history:\n  "
    return MigrationError(head + "\n  ".join(lines))


def _excerpt(sql: str, width: int = 70) -> str:
    flat = " ".join(strip_comments(sql).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


async def migrate(
    db: Database,
    migrations_dir: Path,
    *,
    progress: Callable[[str], None] | None = None,
    dry_run: bool = False,
    restore_points: RestorePoints | None = None,
    checkpoint: Callable[[str], None] | None = None,
) -> MigrateReport:
    """Apply pending migrations, each with its bookkeeping rows in one atomic batch.

    Args:
        db: the database (SQLite file or D1).
        migrations_dir: the migrations folder; file paths in messages are shown under it.
        progress: called with one line per step (``applying ...``, ``applied ...``).
        dry_run: check everything and report what would be applied, writing nothing.
        restore_points: when given, a restore point is taken and recorded before each
            migration is applied.
        checkpoint: named crash points for tests (``migrate.after-restore-point``,
            ``migrate.after-apply``).

    Returns:
        What was applied, what already was, and which wrangler-applied migrations were adopted.

    Raises:
        MigrationError: the history is inconsistent (missing, edited, partial or out-of-order
            migration; nothing was applied), or a migration failed (it was rolled back and the
            message names the file and the SQL error; earlier ones stay applied).
    """
    say = progress or (lambda _line: None)
    files = discover(migrations_dir)
    if not dry_run:
        await db.batch(
            [Statement(MIGRATIONS_DDL), Statement(CHECKSUM_DDL), Statement(RESTORE_POINTS_DDL)]
        )
    applied = await _read_applied(db, tables_exist=not dry_run)
    statuses = await _statuses(db, files, applied)
    problems = [status for status in statuses if status.is_problem]
    if problems:
        raise _refusal(migrations_dir, problems)

    by_name = {migration.name: migration for migration in files}
    adopted = await _adopt(db, statuses, by_name, migrations_dir, dry_run=dry_run, say=say)
    pending = [by_name[s.name] for s in statuses if s.state is MigrationState.PENDING]
    run = _Run(db, migrations_dir, say, restore_points, checkpoint or _no_checkpoint)
    for migration in pending:
        await (run.count(migration) if dry_run else run.apply(migration))
    return MigrateReport(
        applied=tuple(run.done),
        already_applied=tuple(record.name for record in applied),
        adopted=adopted,
        dry_run=dry_run,
        statements=run.statements,
        restore_points=tuple(run.points),
    )


async def _adopt(
    db: Database,
    statuses: list[MigrationStatus],
    by_name: Mapping[str, MigrationFile],
    migrations_dir: Path,
    *,
    dry_run: bool,
    say: Callable[[str], None],
) -> tuple[str, ...]:
    """Record the checksums of migrations applied without one (e.g. by wrangler)."""
    adopted = tuple(status.name for status in statuses if status.state is MigrationState.UNVERIFIED)
    if adopted and not dry_run:
        await db.batch(
            [Statement(_INSERT_CHECKSUM, (name, by_name[name].sha256)) for name in adopted]
        )
    for name in adopted:
        say(
            f"{'would adopt' if dry_run else 'adopted'} {migrations_dir / name} "
            "(applied without a checksum, e.g. by wrangler)"
        )
    return adopted


@dataclass(slots=True)
class _Run:
    """The pending migrations of one ``migrate`` run, applied (or counted) in order."""

    db: Database
    migrations_dir: Path
    say: Callable[[str], None]
    restore_points: RestorePoints | None
    checkpoint: Callable[[str], None]
    done: list[str] = field(default_factory=list)
    points: list[tuple[str, str]] = field(default_factory=list)
    statements: int = 0

    async def count(self, migration: MigrationFile) -> None:
        """A dry run: say what would be applied."""
        count = len(migration.statements)
        where = self.migrations_dir / migration.name
        self.say(f"would apply {where} ({count} statement{'s' if count != 1 else ''})")
        self.done.append(migration.name)
        self.statements += count

    async def apply(self, migration: MigrationFile) -> None:
        """Take the restore point, then apply the migration and its bookkeeping rows."""
        count = len(migration.statements)
        where = self.migrations_dir / migration.name
        bookmark = await _take_restore_point(self.restore_points, migration.name, self.say)
        self.checkpoint("migrate.after-restore-point")
        self.say(f"applying {where} ({count} statement{'s' if count != 1 else ''})")
        await _apply_one(self.db, migration, where, self.restore_points, bookmark)
        self.checkpoint("migrate.after-apply")
        if bookmark is not None:
            self.points.append((migration.name, bookmark))
        self.say(f"applied {where}")
        self.done.append(migration.name)
        self.statements += count


def _no_checkpoint(name: str) -> None:
    """Production's checkpoints: nothing happens."""


async def _take_restore_point(
    points: RestorePoints | None, name: str, say: Callable[[str], None]
) -> str | None:
    """Take the restore point before migration ``name`` (None: not asked to)."""
    if points is None:
        return None
    try:
        bookmark = await points.mark(name.removesuffix(".sql"))
    except ProviderError as exc:
        raise MigrationError(
            f"{name}: could not take a restore point ({points.kind}) before applying it: {exc}; "
            "nothing was applied"
        ) from exc
    say(f"restore point before {name}: {bookmark} ({points.kind})")
    return bookmark


async def _apply_one(
    db: Database,
    migration: MigrationFile,
    where: Path,
    points: RestorePoints | None,
    bookmark: str | None,
) -> None:
    """Run one migration with its bookkeeping rows as one batch, or raise a located error."""
    batch = [Statement(sql) for sql in migration.statements]
    batch.append(Statement(_INSERT_APPLIED, (migration.name,)))
    batch.append(Statement(_INSERT_CHECKSUM, (migration.name, migration.sha256)))
    if points is not None and bookmark is not None:
        batch.append(restore_point_statement(migration.name, bookmark, points.kind))
    back = (
        ""
        if bookmark is None
        else f"; the database before it is restore point {bookmark} "
        f"(to return there: reconciler migrate --restore-to {bookmark})"
    )
    try:
        await db.batch(batch)
    except SqlError as exc:
        index = exc.statement_index
        location = ""
        if index is not None and index < len(migration.statements):
            location = f" (statement {index + 1}: {_excerpt(migration.statements[index])})"
        raise MigrationError(f"{where}: {exc.sql_message}{location}{back}") from exc
    except ProviderError as exc:
        raise MigrationError(
            f"{where}: {exc}; the migration may or may not have been applied: "
            f"run `reconciler migrate --status` before retrying{back}"
        ) from exc
