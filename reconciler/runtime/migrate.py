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

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from reconciler.errors import MigrationError, ProviderError
from reconciler.providers.d1 import (
    Database,
    SqlError,
    Statement,
    split_sql,
    strip_comments,
)
from reconciler.providers.d1_restore import RestorePoints
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

_FILE_NAME = re.compile(r"^(\d+)(?:_.*)?\.sql$")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One migration file as read from disk."""

    name: str  # file name with extension, what d1_migrations stores
    path: Path
    number: int
    sha256: str  # of the text with CRLF normalised to LF
    statements: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[int, str]:
        """Order of application: leading number, then file name."""
        return (self.number, self.name)


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


# --------------------------------------------------------------------------- files


def discover(migrations_dir: Path) -> list[MigrationFile]:
    """Read every ``*.sql`` file directly in ``migrations_dir``, in application order.

    Args:
        migrations_dir: the migrations folder.

    Returns:
        The migrations, sorted by leading number then name.

    Raises:
        MigrationError: the folder is missing, a name has no leading number, or a file has
            more than one transaction.
    """
    if not migrations_dir.is_dir():
        raise MigrationError(f"{migrations_dir}: no such migrations directory")
    files: list[MigrationFile] = []
    unnumbered: list[str] = []
    for path in sorted(migrations_dir.iterdir()):
        if not path.is_file() or path.suffix != ".sql":
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            unnumbered.append(path.name)
            continue
        text = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
        files.append(
            MigrationFile(
                name=path.name,
                path=path,
                number=int(match.group(1)),
                sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                statements=tuple(split_sql(_trim_transaction(path, text))),
            )
        )
    if unnumbered:
        raise MigrationError(
            f"{migrations_dir}: migration file names must start with a number "
            f"(NNNN_name.sql): {', '.join(unnumbered)}"
        )
    return sorted(files, key=lambda item: item.sort_key)


def _trim_transaction(path: Path, text: str) -> str:
    """Strip one wrapping transaction the way wrangler's trimmer does, or refuse."""
    if "BEGIN TRANSACTION" not in text:
        return text
    trimmed = text.replace("BEGIN TRANSACTION;", "", 1).replace("COMMIT;", "", 1)
    if "BEGIN TRANSACTION" in trimmed:
        raise MigrationError(
            f"{path}: contains several transactions; D1 runs each migration in a transaction "
            "for you, so remove BEGIN TRANSACTION / COMMIT"
        )
    return trimmed


# --------------------------------------------------------------------------- partial detection

_NAME = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_$]*)'
_QNAME = rf"(?:{_NAME}\s*\.\s*)?({_NAME})"
_CREATE = re.compile(
    rf"^CREATE\s+(TEMP\s+|TEMPORARY\s+)?(?:UNIQUE\s+)?(?:VIRTUAL\s+)?"
    rf"(TABLE|INDEX|VIEW|TRIGGER)\s+(IF\s+NOT\s+EXISTS\s+)?{_QNAME}"
    rf"(?:.*?\bON\s+{_QNAME})?",
    re.IGNORECASE | re.DOTALL,
)
_DROP = re.compile(
    rf"^DROP\s+(TABLE|INDEX|VIEW|TRIGGER)\s+(?:IF\s+EXISTS\s+)?{_QNAME}", re.IGNORECASE
)
_RENAME_TABLE = re.compile(rf"^ALTER\s+TABLE\s+{_QNAME}\s+RENAME\s+TO\s+({_NAME})", re.IGNORECASE)
_RENAME_COLUMN = re.compile(
    rf"^ALTER\s+TABLE\s+{_QNAME}\s+RENAME\s+(?:COLUMN\s+)?({_NAME})\s+TO\s+({_NAME})",
    re.IGNORECASE,
)
_ADD_COLUMN = re.compile(
    rf"^ALTER\s+TABLE\s+{_QNAME}\s+ADD\s+(?:COLUMN\s+)?({_NAME})", re.IGNORECASE
)
_DROP_COLUMN = re.compile(
    rf"^ALTER\s+TABLE\s+{_QNAME}\s+DROP\s+(?:COLUMN\s+)?({_NAME})", re.IGNORECASE
)


