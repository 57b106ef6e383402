"""The SQL values every table group of :mod:`reconciler.runtime.records` shares.

Times, column readers, the parent rows a foreign key needs, and the one chunked, migration-aware
read the observer's whole-fleet queries go through (package rule 4).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from reconciler.core.policy import UNSETTLED_STATUSES
from reconciler.errors import MigrationError
from reconciler.providers.d1 import (
    Database,
    Row,
    SqlError,
    SqlValue,
    Statement,
    param_chunks,
    placeholders,
)

__all__ = [
    "UNSETTLED",
    "TableGroup",
    "ensure_site",
    "ensure_tenant",
    "epoch",
    "iso",
    "opt_iso",
    "read_rows",
    "to_int",
    "to_json",
    "to_str",
    "to_text",
]

# ``('open', 'uncollectible')``: the mirror's "still unsettled" (past_due) test, from the core.
UNSETTLED = "(" + ", ".join(f"'{status}'" for status in sorted(UNSETTLED_STATUSES)) + ")"

_NOT_MIGRATED = ("no such table", "no such column")


def iso(epoch: float) -> str:
    """Epoch seconds as the app tables' ISO-8601 UTC text (``2026-01-09T10:00:00Z``)."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def opt_iso(epoch: float | None) -> str | None:
    """:func:`iso`, or None for None."""
    return None if epoch is None else iso(epoch)


def epoch(value: SqlValue) -> float | None:
    """An ISO-8601 text (``2026-01-09T10:00:00Z``) or a number as epoch seconds; else None."""
    if value is None or isinstance(value, bytes):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # SQLite's CURRENT_TIMESTAMP: UTC without an offset
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def to_int(value: SqlValue, default: int = 0) -> int:
    """A column as an int (numbers and digit strings), else ``default``."""
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return default


def to_str(value: SqlValue) -> str | None:
    """A text column, or None when it is not text."""
    return value if isinstance(value, str) else None


def to_text(value: SqlValue) -> str | None:
    """A non-empty text column, or None (empty text reads as absent)."""
    return value if isinstance(value, str) and value else None


def to_json(value: Any) -> str:
    """The compact, key-sorted JSON the app tables store."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class TableGroup:
    """A table group's methods, bound to one database (the :class:`Records` facade's bases)."""

    def __init__(self, db: Database) -> None:
        """Read and write through ``db`` (SQLite file or D1 over HTTP)."""
        self.db = db


def ensure_tenant(tenant: str, now: float) -> Statement:
    """The ``tenants`` row a child row needs, created if missing, never overwritten."""
    return Statement(
        "INSERT INTO tenants (id, name, created_at, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(id) DO NOTHING",
        (tenant, tenant, iso(now), iso(now)),
    )


def ensure_site(
    site: str, tenant: str, project: str | None, now: float, *, update: bool
) -> list[Statement]:
    """The tenant row, then the site row (created; updated too when ``update``)."""
    if update and project is not None:
        upsert = Statement(
            "INSERT INTO sites (id, tenant_id, name, pages_project, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "tenant_id = excluded.tenant_id, pages_project = excluded.pages_project, "
            "updated_at = excluded.updated_at",
            (site, tenant, site, project, iso(now), iso(now)),
        )
    else:
        upsert = Statement(
            "INSERT INTO sites (id, tenant_id, name, pages_project, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (site, tenant, site, project or site, iso(now), iso(now)),
        )
    return [ensure_tenant(tenant, now), upsert]


async def read_rows(
    db: Database, sql: str, column: str | None = None, values: Collection[str] | None = None
) -> list[Row]:
    """Run ``sql`` for the whole table, or once per chunk of ``values`` on ``column``.

    Raises:
        MigrationError: the database lacks a table or column the query reads.
    """
    try:
        if values is None or column is None:
            return await db.query(sql)
        rows: list[Row] = []
        for chunk in param_chunks(sorted(values)):
            joiner = "AND" if " WHERE " in sql else "WHERE"
            where = f" {joiner} {column} IN ({placeholders(len(chunk))})"
            rows.extend(await db.query(sql + where, list(chunk)))
        return rows
    except SqlError as exc:
        if any(marker in exc.sql_message for marker in _NOT_MIGRATED):
            raise MigrationError(
                f"the D1 database is not migrated ({exc.sql_message}): run "
                "`reconciler migrate` first"
            ) from exc
        raise
