"""The D1 ledger as the observer reads it: publishes, content versions, domains, tenants, dunning.

Called by ``runtime/observe.py`` (one :class:`LedgerReader` per observation) and later by the
executor, which adds its writes beside these reads. It calls only the
:class:`~reconciler.providers.d1.Database` protocol, so the same SQL runs on the local SQLite
file and on D1 over the REST API.

Rules:

1. A handful of queries per observation, never one per site: each table is read in one
   statement for the whole fleet, or in ``IN (...)`` chunks of at most 100 values when the
   observation is scoped (PR mode).
2. App tables store ISO-8601 UTC text; the ledger's own tables store epoch seconds. Everything
   leaves here as epoch seconds (``float``), the core's unit.
3. A database that lacks the tables or columns this module reads has not been migrated: that
   is a :class:`~reconciler.errors.MigrationError` telling the operator to run
   ``reconciler migrate``, not a provider outage.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.core.identity import inputs_from_json
from reconciler.core.observed import DunningRecord, PublishRecord, SiteLedger, TenantRecord
from reconciler.errors import MigrationError
from reconciler.providers.d1 import Database, SqlError, SqlValue, param_chunks, placeholders

__all__ = ["DomainRow", "LedgerReader", "LedgerSnapshot", "epoch"]

_NOT_MIGRATED = ("no such table", "no such column")
_CREATING_QUERY = (
    "SELECT target, payload FROM intents WHERE kind IN ('create_hostname', 'recreate_hostname') "
    "AND (state = 'pending' OR (state = 'failed' "
    "AND json_extract(outcome, '$.status') = 'failed_transient'))"
)
_DOMAIN_QUERY = (
    "SELECT domain, site_id, tenant_id, status, ssl_status, status_since, updated_at, "
    "recreate_count, custom_origin_server, custom_hostname_id, dcv_txt_value FROM domains"
)


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


@dataclass(frozen=True, slots=True)
class DomainRow:
    """What D1 ``domains`` says about one hostname (joined onto the Cloudflare listing)."""

    hostname: str
    site: str
    status_since: float | None
    recreate_count: int
    origin: str | None  # custom_origin_server as last recorded
    status: str | None = None  # domains.status: pending_validation | ... | deleted
    ssl_status: str | None = None  # Cloudflare's ssl.status as last recorded
    custom_hostname_id: str | None = None  # the Cloudflare id as last recorded
    tenant: str | None = None  # domains.tenant_id
    dcv_txt_value: str | None = None  # domains.dcv_txt_value (migration 0007)


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """Every ledger fact one observation needs, read in a few queries."""

    sites: dict[str, SiteLedger]
    domains: dict[str, DomainRow]
    tenants: dict[str, TenantRecord]
    dunning: dict[tuple[str, str], DunningRecord]
    mirror: dict[str, str]  # Stripe customer -> billing digest stored at the last sync
    # hostname -> (site, tenant) of our creates the journal holds unfinished: pending (the
    # process died mid-create) or failed with an unknown outcome. Evidence of ownership for a
    # hostname whose domains row does not record its id yet (core/observed.py rule 3).
    creating: dict[str, tuple[str, str]] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)  # site -> Pages project (full reads)


class LedgerReader:
    """Read-only queries over the app tables and the billing mirror."""

    def __init__(self, db: Database) -> None:
        """Read through ``db`` (SQLite file or D1 over HTTP)."""
        self._db = db

    async def _rows(
        self, sql: str, column: str | None, values: Collection[str] | None
    ) -> list[dict[str, SqlValue]]:
        """Run ``sql`` for the whole table, or once per chunk of ``values`` on ``column``."""
        try:
            if values is None or column is None:
                return await self._db.query(sql)
            rows: list[dict[str, SqlValue]] = []
            for chunk in param_chunks(sorted(values)):
                joiner = "AND" if " WHERE " in sql else "WHERE"
                where = f" {joiner} {column} IN ({placeholders(len(chunk))})"
                rows.extend(await self._db.query(sql + where, list(chunk)))
            return rows
        except SqlError as exc:
            if any(marker in exc.sql_message for marker in _NOT_MIGRATED):
                raise MigrationError(
                    f"the D1 database is not migrated ({exc.sql_message}): run "
                    "`reconciler migrate` first"
                ) from exc
            raise

    async def snapshot(
        self,
        *,
        sites: Collection[str] | None = None,
        tenants: Collection[str] | None = None,
        customers: Collection[str] | None = None,
        hostnames: Collection[str] | None = None,
    ) -> LedgerSnapshot:
        """Read the ledger, for the whole fleet (every argument None) or for a scope.

        Args:
            sites: site names to read publishes, versions and domains of (None: all).
            tenants: tenant names to read access and dunning logs of (None: all).
            customers: Stripe customer ids to read the billing mirror of (None: all).
            hostnames: extra hostnames whose ``domains`` rows to read in a scoped read (for
                domains that moved between sites or belong to removed sites).

        Raises:
            MigrationError: the database lacks the tables or columns of the migrations.
            ProviderError: D1 could not be read.
        """
        publishes = await self._rows(
            "SELECT site_id, version_number, environment, status, deployment_id, attempts, "
            "error_message, created_at, id, build_identity, build_inputs FROM publish_versions",
            "site_id",
            sites,
        )
        # The content digest is the editor's content_hash column; content_json is read only
        # where that column is NULL (then hashed here), so a pass never reads every snapshot.
        versions = await self._rows(
            "SELECT site_id, version_number, content_hash, CASE WHEN content_hash IS NULL "
            "THEN content_json END AS content_json FROM site_versions",
            "site_id",
            sites,
        )
        domain_rows = await self._rows(
            _DOMAIN_QUERY,
            "site_id",
            sites,
        )
        if sites is not None and hostnames:
            seen = {str(row["domain"]) for row in domain_rows}
            extra = [h for h in hostnames if h not in seen]
            if extra:
                domain_rows += await self._rows(
                    _DOMAIN_QUERY,
                    "domain",
                    extra,
                )
        tenant_rows = await self._rows(
            "SELECT id, status, status_changed_at FROM tenants", "id", tenants
        )
        dunning_rows = await self._rows(
            "SELECT invoice_id, step_code, status, error_message, phone, attempts "
            "FROM dunning_step_logs",
            "tenant_id",
            tenants,
        )
        creating = await self._creating(hostnames if sites is not None else None, domain_rows)
        mirror_rows = await self._rows(
            "SELECT provider_customer_id, mirror_digest FROM billing_accounts "
            "WHERE provider = 'stripe' AND provider_customer_id IS NOT NULL",
            "provider_customer_id",
            customers,
        )
        # Our record of every site's Pages project, read on whole-fleet reads only: it names
        # the projects no Site of the specs claims any more (shown as unmanaged).
        project_rows = (
            await self._rows("SELECT id, pages_project FROM sites", None, None)
            if sites is None
            else []
        )
        return LedgerSnapshot(
            sites=_site_ledgers(publishes, versions),
            domains={
                str(row["domain"]): DomainRow(
                    hostname=str(row["domain"]),
                    site=str(row["site_id"]),
                    status_since=epoch(row["status_since"]),
                    recreate_count=int(row["recreate_count"] or 0),
                    origin=_text(row["custom_origin_server"]),
                    status=_text(row["status"]),
                    ssl_status=_text(row["ssl_status"]),
                    custom_hostname_id=_text(row["custom_hostname_id"]),
                    tenant=_text(row["tenant_id"]),
                    dcv_txt_value=_text(row["dcv_txt_value"]),
                )
                for row in domain_rows
            },
            tenants={
                str(row["id"]): TenantRecord(
                    name=str(row["id"]),
                    access=str(row["status"]),
                    changed_at=epoch(row["status_changed_at"]),
                )
                for row in tenant_rows
            },
            dunning={
                (str(row["invoice_id"]), str(row["step_code"])): DunningRecord(
                    invoice_id=str(row["invoice_id"]),
                    step_code=str(row["step_code"]),
                    status=str(row["status"]),
                    error_message=_text(row["error_message"]),
                    phone=_text(row["phone"]),
                    attempts=int(row["attempts"] or 0),
                )
                for row in dunning_rows
            },
            mirror={
                str(row["provider_customer_id"]): str(row["mirror_digest"])
                for row in mirror_rows
                if row["mirror_digest"] is not None
            },
            creating=creating,
            projects={str(row["id"]): str(row["pages_project"]) for row in project_rows},
        )

    async def _creating(
        self, hostnames: Collection[str] | None, domain_rows: list[dict[str, SqlValue]]
    ) -> dict[str, tuple[str, str]]:
        """Hostnames the journal shows us creating, unfinished (see ``LedgerSnapshot``)."""
        names = set(hostnames) if hostnames is not None else None
        if names is not None:
            names |= {str(row["domain"]) for row in domain_rows}
        rows = await self._rows(
            _CREATING_QUERY, "target", {f"Hostname/{n}" for n in names} if names else names
        )
        found: dict[str, tuple[str, str]] = {}
        for row in rows:
            try:
                payload = json.loads(str(row["payload"]))
            except ValueError:
                continue
            if not isinstance(payload, dict):
                continue
            name, site, tenant = payload.get("hostname"), payload.get("site"), payload.get("tenant")
            if isinstance(name, str) and isinstance(site, str) and isinstance(tenant, str):
                found[name] = (site, tenant)
        return found

    async def content(self, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """``site_versions.content_json`` for each (site, version) pair that has one.

        One query per chunk of sites; only the pairs asked for are kept.
        """
        wanted = set(pairs)
        if not wanted:
            return {}
        rows = await self._rows(
            "SELECT site_id, version_number, content_json FROM site_versions",
            "site_id",
            {site for site, _ in wanted},
        )
        found: dict[tuple[str, int], str] = {}
        for row in rows:
            key = (str(row["site_id"]), int(row["version_number"] or 0))
            if key in wanted and isinstance(row["content_json"], str):
                found[key] = row["content_json"]
        return found


def content_digest(column: str | None, content_json: str | None) -> str | None:
    """A version's content digest: its ``content_hash`` column, else the SHA-256 of its JSON."""
    if column:
        return column.lower()
    if content_json is not None:
        return hashlib.sha256(content_json.encode("utf-8")).hexdigest()
    return None


