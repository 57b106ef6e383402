"""The restore-point ledger: which bookmark was taken before which migration, kept in the database.

Used by ``runtime/migrate.py`` (records a point before each migration) and ``runtime/restore.py``
(reads them to plan a restore). The table is the reconciler's own bookkeeping, created by
``migrate`` with its other bookkeeping table before any migration runs: it cannot be a numbered
migration, because the first migrations of a fresh database need it already.

A row is written in the migration's own batch, *after* the bookmark was taken, so a restore to
that bookmark also removes the row (and the rows of every later migration): the ledger always
describes the database it lives in. A migration that fails leaves no row (its batch is rolled
back, the database is exactly as before); its message prints the bookmark instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.providers.d1 import Database, Statement

__all__ = [
    "RESTORE_POINTS_DDL",
    "RESTORE_POINTS_TABLE",
    "RestorePoint",
    "read_restore_points",
    "restore_point_statement",
]

RESTORE_POINTS_TABLE = "reconciler_restore_points"
RESTORE_POINTS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {RESTORE_POINTS_TABLE} (\n"
    "    id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    name TEXT NOT NULL,\n"
    "    bookmark TEXT NOT NULL,\n"
    "    kind TEXT NOT NULL,\n"
    "    taken_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n"
    ")"
)


@dataclass(frozen=True, slots=True)
class RestorePoint:
    """The database's state just before migration ``name`` was applied."""

    name: str  # migration file name, as in d1_migrations
    bookmark: str
    kind: str  # "D1 Time Travel bookmark" | "file snapshot"
    taken_at: str  # UTC "YYYY-MM-DD HH:MM:SS", the clock d1_migrations.applied_at uses


def restore_point_statement(name: str, bookmark: str, kind: str) -> Statement:
    """The row keeping ``bookmark`` as the point before migration ``name`` (for its batch)."""
    return Statement(
        f"INSERT INTO {RESTORE_POINTS_TABLE} (name, bookmark, kind) VALUES (?, ?, ?)",
        (name, bookmark, kind),
    )


async def read_restore_points(db: Database) -> dict[str, RestorePoint]:
    """Migration name -> its latest restore point (a retried migration keeps the last one)."""
    present = await db.query(
        "SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?",
        (RESTORE_POINTS_TABLE,),
    )
    if not present:
        return {}
    rows = await db.query(
        f"SELECT name, bookmark, kind, taken_at FROM {RESTORE_POINTS_TABLE} ORDER BY id"
    )
    points: dict[str, RestorePoint] = {}
    for row in rows:
        point = RestorePoint(
            name=str(row["name"]),
            bookmark=str(row["bookmark"]),
            kind=str(row["kind"]),
            taken_at=str(row["taken_at"]),
        )
        points[point.name] = point
    return points
