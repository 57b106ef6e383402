"""records: every D1 write the action handlers make, and the few reads they need first.

Called by the handlers of ``runtime/actions/`` (publish, hostnames, billing) and nothing else;
calls only :class:`~reconciler.providers.d1.Database` (SQLite locally, D1 in production). The
tables are the app's own (``migrations/0001_app_schema.sql``, named as ``RUNBOOKS.md`` queries
them), the billing mirror's fingerprint (``0003_billing_mirror.sql``) and the ledger's
append-only ``events`` (``0002``). ``runtime/observe.py`` reads the same rows back, so what is
written here is what the next plan compares with.

Rules:

1. App-table times are ISO-8601 UTC text from the injected clock (:func:`iso`); ledger times
   (``events.at``, ``billing_accounts.mirror_synced_at``) are epoch seconds.
2. Writes that belong together are one :meth:`Database.batch` (all or nothing): a publish going
   live supersedes the previous live row in the same batch (the partial unique index allows one
   live row per site and environment); a billing sync copies every row and the digest at once.
3. Writes are idempotent upserts keyed by natural keys (``domains.domain``,
   ``dunning_step_logs (invoice_id, step_code)``, Stripe ids), so a resumed action that
   repeats one leaves the same rows.
4. Parent rows a foreign key needs (a ``tenants`` row for a site, a ``sites`` row for a domain,
   an ``invoices`` row for a dunning log) are created if missing, never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.core.facts import CustomerBilling, Invoice
from reconciler.core.policy import UNSETTLED_STATUSES
from reconciler.providers.d1 import Database, SqlValue, Statement, param_chunks, placeholders

__all__ = [
    "BuildSizes",
    "DomainRow",
    "DunningRow",
    "HostnameFacts",
    "PublishRow",
    "Records",
    "iso",
]


def iso(epoch: float) -> str:
    """Epoch seconds as the app tables' ISO-8601 UTC text (``2026-01-09T10:00:00Z``)."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _opt_iso(epoch: float | None) -> str | None:
    return None if epoch is None else iso(epoch)


def _int(value: SqlValue, default: int = 0) -> int:
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return default


def _str(value: SqlValue) -> str | None:
    return value if isinstance(value, str) else None


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class BuildSizes:
    """A build's sizes, as recorded on its publish row and in ``performance_budgets``."""

    js_kb: int
    css_kb: int
    third_party_scripts: int
    image_kb: int = 0  # the largest image file served
    page_weight_kb: int = 0  # the heaviest page


@dataclass(frozen=True, slots=True)
class PublishRow:
    """A row of ``publish_versions``."""

    id: int
    site: str
    environment: str
    version: int
    status: str
    deployment_id: str | None
    attempts: int
    content_hash: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class DomainRow:
    """The columns of a ``domains`` row the hostname handlers look at."""

    domain: str
    status: str
    custom_hostname_id: str | None
    recreate_count: int
    retry_count: int
    status_since: str | None


@dataclass(frozen=True, slots=True)
class DunningRow:
    """A row of ``dunning_step_logs``."""

    invoice_id: str
    step_code: str
    status: str
    attempts: int
    provider_message_id: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class HostnameFacts:
    """What Cloudflare said about a custom hostname, reduced to the ``domains`` columns."""

    id: str
    status: str  # the domains vocabulary: pending_validation | pending_ssl | active | failed
    ssl_status: str | None
    ssl_method: str
    origin: str | None
    verification_token: str | None
    verification_errors: tuple[str, ...]
    dcv_txt_name: str | None = None  # the certificate's DCV TXT record, when Cloudflare shows it
    dcv_txt_value: str | None = None


# ``('open', 'uncollectible')``: the mirror's "still unsettled" (past_due) test, from the core.
_UNSETTLED = "(" + ", ".join(f"'{status}'" for status in sorted(UNSETTLED_STATUSES)) + ")"

_PUBLISH_COLUMNS = (
    "id, site_id, environment, version_number, status, deployment_id, attempts, content_hash, "
    "error_message"
)


def _media_budget(site: str, sizes: BuildSizes, limits: Mapping[str, int]) -> Statement:
    """``performance_budgets``' image columns: limits, current figures, and ``exceeded``."""
    return Statement(
        "UPDATE performance_budgets SET "
        "max_image_kb = COALESCE(?, max_image_kb), "
        "max_page_weight_kb = COALESCE(?, max_page_weight_kb), "
        "current_image_kb = ?, current_page_weight_kb = ?, "
        "status = CASE WHEN ? > COALESCE(?, max_image_kb, 1e18) "
        "OR ? > COALESCE(?, max_page_weight_kb, 1e18) THEN 'exceeded' ELSE status END "
        "WHERE site_id = ?",
        (
            limits.get("max_image_kb"),
            limits.get("max_page_weight_kb"),
            sizes.image_kb,
            sizes.page_weight_kb,
            sizes.image_kb,
            limits.get("max_image_kb"),
            sizes.page_weight_kb,
            limits.get("max_page_weight_kb"),
            site,
        ),
    )


def _publish_row(row: Mapping[str, SqlValue]) -> PublishRow:
    return PublishRow(
        id=_int(row["id"]),
        site=str(row["site_id"]),
        environment=str(row["environment"]),
        version=_int(row["version_number"]),
        status=str(row["status"]),
        deployment_id=_str(row["deployment_id"]),
        attempts=_int(row["attempts"], 1),
        content_hash=_str(row["content_hash"]),
        error_message=_str(row["error_message"]),
    )


