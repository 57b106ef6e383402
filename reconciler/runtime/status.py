"""Resource conditions kept in D1: what each site, hostname and tenant looks like right now.

Called by the daemon loop (``runtime/loop.py``), which derives the conditions of every resource
it reconciled and writes them with :meth:`StatusStore.set_many`, by ``reconciler apply``
(:func:`record_pass`, so ``status`` is right whichever path acted), and by ``reconciler status``
(``commands/status.py``), which reads them with :meth:`StatusStore.list`. It calls the
:class:`~reconciler.providers.d1.Database` it is given and the injected clock; the table is
``resource_status`` (migrations 0002 and 0004).

Rules:

1. One row per (resource, condition), overwritten in place. ``last_transition_at`` changes
   only when the status flips (True, False, Unknown); ``updated_at`` on every write.
2. Every row carries the tenant and site that own the resource, so filtering by tenant or site
   finds hostnames too. ``Site/<name>`` and ``Tenant/<name>`` keys fill their own column when
   the caller leaves it out; a value left out (None) keeps the row's previous one, and so does
   ``commit``.
3. Writes are batched (one D1 request per :data:`BATCH_ROWS` rows), and a write identical to
   the last one this store made for that row within ``refresh`` seconds is skipped: a fleet at
   rest costs no writes, while ``updated_at`` still says when a condition was last confirmed.
   What was last written is kept compactly, one integer a row (``runtime/status_memory.py``).
   Call :meth:`StatusStore.forget` after another writer may have written (a new lease).
4. Messages and errors pass through :func:`reconciler.runtime.logging.redact` before they are
   stored: a token that reached an error message never reaches the table.
5. A resource that left both the specs and the world is removed (:meth:`StatusStore.remove`),
   so ``reconciler status`` and the gauges stop showing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.core.conditions import conditions_for, gone_resources
from reconciler.core.conditions_common import (
    Condition,
    ConditionUpdate,
    Coverage,
    parse_condition,
    status_text,
)
from reconciler.core.desired import Desired
from reconciler.core.observed import Observed
from reconciler.core.outcome import Report
from reconciler.errors import MigrationError
from reconciler.providers.d1 import Database, SqlError, SqlValue, Statement
from reconciler.runtime.logging import redact
from reconciler.runtime.status_memory import WriteMemory

__all__ = [
    "BATCH_ROWS",
    "Condition",
    "ConditionUpdate",
    "ResourceStatus",
    "StatusStore",
    "parse_condition",
    "record_pass",
    "status_text",
]

BATCH_ROWS = 50
"""Rows written per D1 batch (each statement binds 11 parameters; D1 allows 100 each)."""
MAX_TEXT = 2_000
"""Longest message or error stored, in characters."""


_STATUS_VALUES: dict[SqlValue, bool] = {"True": True, "False": False}
"""The stored ``status`` text back to its value (anything else is Unknown, None)."""


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    """One stored condition."""

    resource: str
    condition: str
    status: bool | None
    reason: str
    message: str
    last_error: str | None
    observed_commit: str | None
    tenant: str | None
    site: str | None
    last_transition_at: float
    updated_at: float

    @property
    def status_text(self) -> str:
        """``True``, ``False`` or ``Unknown``."""
        return status_text(self.status)

    def to_json(self) -> dict[str, Any]:
        """A JSON object; times as ISO 8601 UTC."""
        return asdict(self) | {
            "status": self.status_text,
            "last_transition_at": _iso(self.last_transition_at),
            "updated_at": _iso(self.updated_at),
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _scope(resource: str, tenant: str | None, site: str | None) -> tuple[str | None, str | None]:
    kind, _, name = resource.partition("/")
    if kind == "Tenant" and tenant is None:
        tenant = name
    if kind == "Site" and site is None:
        site = name.split(":", 1)[0]  # Site/acme-home:production names the site too
    return tenant, site


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    clean = redact(text)
    return clean if len(clean) <= MAX_TEXT else clean[: MAX_TEXT - 1] + "…"


_UPSERT = """\
INSERT INTO resource_status (resource, condition_type, status, reason, message, last_error,
    observed_commit, last_transition_at, updated_at, tenant, site)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (resource, condition_type) DO UPDATE SET
    last_transition_at = CASE WHEN resource_status.status = excluded.status
        THEN resource_status.last_transition_at ELSE excluded.last_transition_at END,
    status = excluded.status,
    reason = excluded.reason,
    message = excluded.message,
    last_error = excluded.last_error,
    observed_commit = COALESCE(excluded.observed_commit, resource_status.observed_commit),
    updated_at = excluded.updated_at,
    tenant = COALESCE(excluded.tenant, resource_status.tenant),
    site = COALESCE(excluded.site, resource_status.site)"""

_SELECT = """\
SELECT resource, condition_type, status, reason, message, last_error, observed_commit,
    last_transition_at, updated_at, tenant, site