def _text(value: SqlValue) -> str | None:
    return value if isinstance(value, str) and value else None


def _site_ledgers(
    publishes: list[dict[str, SqlValue]], versions: list[dict[str, SqlValue]]
) -> dict[str, SiteLedger]:
    live: dict[str, dict[str, PublishRecord]] = defaultdict(dict)
    latest: dict[str, dict[str, tuple[tuple[float, int], PublishRecord]]] = defaultdict(dict)
    for row in publishes:
        record = PublishRecord(
            site=str(row["site_id"]),
            environment=str(row["environment"]),
            version=int(row["version_number"] or 0),
            status=str(row["status"]),
            deployment_id=_text(row["deployment_id"]),
            attempts=int(row["attempts"] or 0),
            error_message=_text(row["error_message"]),
            created_at=epoch(row["created_at"]) or 0.0,
            build_identity=_text(row["build_identity"]),
            build_inputs=inputs_from_json(_text(row["build_inputs"])),
        )
        if record.status == "live":
            live[record.site][record.environment] = record
        order = (record.created_at, int(row["id"] or 0))
        newest = latest[record.site].get(record.environment)
        if newest is None or order > newest[0]:
            latest[record.site][record.environment] = (order, record)
    known: dict[str, set[int]] = defaultdict(set)
    digests: dict[str, dict[int, str]] = defaultdict(dict)
    for row in versions:
        number = int(row["version_number"] or 0)
        known[str(row["site_id"])].add(number)
        digest = content_digest(_text(row["content_hash"]), _text(row["content_json"]))
        if digest is not None:
            digests[str(row["site_id"])][number] = digest
    names = set(live) | set(latest) | set(known)
    return {
        name: SiteLedger(
            site=name,
            live=dict(sorted(live.get(name, {}).items())),
            latest={env: rec for env, (_, rec) in sorted(latest.get(name, {}).items())},
            versions=frozenset(known.get(name, set())),
            content_digests=dict(sorted(digests.get(name, {}).items())),
        )
        for name in sorted(names)
    }