class Records:
    """The handlers' D1 bookkeeping, one method per record they keep (see the module rules)."""

    def __init__(self, db: Database) -> None:
        """Write through ``db``."""
        self.db = db

    # ------------------------------------------------------------------ tenants and sites

    @staticmethod
    def _ensure_tenant(tenant: str, now: float) -> Statement:
        return Statement(
            "INSERT INTO tenants (id, name, created_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO NOTHING",
            (tenant, tenant, iso(now), iso(now)),
        )

    @classmethod
    def _ensure_site(
        cls, site: str, tenant: str, project: str | None, now: float, *, update: bool
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
        return [cls._ensure_tenant(tenant, now), upsert]

    # ------------------------------------------------------------------ publish_versions

    async def live_publish(self, site: str, environment: str) -> PublishRow | None:
        """The ``live`` row of a site and environment, if any."""
        rows = await self.db.query(
            f"SELECT {_PUBLISH_COLUMNS} FROM publish_versions "
            "WHERE site_id = ? AND environment = ? AND status = 'live' ORDER BY id DESC LIMIT 1",
            (site, environment),
        )
        return _publish_row(rows[0]) if rows else None

    async def unfinished_publish(
        self, site: str, environment: str, version: int
    ) -> PublishRow | None:
        """The newest row of this version left ``building`` or ``deploying`` (interrupted)."""
        rows = await self.db.query(
            f"SELECT {_PUBLISH_COLUMNS} FROM publish_versions "
            "WHERE site_id = ? AND environment = ? AND version_number = ? "
            "AND status IN ('building', 'deploying') ORDER BY id DESC LIMIT 1",
            (site, environment, version),
        )
        return _publish_row(rows[0]) if rows else None

    async def publish_of_deployment(self, deployment_id: str) -> PublishRow | None:
        """The newest row that recorded ``deployment_id`` (sizes and hash of a rollback target)."""
        rows = await self.db.query(
            f"SELECT {_PUBLISH_COLUMNS}, js_kb, css_kb, third_party_scripts "
            "FROM publish_versions WHERE deployment_id = ? ORDER BY id DESC LIMIT 1",
            (deployment_id,),
        )
        return _publish_row(rows[0]) if rows else None

    async def start_publish(
        self,
        *,
        site: str,
        tenant: str,
        project: str,
        environment: str,
        version: int,
        attempt: int,
        commit: str | None,
        now: float,
        build_identity: str | None = None,
        build_inputs: str | None = None,
    ) -> int:
        """Upsert the tenant and site rows and insert a ``building`` row; return its id.

        ``build_identity`` and ``build_inputs`` (``core/identity.py``) say which inputs this
        attempt builds, so a failure blocks only as long as the inputs stay the same.
        """
        statements = self._ensure_site(site, tenant, project, now, update=True)
        statements.append(
            Statement(
                "INSERT INTO publish_versions (site_id, version_number, environment, status, "
                "commit_sha, attempts, created_at, build_identity, build_inputs) "
                "VALUES (?, ?, ?, 'building', ?, ?, ?, ?, ?) RETURNING id",
                (
                    site,
                    version,
                    environment,
                    commit,
                    attempt,
                    iso(now),
                    build_identity,
                    build_inputs,
                ),
            )
        )
        results = await self.db.batch(statements)
        inserted = results[-1]
        if inserted.rows:
            return _int(inserted.rows[0]["id"])
        return inserted.last_row_id

    async def publish_deploying(
        self,
        row_id: int,
        *,
        content_hash: str,
        sizes: BuildSizes,
        commit: str | None,
        build_identity: str | None = None,
        build_inputs: str | None = None,
    ) -> None:
        """The build passed: ``deploying``, with its content hash, sizes and build identity."""
        await self.db.execute(
            "UPDATE publish_versions SET status = 'deploying', content_hash = ?, js_kb = ?, "
            "css_kb = ?, third_party_scripts = ?, image_kb = ?, page_weight_kb = ?, "
            "commit_sha = COALESCE(?, commit_sha), build_identity = COALESCE(?, build_identity), "
            "build_inputs = COALESCE(?, build_inputs), error_message = NULL WHERE id = ?",
            (
                content_hash,
                sizes.js_kb,
                sizes.css_kb,
                sizes.third_party_scripts,
                sizes.image_kb,
                sizes.page_weight_kb,
                commit,
                build_identity,
                build_inputs,
                row_id,
            ),
        )

    async def publish_failed(
        self,
        row_id: int,
        message: str,
        *,
        now: float,
        sizes: BuildSizes | None = None,
        deployment_id: str | None = None,
        build_identity: str | None = None,
        build_inputs: str | None = None,
    ) -> None:
        """The attempt failed: ``failed`` with ``error_message`` (runbook 1 reads it)."""
        if build_identity is not None:
            await self.db.execute(
                "UPDATE publish_versions SET build_identity = ?, build_inputs = ? WHERE id = ?",
                (build_identity, build_inputs, row_id),
            )
        await self.db.execute(
            "UPDATE publish_versions SET status = 'failed', error_message = ?, completed_at = ?, "
            "js_kb = COALESCE(?, js_kb), css_kb = COALESCE(?, css_kb), "
            "third_party_scripts = COALESCE(?, third_party_scripts), "
            "image_kb = COALESCE(?, image_kb), page_weight_kb = COALESCE(?, page_weight_kb), "
            "deployment_id = COALESCE(?, deployment_id) WHERE id = ?",
            (
                message,
                iso(now),
                sizes.js_kb if sizes else None,
                sizes.css_kb if sizes else None,
                sizes.third_party_scripts if sizes else None,
                sizes.image_kb if sizes else None,
                sizes.page_weight_kb if sizes else None,
                deployment_id,
                row_id,
            ),
        )

    async def latest_publish(self, site: str, environment: str) -> PublishRow | None:
        """The newest ``publish_versions`` row of a site and environment, if any."""
        rows = await self.db.query(
            f"SELECT {_PUBLISH_COLUMNS} FROM publish_versions "
            "WHERE site_id = ? AND environment = ? ORDER BY created_at DESC, id DESC LIMIT 1",
            (site, environment),
        )
        return _publish_row(rows[0]) if rows else None

    async def record_publish_failure(
        self,
        *,
        site: str,
        tenant: str,
        project: str,
        environment: str,
        version: int,
        commit: str | None,
        content_hash: str | None,
        error_message: str,
        sizes: BuildSizes | None,
        now: float,
        build_identity: str | None = None,
        build_inputs: str | None = None,
    ) -> None:
        """One batch: the tenant and site rows if missing, and one ``failed`` publish row.

        For a publish the planner blocked because its in-memory build failed or was over
        budget: nothing was uploaded, so the row has no deployment.
        """
        statements = self._ensure_site(site, tenant, project, now, update=False)
        statements.append(
            Statement(
                "INSERT INTO publish_versions (site_id, version_number, environment, status, "
                "content_hash, commit_sha, attempts, js_kb, css_kb, third_party_scripts, "
                "image_kb, page_weight_kb, error_message, created_at, completed_at, "
                "build_identity, build_inputs) "
                "VALUES (?, ?, ?, 'failed', ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    site,
                    version,
                    environment,
                    content_hash,
                    commit,
                    sizes.js_kb if sizes else None,
                    sizes.css_kb if sizes else None,
                    sizes.third_party_scripts if sizes else None,
                    sizes.image_kb if sizes else None,
                    sizes.page_weight_kb if sizes else None,
                    error_message,
                    iso(now),
                    iso(now),
                    build_identity,
                    build_inputs,
                ),
            )
        )
        await self.db.batch(statements)

    def _went_live(
        self,
        *,
        site: str,
        environment: str,
        version: int,
        keep: int | None,
        now: float,
        sizes: BuildSizes | None,
        budget: Mapping[str, int] | None,
    ) -> list[Statement]:
        """Supersede other live rows, set the site's version, refresh the budget's sizes."""
        if environment not in ("production", "preview"):
            raise ValueError(f"unknown environment {environment!r}")
        statements = [
            Statement(
                "UPDATE publish_versions SET status = 'superseded' WHERE site_id = ? "
                "AND environment = ? AND status = 'live' AND id IS NOT ?",
                (site, environment, keep),
            ),
            Statement(
                f"UPDATE sites SET {environment}_version = ?, updated_at = ? WHERE id = ?",
                (version, iso(now), site),
            ),
        ]
        if environment == "production" and sizes is not None:
            limits = budget or {}
            exceeded = any(
                limit is not None and actual > limit
                for actual, limit in (
                    (sizes.js_kb, limits.get("max_js_kb")),
                    (sizes.css_kb, limits.get("max_css_kb")),
                    (sizes.third_party_scripts, limits.get("max_third_party_scripts")),
                )
            )
            statements.append(
                Statement(
                    "INSERT INTO performance_budgets (site_id, max_js_kb, max_css_kb, "
                    "max_third_party_scripts, current_js_kb, current_css_kb, "
                    "current_third_party_scripts, status, measured_version, measured_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(site_id) DO UPDATE SET "
                    "max_js_kb = COALESCE(?, performance_budgets.max_js_kb), "
                    "max_css_kb = COALESCE(?, performance_budgets.max_css_kb), "
                    "max_third_party_scripts = "
                    "COALESCE(?, performance_budgets.max_third_party_scripts), "
                    "current_js_kb = excluded.current_js_kb, "
                    "current_css_kb = excluded.current_css_kb, "
                    "current_third_party_scripts = excluded.current_third_party_scripts, "
                    "status = CASE WHEN excluded.current_js_kb > COALESCE(?, "
                    "performance_budgets.max_js_kb) OR excluded.current_css_kb > COALESCE(?, "
                    "performance_budgets.max_css_kb) OR excluded.current_third_party_scripts > "
                    "COALESCE(?, performance_budgets.max_third_party_scripts) THEN 'exceeded' "
                    "ELSE 'ok' END, measured_version = excluded.measured_version, "
                    "measured_at = excluded.measured_at, updated_at = excluded.updated_at",
                    (
                        site,
                        limits.get("max_js_kb", sizes.js_kb),
                        limits.get("max_css_kb", sizes.css_kb),
                        limits.get("max_third_party_scripts", sizes.third_party_scripts),
                        sizes.js_kb,
                        sizes.css_kb,
                        sizes.third_party_scripts,
                        "exceeded" if exceeded else ("ok" if limits else "unknown"),
                        version,
                        iso(now),
                        iso(now),
                        limits.get("max_js_kb"),
                        limits.get("max_css_kb"),
                        limits.get("max_third_party_scripts"),
                        limits.get("max_js_kb"),
                        limits.get("max_css_kb"),
                        limits.get("max_third_party_scripts"),
                    ),
                )
            )
            statements.append(_media_budget(site, sizes, limits))
        return statements

    async def publish_live(
        self,
        row_id: int,
        *,
        site: str,
        environment: str,
        version: int,
        deployment_id: str,
        url: str,
        now: float,
        sizes: BuildSizes | None,
        budget: Mapping[str, int] | None,
    ) -> None:
        """One batch: the row goes ``live``, the previous live row ``superseded``, sizes kept."""
        statements = self._went_live(
            site=site,
            environment=environment,
            version=version,
            keep=row_id,
            now=now,
            sizes=sizes,
            budget=budget,
        )
        statements.insert(
            1,
            Statement(
                "UPDATE publish_versions SET status = 'live', deployment_id = ?, "
                "deployment_url = ?, completed_at = ?, error_message = NULL WHERE id = ?",
                (deployment_id, url or None, iso(now), row_id),
            ),
        )
        await self.db.batch(statements)

    async def _earlier_build(
        self, deployment_id: str
    ) -> tuple[Mapping[str, SqlValue], BuildSizes | None]:
        """The newest row of ``deployment_id``: its columns, and its sizes when it has them."""
        earlier = await self.db.query(
            "SELECT content_hash, js_kb, css_kb, third_party_scripts, image_kb, page_weight_kb, "
            "build_identity, build_inputs FROM publish_versions "
            "WHERE deployment_id = ? ORDER BY id DESC LIMIT 1",
            (deployment_id,),
        )
        known = earlier[0] if earlier else {}
        if known.get("js_kb") is None or known.get("css_kb") is None:
            return known, None
        return known, BuildSizes(
            js_kb=_int(known["js_kb"]),
            css_kb=_int(known["css_kb"]),
            third_party_scripts=_int(known.get("third_party_scripts")),
            image_kb=_int(known.get("image_kb")),
            page_weight_kb=_int(known.get("page_weight_kb")),
        )

    async def record_rollback(
        self,
        *,
        site: str,
        tenant: str,
        project: str,
        environment: str,
        version: int,
        deployment_id: str,
        url: str,
        commit: str | None,
        now: float,
        budget: Mapping[str, int] | None = None,
    ) -> None:
        """One batch: a new ``live`` row for ``deployment_id``, superseding the live one."""
        known, sizes = await self._earlier_build(deployment_id)
        went_live = self._went_live(
            site=site,
            environment=environment,
            version=version,
            keep=None,
            now=now,
            sizes=sizes,
            budget=budget,
        )
        statements = self._ensure_site(site, tenant, project, now, update=True)
        statements.append(
            Statement(
                "UPDATE publish_versions SET status = 'superseded', error_message = "
                "COALESCE(error_message, ?), completed_at = ? WHERE site_id = ? "
                "AND environment = ? AND status IN ('building', 'deploying')",
                (
                    f"interrupted; production rolled back to deployment {deployment_id}",
                    iso(now),
                    site,
                    environment,
                ),
            )
        )
        statements.append(went_live[0])  # the previous live row: superseded
        statements.append(
            Statement(
                "INSERT INTO publish_versions (site_id, version_number, environment, status, "
                "deployment_id, deployment_url, content_hash, commit_sha, attempts, js_kb, "
                "css_kb, third_party_scripts, created_at, completed_at, image_kb, page_weight_kb, "
                "build_identity, build_inputs) "
                "VALUES (?, ?, ?, 'live', ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    site,
                    version,
                    environment,
                    deployment_id,
                    url or None,
                    _str(known.get("content_hash")),
                    commit,
                    sizes.js_kb if sizes else None,
                    sizes.css_kb if sizes else None,
                    sizes.third_party_scripts if sizes else None,
                    iso(now),
                    iso(now),
                    sizes.image_kb if sizes else None,
                    sizes.page_weight_kb if sizes else None,
                    _str(known.get("build_identity")),
                    _str(known.get("build_inputs")),
                ),
            )
        )
        statements += went_live[1:]  # the site's version, the budget's sizes
        await self.db.batch(statements)

    async def version_content(self, site: str, version: int) -> tuple[str, str | None] | None:
        """``(content_json, content_hash)`` of a version, or None when there is no snapshot."""
        rows = await self.db.query(
            "SELECT content_json, content_hash FROM site_versions WHERE site_id = ? "
            "AND version_number = ?",
            (site, version),
        )
        if not rows or _str(rows[0]["content_json"]) is None:
            return None
        return str(rows[0]["content_json"]), _str(rows[0]["content_hash"])

    async def content_json(self, site: str, version: int) -> str | None:
        """``site_versions.content_json`` of a version, or None when there is no snapshot."""
        rows = await self.db.query(
            "SELECT content_json FROM site_versions WHERE site_id = ? AND version_number = ?",
            (site, version),
        )
        return _str(rows[0]["content_json"]) if rows else None

    async def budget_limits(self, site: str) -> dict[str, int] | None:
        """The limits stored in ``performance_budgets`` (a fallback when the action has none)."""
        rows = await self.db.query(
            "SELECT max_js_kb, max_css_kb, max_third_party_scripts FROM performance_budgets "
            "WHERE site_id = ?",
            (site,),
        )
        if not rows:
            return None
        return {key: _int(value) for key, value in rows[0].items()}

    # ------------------------------------------------------------------ domains

    async def domain(self, hostname: str) -> DomainRow | None:
        """The ``domains`` row of ``hostname``, if any."""
        rows = await self.db.query(
            "SELECT domain, status, custom_hostname_id, recreate_count, retry_count, "
            "status_since FROM domains WHERE domain = ?",
            (hostname,),
        )
        if not rows:
            return None
        row = rows[0]
        return DomainRow(
            domain=str(row["domain"]),
            status=str(row["status"]),
            custom_hostname_id=_str(row["custom_hostname_id"]),
            recreate_count=_int(row["recreate_count"]),
            retry_count=_int(row["retry_count"]),
            status_since=_str(row["status_since"]),
        )

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
        statements = self._ensure_site(site, tenant, project, now, update=False)
        statements.append(
            Statement(
                "INSERT INTO domains (id, site_id, tenant_id, domain, status, ssl_status, "
                "ssl_method, custom_hostname_id, custom_origin_server, verification_token, "
                "verification_errors, recreate_count, retry_count, status_since, "
                "last_checked_at, created_at, updated_at, dcv_txt_name, dcv_txt_value) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
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
                "OR domains.status = 'deleted' THEN excluded.status_since "
                "ELSE domains.status_since END, "
                "dcv_txt_name = excluded.dcv_txt_name, dcv_txt_value = excluded.dcv_txt_value, "
                "last_checked_at = excluded.last_checked_at, updated_at = excluded.updated_at",
                (
                    hostname,
                    site,
                    tenant,
                    hostname,
                    facts.status,
                    facts.ssl_status,
                    facts.ssl_method if facts.ssl_method in ("http", "txt", "email") else "http",
                    facts.id,
                    facts.origin,
                    facts.verification_token,
                    _json(list(facts.verification_errors)),
                    recreate_count or 0,
                    1 if retried else 0,
                    iso(now),
                    iso(now),
                    iso(now),
                    iso(now),
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

        Args:
            hostname: the canonical hostname (``domains.domain``).
            site: the owning site.
            tenant: the owning tenant.
            project: the site's Pages project, for a ``sites`` row created here.
            facts: what Cloudflare showed when the plan was made.
            now: the injected clock.
        """
        statements = self._ensure_site(site, tenant, project, now, update=False)
        statements.append(
            Statement(
                "INSERT INTO domains (id, site_id, tenant_id, domain, status, ssl_status, "
                "ssl_method, custom_hostname_id, custom_origin_server, verification_token, "
                "verification_errors, status_since, last_checked_at, created_at, updated_at, "
                "dcv_txt_name, dcv_txt_value) "
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
                "AND domains.status IS NOT 'deleted' "
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
                    hostname,
                    site,
                    tenant,
                    hostname,
                    facts.status,
                    facts.ssl_status,
                    facts.ssl_method if facts.ssl_method in ("http", "txt", "email") else "http",
                    facts.id,
                    facts.origin,
                    facts.verification_token,
                    _json(list(facts.verification_errors)),
                    iso(now),
                    iso(now),
                    iso(now),
                    iso(now),
                    facts.dcv_txt_name,
                    facts.dcv_txt_value,
                ),
            )
        )
        await self.db.batch(statements)

    async def hostname_deleted(self, hostname: str, *, now: float) -> bool:
        """The hostname is gone from the zone: ``status = 'deleted'``, its id cleared.

        Returns:
            Whether a row changed (False: no row, or it was already marked ``deleted``).
        """
        result = await self.db.execute(
            "UPDATE domains SET status = 'deleted', ssl_status = NULL, custom_hostname_id = NULL, "
            "status_since = ?, last_checked_at = ?, updated_at = ? "
            "WHERE domain = ? AND status != 'deleted'",
            (iso(now), iso(now), iso(now), hostname),
        )
        return result.changes > 0

    async def domain_statuses(self, statuses: Mapping[str, str], *, now: float) -> None:
        """Set ``domains.status`` of many hostnames in one batch (a routing-table change).

        One ``UPDATE ... WHERE domain IN (...)`` per status and chunk of names, so a lock of a
        tenant with 1,000 hostnames is one D1 request. Rows already ``deleted`` are left alone;
        ``status_since`` restarts only where the status changes.
        """
        by_status: dict[str, list[str]] = {}
        for hostname, status in sorted(statuses.items()):
            by_status.setdefault(status, []).append(hostname)
        statements = [
            Statement(
                "UPDATE domains SET status_since = CASE WHEN status = ? THEN status_since "
                "ELSE ? END, status = ?, updated_at = ? "
                f"WHERE status != 'deleted' AND domain IN ({placeholders(len(chunk))})",
                (status, iso(now), status, iso(now), *chunk),
            )
            for status, names in sorted(by_status.items())
            for chunk in param_chunks(names, reserved=4)
        ]
        if statements:
            await self.db.batch(statements)

    # ------------------------------------------------------------------ tenant access

    async def tenant_access(self, tenant: str) -> str | None:
        """``tenants.status`` of ``tenant``, or None when there is no row."""
        rows = await self.db.query("SELECT status FROM tenants WHERE id = ?", (tenant,))
        return _str(rows[0]["status"]) if rows else None

    async def set_access(
        self,
        *,
        tenant: str,
        access: str,
        previous: str | None,
        reason: str,
        source: str,
        action_id: str,
        now: float,
    ) -> None:
        """One batch: ``tenants.status`` and its reason, the billing accounts, an audit event."""
        account_status = (
            "CASE WHEN EXISTS (SELECT 1 FROM invoices WHERE invoices.billing_account_id = "
            f"billing_accounts.id AND invoices.status IN {_UNSETTLED}) THEN 'past_due' "
            "ELSE 'active' END"
            if access == "active"
            else "?"
        )
        account_params: tuple[SqlValue, ...] = (
            (iso(now), tenant) if access == "active" else (access, iso(now), tenant)
        )
        statements = [
            self._ensure_tenant(tenant, now),
            Statement(
                "UPDATE tenants SET status = ?, status_reason = ?, status_changed_at = ?, "
                "updated_at = ? WHERE id = ?",
                (access, f"{source}: {reason}", iso(now), iso(now), tenant),
            ),
            Statement(
                f"UPDATE billing_accounts SET status = {account_status}, updated_at = ? "
                "WHERE tenant_id = ? AND status != 'canceled'",
                account_params,
            ),
            Statement(
                "INSERT INTO events (at, kind, resource, action_id, message, data) "
                "VALUES (?, 'tenant.access', ?, ?, ?, ?)",
                (
                    now,
                    f"Tenant/{tenant}",
                    action_id,
                    f"access {previous or 'active'} -> {access} ({source}): {reason}",
                    _json({"from": previous, "to": access, "source": source, "reason": reason}),
                ),
            ),
        ]
        await self.db.batch(statements)

    # ------------------------------------------------------------------ dunning_step_logs

    async def dunning_row(self, invoice_id: str, step_code: str) -> DunningRow | None:
        """The log row of one (invoice, step), if any."""
        rows = await self.db.query(
            "SELECT invoice_id, step_code, status, attempts, provider_message_id, error_message "
            "FROM dunning_step_logs WHERE invoice_id = ? AND step_code = ?",
            (invoice_id, step_code),
        )
        if not rows:
            return None
        row = rows[0]
        return DunningRow(
            invoice_id=str(row["invoice_id"]),
            step_code=str(row["step_code"]),
            status=str(row["status"]),
            attempts=_int(row["attempts"]),
            provider_message_id=_str(row["provider_message_id"]),
            error_message=_str(row["error_message"]),
        )

    def _ensure_invoice(self, invoice_id: str, tenant: str, now: float) -> list[Statement]:
        return [
            self._ensure_tenant(tenant, now),
            Statement(
                "INSERT INTO invoices (id, provider_invoice_id, tenant_id, status, created_at, "
                "updated_at) VALUES (?, ?, ?, 'open', ?, ?) ON CONFLICT DO NOTHING",
                (invoice_id, invoice_id, tenant, iso(now), iso(now)),
            ),
        ]

    async def dunning_skipped(
        self, *, invoice_id: str, tenant: str, steps: Sequence[str], now: float
    ) -> None:
        """Record superseded steps as ``skipped`` (rows already sent or failed are kept)."""
        if not steps:
            return
        statements = self._ensure_invoice(invoice_id, tenant, now)
        for step in steps:
            statements.append(
                Statement(
                    "INSERT INTO dunning_step_logs (invoice_id, subscription_id, tenant_id, "
                    "step_code, status, error_message, created_at, updated_at) "
                    "VALUES (?, (SELECT subscription_id FROM invoices WHERE id = ?), ?, ?, "
                    "'skipped', 'superseded by a later step', ?, ?) "
                    "ON CONFLICT(invoice_id, step_code) DO UPDATE SET status = 'skipped', "
                    "error_message = 'superseded by a later step', "
                    "updated_at = excluded.updated_at WHERE dunning_step_logs.status = 'pending'",
                    (invoice_id, invoice_id, tenant, step, iso(now), iso(now)),
                )
            )
        await self.db.batch(statements)

    async def dunning_attempt(
        self,
        *,
        invoice_id: str,
        step_code: str,
        tenant: str,
        phone: str,
        message: str,
        now: float,
    ) -> None:
        """Right before a send: the row is ``pending`` with one more attempt and no error.

        A ``pending`` row with attempts and neither a message id nor an error therefore means
        "a send was started and its outcome never recorded".
        """
        statements = self._ensure_invoice(invoice_id, tenant, now)
        statements.append(
            Statement(
                "INSERT INTO dunning_step_logs (invoice_id, subscription_id, tenant_id, "
                "step_code, phone, message, status, attempts, created_at, updated_at) "
                "VALUES (?, (SELECT subscription_id FROM invoices WHERE id = ?), ?, ?, ?, ?, "
                "'pending', 1, ?, ?) ON CONFLICT(invoice_id, step_code) DO UPDATE SET "
                "attempts = dunning_step_logs.attempts + 1, error_message = NULL, "
                "phone = excluded.phone, message = excluded.message, "
                "updated_at = excluded.updated_at WHERE dunning_step_logs.status = 'pending'",
                (invoice_id, invoice_id, tenant, step_code, phone, message, iso(now), iso(now)),
            )
        )
        await self.db.batch(statements)

    async def dunning_sent(
        self,
        *,
        invoice_id: str,
        step_code: str,
        message_id: str,
        response: Mapping[str, Any],
        now: float,
    ) -> None:
        """The gateway accepted the text: ``sent`` with its message id and response body."""
        await self.db.execute(
            "UPDATE dunning_step_logs SET status = 'sent', provider_message_id = ?, "
            "provider_response = ?, error_message = NULL, sent_at = ?, updated_at = ? "
            "WHERE invoice_id = ? AND step_code = ?",
            (message_id, _json(dict(response)), iso(now), iso(now), invoice_id, step_code),
        )

    async def dunning_failed(
        self,
        *,
        invoice_id: str,
        step_code: str,
        tenant: str,
        error: str,
        response: Mapping[str, Any] | None,
        now: float,
        status: str = "failed",
        phone: str | None = None,
    ) -> None:
        """The step ended without a send: ``failed`` with the reason and the number it was
        for, or ``unknown`` when it may have been sent (never resent, not even by hand).

        A ``failed`` step is sent again only by ``core.policy`` rule 6 (an invalid number
        since corrected) or a manual lever (:meth:`dunning_reopen`).
        """
        if status not in ("failed", "unknown"):
            raise ValueError(f"a finished unsent step is failed or unknown, not {status!r}")
        statements = self._ensure_invoice(invoice_id, tenant, now)
        statements.append(
            Statement(
                "INSERT INTO dunning_step_logs (invoice_id, subscription_id, tenant_id, "
                "step_code, phone, status, error_message, provider_response, created_at, "
                "updated_at) VALUES (?, (SELECT subscription_id FROM invoices WHERE id = ?), ?, "
                "?, ?, ?, ?, ?, ?, ?) ON CONFLICT(invoice_id, step_code) DO UPDATE SET "
                "status = excluded.status, "
                "phone = COALESCE(excluded.phone, dunning_step_logs.phone), "
                "error_message = excluded.error_message, "
                "provider_response = COALESCE(excluded.provider_response, "
                "dunning_step_logs.provider_response), updated_at = excluded.updated_at",
                (
                    invoice_id,
                    invoice_id,
                    tenant,
                    step_code,
                    phone,
                    status,
                    error,
                    _json(dict(response)) if response is not None else None,
                    iso(now),
                    iso(now),
                ),
            )
        )
        await self.db.batch(statements)

    async def dunning_reopen(self, *, invoice_id: str, step_code: str, now: float) -> bool:
        """A ``failed`` step (nothing was sent) or a skipped one back to ``pending``, to send.

        The error is kept (so the row does not read as an interrupted send) until the attempt
        clears it; a sent row, or one whose outcome is unknown, is never reopened. Returns
        whether the row was reopened.
        """
        before = await self.dunning_row(invoice_id, step_code)
        await self.db.execute(
            "UPDATE dunning_step_logs SET status = 'pending', updated_at = ? "
            "WHERE invoice_id = ? AND step_code = ? AND status IN ('failed', 'skipped')",
            (iso(now), invoice_id, step_code),
        )
        after = await self.dunning_row(invoice_id, step_code)
        return before is not None and after is not None and after.status == "pending"

    async def dunning_deferred(
        self, *, invoice_id: str, step_code: str, error: str, now: float
    ) -> None:
        """The send certainly did not happen: the row stays ``pending`` with the error."""
        await self.db.execute(
            "UPDATE dunning_step_logs SET error_message = ?, updated_at = ? "
            "WHERE invoice_id = ? AND step_code = ? AND status = 'pending'",
            (error, iso(now), invoice_id, step_code),
        )

    # ------------------------------------------------------------------ billing mirror

    async def mirrored_open_invoices(self, customer: str) -> list[str]:
        """Invoice ids the mirror holds as unsettled (open or uncollectible) for ``customer``."""
        rows = await self.db.query(
            "SELECT invoices.id AS id FROM invoices JOIN billing_accounts "
            "ON invoices.billing_account_id = billing_accounts.id "
            "WHERE billing_accounts.provider = 'stripe' "
            f"AND billing_accounts.provider_customer_id = ? AND invoices.status IN {_UNSETTLED}",
            (customer,),
        )
        return [str(row["id"]) for row in rows]

    async def sync_billing(
        self,
        *,
        tenant: str,
        display_name: str | None,
        policy: str | None,
        phone: str | None,
        facts: CustomerBilling,
        closed: Sequence[Invoice],
        digest: str,
        now: float,
        vanished: Sequence[str] = (),
    ) -> None:
        """One batch: the tenant, its billing account, subscriptions, invoices and the digest.

        Args:
            tenant: the Tenant spec name (``tenants.id``).
            display_name: ``tenants.name``; None keeps the recorded one.
            policy: ``tenants.billing_policy``.
            phone: ``tenants.whatsapp_phone`` (E.164).
            facts: Stripe's subscriptions and open invoices of the customer.
            closed: invoices the mirror held as open that Stripe no longer lists as open,
                re-read from Stripe (paid, void, uncollectible).
            vanished: mirrored open invoices Stripe no longer knows: recorded as ``void``.
            digest: ``billing_digest(facts)``, stored as ``billing_accounts.mirror_digest``.
            now: the injected clock.
        """
        customer = facts.customer
        account = (
            "(SELECT id FROM billing_accounts WHERE provider = 'stripe' "
            "AND provider_customer_id = ?)"
        )
        statements = [
            Statement(
                "INSERT INTO tenants (id, name, billing_policy, whatsapp_phone, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "name = excluded.name, billing_policy = COALESCE(excluded.billing_policy, "
                "tenants.billing_policy), whatsapp_phone = COALESCE(excluded.whatsapp_phone, "
                "tenants.whatsapp_phone), updated_at = excluded.updated_at",
                (tenant, display_name or tenant, policy, phone, iso(now), iso(now)),
            ),
            Statement(
                "INSERT INTO billing_accounts (id, tenant_id, provider, provider_customer_id, "
                "created_at, updated_at) VALUES (?, ?, 'stripe', ?, ?, ?) "
                "ON CONFLICT(provider, provider_customer_id) DO UPDATE SET "
                "tenant_id = excluded.tenant_id, updated_at = excluded.updated_at",
                (customer, tenant, customer, iso(now), iso(now)),
            ),
        ]
        for sub in facts.subscriptions:
            statements.append(
                Statement(
                    "INSERT INTO subscriptions (id, billing_account_id, tenant_id, "
                    "provider_subscription_id, status, latest_invoice_id, current_period_end, "
                    f"synced_at, created_at, updated_at) VALUES (?, {account}, ?, ?, ?, ?, ?, "
                    "?, ?, ?) ON CONFLICT(provider_subscription_id) DO UPDATE SET "
                    "billing_account_id = excluded.billing_account_id, "
                    "tenant_id = excluded.tenant_id, status = excluded.status, "
                    "latest_invoice_id = excluded.latest_invoice_id, "
                    "current_period_end = excluded.current_period_end, "
                    "synced_at = excluded.synced_at, updated_at = excluded.updated_at",
                    (
                        sub.id,
                        customer,
                        tenant,
                        sub.id,
                        sub.status,
                        sub.latest_invoice,
                        _opt_iso(sub.current_period_end),
                        iso(now),
                        iso(now),
                        iso(now),
                    ),
                )
            )
        for invoice in (*facts.open_invoices, *closed):
            paid_at = iso(now) if invoice.status == "paid" else None
            statements.append(
                Statement(
                    "INSERT INTO invoices (id, provider_invoice_id, subscription_id, "
                    "billing_account_id, tenant_id, status, amount_due, currency, "
                    "attempt_count, hosted_invoice_url, finalized_at, due_at, first_failed_at, "
                    "paid_at, synced_at, created_at, updated_at) VALUES (?, ?, "
                    "(SELECT id FROM subscriptions WHERE provider_subscription_id = ?), "
                    f"{account}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(provider_invoice_id) DO UPDATE SET "
                    "subscription_id = COALESCE(excluded.subscription_id, "
                    "invoices.subscription_id), billing_account_id = excluded.billing_account_id, "
                    "tenant_id = excluded.tenant_id, status = excluded.status, "
                    "amount_due = excluded.amount_due, currency = excluded.currency, "
                    "attempt_count = excluded.attempt_count, "
                    "hosted_invoice_url = excluded.hosted_invoice_url, "
                    "finalized_at = excluded.finalized_at, due_at = excluded.due_at, "
                    "first_failed_at = excluded.first_failed_at, "
                    "paid_at = COALESCE(invoices.paid_at, excluded.paid_at), "
                    "synced_at = excluded.synced_at, updated_at = excluded.updated_at",
                    (
                        invoice.id,
                        invoice.id,
                        invoice.subscription,
                        customer,
                        tenant,
                        invoice.status,
                        invoice.amount_due,
                        invoice.currency or "usd",
                        invoice.attempt_count,
                        invoice.hosted_invoice_url,
                        _opt_iso(invoice.finalized_at),
                        iso(invoice.due_at),
                        iso(invoice.overdue_since),
                        paid_at,
                        iso(now),
                        iso(invoice.created),
                        iso(now),
                    ),
                )
            )
        for invoice_id in vanished:
            statements.append(
                Statement(
                    "UPDATE invoices SET status = 'void', synced_at = ?, updated_at = ? "
                    "WHERE id = ?",
                    (iso(now), iso(now), invoice_id),
                )
            )
        statements.append(
            Statement(
                "UPDATE billing_accounts SET mirror_digest = ?, mirror_synced_at = ?, "
                "status = CASE WHEN (SELECT status FROM tenants WHERE id = ?) "
                "IN ('soft_locked', 'hard_locked') THEN (SELECT status FROM tenants WHERE id = ?) "
                "WHEN EXISTS (SELECT 1 FROM invoices WHERE invoices.billing_account_id = "
                f"billing_accounts.id AND invoices.status IN {_UNSETTLED}) THEN 'past_due' "
                "WHEN status = 'canceled' THEN 'canceled' ELSE 'active' END, updated_at = ? "
                "WHERE provider = 'stripe' AND provider_customer_id = ?",
                (digest, now, tenant, tenant, iso(now), customer),
            )
        )
        await self.db.batch(statements)