def _unquote(name: str) -> str:
    if name[:1] in ('"', "`", "[") and len(name) >= 2:
        name = name[1:-1].replace('""', '"') if name[0] == '"' else name[1:-1]
    return name.lower()


@dataclass
class _Schema:
    """A mutable picture of the schema, replayed through pending migrations."""

    objects: dict[str, tuple[str, str]]  # name -> (type, table it belongs to)
    columns: dict[str, set[str] | None]  # table -> known columns (None: unknown, skip checks)

    def drop(self, name: str) -> None:
        kind, _ = self.objects.pop(name, ("", ""))
        if kind == "table":
            self.columns.pop(name, None)
            for other, (_, table) in list(self.objects.items()):
                if table == name and other != name:
                    del self.objects[other]


def _altered_tables(files: Iterable[MigrationFile]) -> set[str]:
    tables: set[str] = set()
    for migration in files:
        for statement in migration.statements:
            match = _ADD_COLUMN.match(strip_comments(statement).strip())
            if match:
                tables.add(_unquote(match.group(1)))
    return tables


def find_partial(
    pending: Sequence[MigrationFile],
    objects: dict[str, tuple[str, str]],
    columns: dict[str, set[str] | None],
) -> dict[str, list[str]]:
    """Find pending migrations whose schema objects already exist (pure; no I/O).

    Replays the pending files in order over the current schema: a ``CREATE`` without ``IF NOT
    EXISTS`` of a name that exists, or an ``ADD COLUMN`` of a column that exists, marks the file
    as partially applied. ``DROP`` and ``RENAME`` earlier in the replay are honoured, so a file
    that drops and recreates an object is not flagged.

    Args:
        pending: the pending migrations, in application order.
        objects: existing schema objects, lowercase name -> (type, lowercase table name).
        columns: existing columns of the tables the pending files alter (lowercase).

    Returns:
        File name -> the objects found already present (``table audit``, ``column sites.plan``),
        only for files with at least one.
    """
    schema = _Schema(
        dict(objects), {k: (set(v) if v is not None else None) for k, v in columns.items()}
    )
    found: dict[str, list[str]] = {}
    for migration in pending:
        present: list[str] = []
        for statement in migration.statements:
            text = strip_comments(statement).strip()
            present.extend(_replay(schema, text))
        if present:
            found[migration.name] = present
    return found


def _replay(schema: _Schema, text: str) -> list[str]:
    present: list[str] = []
    if match := _CREATE.match(text):
        temporary, kind, if_not_exists, name = match.group(1, 2, 3, 4)
        if temporary:
            return present
        kind = kind.lower()
        name = _unquote(name)
        table = _unquote(match.group(5)) if match.group(5) and kind != "table" else name
        if name in schema.objects and not if_not_exists:
            present.append(f"{schema.objects[name][0]} {name}")
        if name not in schema.objects:
            schema.objects[name] = (kind, table)
            if kind == "table":
                schema.columns[name] = None
    elif match := _DROP.match(text):
        schema.drop(_unquote(match.group(2)))
    elif match := _RENAME_TABLE.match(text):
        old, new = _unquote(match.group(1)), _unquote(match.group(2))
        kind, _ = schema.objects.pop(old, ("table", old))
        schema.objects[new] = (kind, new)
        schema.columns[new] = schema.columns.pop(old, None)
        for other, (other_kind, table) in list(schema.objects.items()):
            if table == old:
                schema.objects[other] = (other_kind, new)
    elif match := _RENAME_COLUMN.match(text):
        known = schema.columns.get(_unquote(match.group(1)))
        if known is not None:
            known.discard(_unquote(match.group(2)))
            known.add(_unquote(match.group(3)))
    elif match := _ADD_COLUMN.match(text):
        table, column = _unquote(match.group(1)), _unquote(match.group(2))
        known = schema.columns.get(table)
        if known is not None:
            if column in known:
                present.append(f"column {table}.{column}")
            known.add(column)
    elif match := _DROP_COLUMN.match(text):
        known = schema.columns.get(_unquote(match.group(1)))
        if known is not None:
            known.discard(_unquote(match.group(2)))
    return present


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
    objects, columns = await _read_schema(db, _altered_tables(pending))
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
