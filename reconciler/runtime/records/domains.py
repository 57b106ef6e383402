"""Hostname records: the ``domains`` table, written by the hostname and routing handlers.

``domains.status`` speaks the core's vocabulary (:func:`reconciler.core.observed.domain_status`
and :data:`~reconciler.core.observed.DOMAIN_STATUSES`); nothing here restates it. The observer
reads the rows back (:func:`read_domains`) and joins them onto the Cloudflare listing, with the
creates the journal holds unfinished as evidence of ownership.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from reconciler.core.observed import DOMAIN_DELETED, DOMAIN_STATUSES
from reconciler.providers.d1 import Database, Row, SqlValue, Statement, param_chunks, placeholders
from reconciler.runtime.journal import CREATING_QUERY, creating_hostnames
from reconciler.runtime.records.sql import (
    TableGroup,
    ensure_site,
    epoch,
    iso,
    read_rows,
    to_json,
    to_text,
)

__all__ = [
    "DomainRecords",
    "DomainRow",
    "HostnameFacts",
    "domain_rows",
    "read_creating",
    "read_domains",
]

_SSL_METHODS = ("http", "txt", "email")  # the domains.ssl_method CHECK; anything else is http
_DOMAIN_QUERY = (
    "SELECT domain, site_id, tenant_id, status, ssl_status, status_since, updated_at, "
    "recreate_count, custom_origin_server, custom_hostname_id, dcv_txt_value FROM domains"
)
# The columns both upserts write first, in _fact_values order.
_FACT_COLUMNS = (
    "id, site_id, tenant_id, domain, status, ssl_status, ssl_method, custom_hostname_id, "
    "custom_origin_server, verification_token, verification_errors"
)


@dataclass(frozen=True, slots=True)
class HostnameFacts:
    """What Cloudflare said about a custom hostname, reduced to the ``domains`` columns."""

    id: str
    status: str  # a core.observed.domain_status result
    ssl_status: str | None
    ssl_method: str
    origin: str | None
    verification_token: str | None
    verification_errors: tuple[str, ...]
    dcv_txt_name: str | None = None  # the certificate's DCV TXT record, when Cloudflare shows it
    dcv_txt_value: str | None = None


@dataclass(frozen=True, slots=True)
class DomainRow:
    """What D1 ``domains`` says about one hostname (joined onto the Cloudflare listing)."""

    hostname: str
    site: str
    status_since: float | None
    recreate_count: int
    origin: str | None  # custom_origin_server as last recorded
    status: str | None = None  # domains.status: one of core.observed.DOMAIN_STATUSES
    ssl_status: str | None = None  # Cloudflare's ssl.status as last recorded
    custom_hostname_id: str | None = None  # the Cloudflare id as last recorded
    tenant: str | None = None  # domains.tenant_id
    dcv_txt_value: str | None = None  # domains.dcv_txt_value (migration 0007)


def _fact_values(
    hostname: str, site: str, tenant: str, facts: HostnameFacts
) -> tuple[SqlValue, ...]:
    """The values of :data:`_FACT_COLUMNS` (``domains.id`` is the hostname)."""
    return (
        hostname,
        site,
        tenant,
        hostname,
        facts.status,
        facts.ssl_status,
        facts.ssl_method if facts.ssl_method in _SSL_METHODS else "http",
        facts.id,
        facts.origin,
        facts.verification_token,
        to_json(list(facts.verification_errors)),
    )


class DomainRecords(TableGroup):
    """The handlers' ``domains`` rows."""

    async def record_hostname(
        self,
        *,
        hostname: str,
        site: str,
        tenant: str,
        project: str | None,
        facts: HostnameFacts,
        now: float,
        restart_clock: bool,
        recreate_count: int | None = None,
        retried: bool = False,
    ) -> None:
        """Upsert the ``domains`` row from what Cloudflare answered.

        Args:
            hostname: the canonical hostname (``domains.domain``).
            site: the owning site (a ``sites`` row is created if missing).
            tenant: the owning tenant.
            project: the site's Pages project, for a ``sites`` row created here.
            facts: the hostname as Cloudflare returned it.
            now: the injected clock.
            restart_clock: set ``status_since`` to now (a create, retry or recreate), else
                keep the recorded one.
            recreate_count: the new ``recreate_count``; None keeps it.
            retried: add one to ``retry_count``.
        """
        statements = ensure_site(site, tenant, project, now, update=False)
        statements.append(
            Statement(
                f"INSERT INTO domains ({_FACT_COLUMNS}, recreate_count, retry_count, "
                "status_since, last_checked_at, created_at, updated_at, dcv_txt_name, "
                "dcv_txt_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(domain) DO UPDATE SET site_id = excluded.site_id, "
                "tenant_id = excluded.tenant_id, status = excluded.status, "
                "ssl_status = excluded.ssl_status, ssl_method = excluded.ssl_method, "
                "custom_hostname_id = excluded.custom_hostname_id, "
                "custom_origin_server = excluded.custom_origin_server, "
                "verification_token = excluded.verification_token, "
                "verification_errors = excluded.verification_errors, "
                "recreate_count = COALESCE(?, domains.recreate_count), "
                "retry_count = domains.retry_count + ?, "
                "status_since = CASE WHEN ? OR domains.status_since IS NULL "
                f"OR domains.status = '{DOMAIN_DELETED}' THEN excluded.status_since "
                "ELSE domains.status_since END, "
                "dcv_txt_name = excluded.dcv_txt_name, dcv_txt_value = excluded.dcv_txt_value, "
                "last_checked_at = excluded.last_checked_at, updated_at = excluded.updated_at",
                (
                    *_fact_values(hostname, site, tenant, facts),
                    recreate_count or 0,
                    1 if retried else 0,
                    *(iso(now),) * 4,
                    facts.dcv_txt_name,
                    facts.dcv_txt_value,
                    recreate_count,
                    1 if retried else 0,
                    1 if restart_clock else 0,
                ),
            )
        )
        await self.db.batch(statements)

    async def mirror_hostname(
        self,
        *,
        hostname: str,
        site: str,
        tenant: str,
        project: str | None,
        facts: HostnameFacts,
        now: float,
    ) -> None:
        """Make the ``domains`` row of ``hostname`` say what Cloudflare shows (D1 only).

        Creates the row when it is missing (with a ``sites`` row if needed), else updates it:
        site, tenant, status, certificate status, ssl method, id, origin and errors.
        ``status_since`` moves to now only when the status changes (a certificate stage alone
        keeps the clock the planner's timeouts count from); ``verification_token`` is kept when
        the facts carry none; ``retry_count`` is left alone. ``recreate_count`` grows by one
        when the zone shows another id than the one recorded: a recreation whose record was
        lost to a crash (its create went through, its D1 write did not), counted like any other.
        """
        statements = ensure_site(site, tenant, project, now, update=False)
        statements.append(
            Statement(
                f"INSERT INTO domains ({_FACT_COLUMNS}, status_since, last_checked_at, "
                "created_at, updated_at, dcv_txt_name, dcv_txt_value) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(domain) DO UPDATE SET site_id = excluded.site_id, "
                "tenant_id = excluded.tenant_id, "
                "status_since = CASE WHEN domains.status IS NOT excluded.status "
                "OR domains.status_since IS NULL THEN excluded.status_since "
                "ELSE domains.status_since END, "
                "status = excluded.status, ssl_status = excluded.ssl_status, "
                "ssl_method = excluded.ssl_method, "
                "recreate_count = CASE WHEN domains.custom_hostname_id IS NOT NULL "
                "AND domains.custom_hostname_id IS NOT excluded.custom_hostname_id "
                f"AND domains.status IS NOT '{DOMAIN_DELETED}' "
                "THEN domains.recreate_count + 1 ELSE domains.recreate_count END, "
                "custom_hostname_id = excluded.custom_hostname_id, "
                "custom_origin_server = excluded.custom_origin_server, "
                "verification_token = COALESCE(excluded.verification_token, "
                "domains.verification_token), "
                "verification_errors = excluded.verification_errors, "
                "dcv_txt_name = COALESCE(excluded.dcv_txt_name, domains.dcv_txt_name), "
                "dcv_txt_value = COALESCE(excluded.dcv_txt_value, domains.dcv_txt_value), "
                "last_checked_at = excluded.last_checked_at, updated_at = excluded.updated_at",
                (
                    *_fact_values(hostname, site, tenant, facts),
                    *(iso(now),) * 4,
                    facts.dcv_txt_name,
                    facts.dcv_txt_value,
                ),
            )
        )
        await self.db.batch(statements)

    async def hostname_deleted(self, hostname: str, *, now: float) -> bool:
        """The hostname is gone from the zone: status :data:`DOMAIN_DELETED`, its id cleared.

        Returns:
            Whether a row changed (False: no row, or it was already marked deleted).
        """
        result = await self.db.execute(
            f"UPDATE domains SET status = '{DOMAIN_DELETED}', ssl_status = NULL, "
            "custom_hostname_id = NULL, status_since = ?, last_checked_at = ?, updated_at = ? "
            f"WHERE domain = ? AND status != '{DOMAIN_DELETED}'",
            (iso(now), iso(now), iso(now), hostname),
        )
        return result.changes > 0

    async def domain_statuses(self, statuses: Mapping[str, str], *, now: float) -> None:
        """Set ``domains.status`` of many hostnames in one batch (a routing-table change).

        Each status is a :func:`~reconciler.core.observed.domain_status` result the plan
        carries. One ``UPDATE ... WHERE domain IN (...)`` per status and chunk of names, so a
        lock of a tenant with 1,000 hostnames is one D1 request. Rows already deleted are left
        alone; ``status_since`` restarts only where the status changes.

        Raises:
            ValueError: a status outside the core's ``domains`` vocabulary.
        """
        unknown = sorted(set(statuses.values()) - DOMAIN_STATUSES)
        if unknown:
            raise ValueError(f"not a domains.status: {', '.join(unknown)}")
        by_status: dict[str, list[str]] = {}
        for hostname, status in sorted(statuses.items()):
            by_status.setdefault(status, []).append(hostname)
        statements = [
            Statement(
                "UPDATE domains SET status_since = CASE WHEN status = ? THEN status_since "
                "ELSE ? END, status = ?, updated_at = ? "
                f"WHERE status != '{DOMAIN_DELETED}' "
                f"AND domain IN ({placeholders(len(chunk))})",
                (status, iso(now), status, iso(now), *chunk),
            )
            for status, names in sorted(by_status.items())
            for chunk in param_chunks(names, reserved=4)
        ]
        if statements:
            await self.db.batch(statements)