FROM resource_status"""

_Fingerprint = tuple[str, str, str, str, str | None, str | None, str | None]


def _missing_schema(exc: SqlError) -> MigrationError | None:
    message = exc.sql_message
    if "no such table" in message or "no such column" in message:
        return MigrationError(
            f"the database has no status table yet ({message}); run `reconciler migrate` first"
        )
    return None


class StatusStore:
    """Reads and writes ``resource_status`` (module rules 1-4)."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], float] = time.time,
        *,
        refresh: float = 3_600.0,
    ) -> None:
        """Use ``db``; ``clock`` gives epoch seconds for the timestamps.

        Args:
            db: the D1 database (SQLite file or REST).
            clock: epoch seconds.
            refresh: seconds after which an unchanged condition is written again anyway.
        """
        self._db = db
        self._clock = clock
        self._refresh = refresh
        self._written = WriteMemory()  # the last write of each row, compactly (rule 3)
        self.writes = 0  # rows written, for metrics and benchmarks
        self.skipped = 0  # rows not written because nothing changed

    def forget(self) -> None:
        """Drop the memory of past writes; the next write of every row goes to D1."""
        self._written.clear()

    async def set(
        self,
        resource: str,
        condition: str,
        status: bool | None,
        *,
        reason: str,
        message: str,
        last_error: str | BaseException | None = None,
        commit: str | None = None,
        tenant: str | None = None,
        site: str | None = None,
    ) -> bool:
        """Write one condition; True when a row was written (module rule 3).

        Raises:
            MigrationError: the status table or its scope columns do not exist yet.
        """
        error = None if last_error is None else str(last_error)
        update = ConditionUpdate(
            resource, condition, status, reason, message, error, commit, tenant, site
        )
        return await self.set_many([update]) == 1

    async def set_many(self, updates: Iterable[ConditionUpdate]) -> int:
        """Write many conditions in batches; return how many rows were written.

        When the same (resource, condition) appears more than once, the last one wins.

        Raises:
            MigrationError: the status table or its scope columns do not exist yet.
        """
        now = self._clock()
        pending: dict[tuple[str, str], tuple[_Fingerprint, Statement]] = {}
        for update in updates:
            condition = parse_condition(str(update.condition))
            tenant, site = _scope(update.resource, update.tenant, update.site)
            fingerprint: _Fingerprint = (
                status_text(update.status),
                update.reason,
                _clip(update.message) or "",
                _clip(update.last_error) or "",
                update.commit,
                tenant,
                site,
            )
            key = (update.resource, condition)
            if self._written.unchanged(*key, fingerprint, now, self._refresh):
                pending.pop(key, None)
                self.skipped += 1
                continue
            params: tuple[SqlValue, ...] = (
                update.resource,
                condition,
                fingerprint[0],
                update.reason,
                fingerprint[2],
                _clip(update.last_error),
                update.commit,
                now,
                now,
                tenant,
                site,
            )
            pending[key] = (fingerprint, Statement(_UPSERT, params))
        items = list(pending.items())
        for start in range(0, len(items), BATCH_ROWS):
            chunk = items[start : start + BATCH_ROWS]
            try:
                await self._db.batch([statement for _, (_, statement) in chunk])
            except SqlError as exc:
                missing = _missing_schema(exc)
                if missing is not None:
                    raise missing from exc
                raise
            for (resource, condition), (fingerprint, _) in chunk:
                self._written.note(resource, condition, fingerprint, now)
            self.writes += len(chunk)
        return len(items)

    async def list(
        self,
        *,
        tenant: str | None = None,
        site: str | None = None,
        condition: str | None = None,
        resource: str | None = None,
    ) -> list[ResourceStatus]:
        """Stored conditions, filtered, sorted by resource then condition.

        Raises:
            MigrationError: the status table or its scope columns do not exist yet.
        """
        clauses: list[str] = []
        params: list[SqlValue] = []
        for column, value in (
            ("tenant", tenant),
            ("site", site),
            ("condition_type", None if condition is None else parse_condition(condition)),
            ("resource", resource),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        sql = _SELECT
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY resource, condition_type"
        try:
            rows = await self._db.query(sql, params)
        except SqlError as exc:
            missing = _missing_schema(exc)
            if missing is not None:
                raise missing from exc
            raise
        return [_row(row) for row in rows]

    async def resources(self) -> frozenset[str]:
        """Every resource key the table holds (for a full pass's pruning, rule 5).

        Raises:
            MigrationError: the status table does not exist yet.
        """
        try:
            rows = await self._db.query("SELECT DISTINCT resource FROM resource_status", [])
        except SqlError as exc:
            missing = _missing_schema(exc)
            if missing is not None:
                raise missing from exc
            raise
        return frozenset(str(row["resource"]) for row in rows)

    async def remove(self, resources: Iterable[str]) -> int:
        """Delete every condition of ``resources`` (gone from the specs and the world, rule 5).

        Returns:
            How many resources were asked to be removed.
        """
        names = sorted(set(resources))
        for start in range(0, len(names), BATCH_ROWS):
            chunk = names[start : start + BATCH_ROWS]
            marks = ", ".join("?" for _ in chunk)
            await self._db.batch(
                [
                    Statement(
                        f"DELETE FROM resource_status WHERE resource IN ({marks})", tuple(chunk)
                    )
                ]
            )
        self._written.drop(names)
        return len(names)

    async def get(self, resource: str, condition: str) -> ResourceStatus | None:
        """One stored condition, or None."""
        found = await self.list(resource=resource, condition=condition)
        return found[0] if found else None


def _text(value: SqlValue) -> str | None:
    return None if value is None else str(value)


def _row(row: dict[str, SqlValue]) -> ResourceStatus:
    return ResourceStatus(
        resource=str(row["resource"]),
        condition=str(row["condition_type"]),
        status=_STATUS_VALUES.get(row["status"]),
        reason=str(row["reason"] or ""),
        message=str(row["message"] or ""),
        last_error=_text(row["last_error"]),
        observed_commit=_text(row["observed_commit"]),
        last_transition_at=float(row["last_transition_at"] or 0.0),
        updated_at=float(row["updated_at"] or 0.0),
        tenant=_text(row["tenant"]),
        site=_text(row["site"]),
    )


async def record_pass(
    store: StatusStore,
    *,
    desired: Desired,
    observed: Observed,
    report: Report,
    now: float,
) -> tuple[int, int]:
    """Record the conditions of a pass made outside the daemon (``reconciler apply``).

    Every site and tenant the plan covered gets its conditions, from the same pure core the
    daemon uses (``core/conditions.py``), except ``Stuck``, which only the daemon's work queue
    knows (``Coverage.queue`` False). On a whole-fleet pass, resources that left the specs and
    the world are removed (module rule 5).

    Returns:
        (rows written, resources removed).

    Raises:
        MigrationError: the status table does not exist yet.
    """
    scope = observed.scope
    sites = frozenset(desired.sites) if scope is None else frozenset(scope) & set(desired.sites)
    tenants = frozenset(desired.sites[name].tenant for name in sites) | (
        frozenset(desired.tenants) if scope is None else frozenset()
    )
    coverage = Coverage(sites=sites, tenants=tenants, queue=False)
    updates = conditions_for(
        desired=desired, observed=observed, report=report, coverage=coverage, now=now
    )
    written = await store.set_many(updates)
    stored = await store.resources() if scope is None else None
    gone = gone_resources(desired=desired, report=report, removed_sites=(), stored=stored)
    if gone:
        await store.remove(gone)
    return written, len(gone)