# ------------------------------------------------------------------ the observer's read


async def read_domains(
    db: Database, sites: Collection[str] | None, hostnames: Collection[str] | None
) -> list[Row]:
    """The ``domains`` rows of ``sites`` (None: all), plus those of ``hostnames`` not among
    them in a scoped read (domains that moved between sites or belong to removed sites)."""
    rows = await read_rows(db, _DOMAIN_QUERY, "site_id", sites)
    if sites is not None and hostnames:
        seen = {str(row["domain"]) for row in rows}
        extra = [h for h in hostnames if h not in seen]
        if extra:
            rows += await read_rows(db, _DOMAIN_QUERY, "domain", extra)
    return rows


def domain_rows(rows: list[Row]) -> dict[str, DomainRow]:
    """The rows of :func:`read_domains`, by hostname."""
    return {
        str(row["domain"]): DomainRow(
            hostname=str(row["domain"]),
            site=str(row["site_id"]),
            status_since=epoch(row["status_since"]),
            recreate_count=int(row["recreate_count"] or 0),
            origin=to_text(row["custom_origin_server"]),
            status=to_text(row["status"]),
            ssl_status=to_text(row["ssl_status"]),
            custom_hostname_id=to_text(row["custom_hostname_id"]),
            tenant=to_text(row["tenant_id"]),
            dcv_txt_value=to_text(row["dcv_txt_value"]),
        )
        for row in rows
    }


async def read_creating(
    db: Database, hostnames: Collection[str] | None, domains: list[Row]
) -> dict[str, tuple[str, str]]:
    """Hostnames the journal shows us creating, unfinished (``RecordsSnapshot.creating``).

    ``hostnames`` None reads the whole journal; else the named hostnames and those of
    ``domains`` (the rows :func:`read_domains` returned for the same scope).
    """
    names = set(hostnames) if hostnames is not None else None
    if names is not None:
        names |= {str(row["domain"]) for row in domains}
    targets = {f"Hostname/{n}" for n in names} if names else names
    return creating_hostnames(await read_rows(db, CREATING_QUERY, "target", targets))
