"""records: every D1 row of the app's tables the reconciler reads or writes, one module a group.

The one vocabulary for D1 rows: :class:`Records` reads and writes them. Its bases are the table
groups, one module each: :mod:`.publishes` (``publish_versions``, ``site_versions``),
:mod:`.budgets` (``performance_budgets``), :mod:`.domains` (``domains``), :mod:`.tenants`
(``tenants`` access), :mod:`.billing` (the Stripe mirror) and :mod:`.dunning`
(``dunning_step_logs``); the intent journal's own rows are ``runtime/journal.py``'s.
:meth:`Records.snapshot` is the observer's read of them all (:mod:`.snapshot`, with
:mod:`.site_ledgers` for the publishes); the other methods are the action handlers'
(``runtime/actions/``). Everything goes through :class:`~reconciler.providers.d1.Database`
(SQLite locally, D1 in production). The tables are the app's own
(``migrations/0001_app_schema.sql``, named as ``RUNBOOKS.md`` queries them), the billing
mirror's fingerprint (``0003_billing_mirror.sql``) and the append-only ``events`` (``0002``),
so what is written here is what the next plan compares with.

Rules:

1. App-table times are ISO-8601 UTC text from the injected clock (:func:`iso`); the
   reconciler's own times (``events.at``, ``billing_accounts.mirror_synced_at``) are epoch
   seconds, and every time read leaves as epoch seconds.
2. Writes that belong together are one :meth:`Database.batch` (all or nothing), and a handler
   step's reads ride in the same batch as its writes where they can (one D1 request).
3. Writes are idempotent upserts keyed by natural keys (``domains.domain``,
   ``dunning_step_logs (invoice_id, step_code)``, Stripe ids), so a resumed action that
   repeats one leaves the same rows. Parent rows a foreign key needs (a ``tenants`` row for a
   site, a ``sites`` row for a domain, an ``invoices`` row for a dunning log) are created if
   missing, never overwritten.
4. Reads of the whole fleet are one statement per table, or ``IN (...)`` chunks of at most 100
   values when scoped; a database without the migrated tables is a ``MigrationError``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from reconciler.providers.d1 import Database
from reconciler.runtime.records.billing import BillingRecords
from reconciler.runtime.records.domains import DomainRecords, DomainRow, HostnameFacts
from reconciler.runtime.records.dunning import DunningRecords, DunningRow
from reconciler.runtime.records.publishes import (
    BuildRecord,
    BuildSizes,
    OpenedPublish,
    PublishRecords,
    PublishRow,
    PublishTarget,
)
from reconciler.runtime.records.site_ledgers import content_digest, read_contents
from reconciler.runtime.records.snapshot import RecordsSnapshot, read_snapshot
from reconciler.runtime.records.sql import epoch, iso
from reconciler.runtime.records.tenants import TenantRecords

__all__ = [
    "BuildRecord",
    "BuildSizes",
    "DomainRow",
    "DunningRow",
    "HostnameFacts",
    "OpenedPublish",
    "PublishRow",
    "PublishTarget",
    "Records",
    "RecordsSnapshot",
    "content_digest",
    "epoch",
    "iso",
]


class Records(PublishRecords, DomainRecords, TenantRecords, BillingRecords, DunningRecords):
    """The D1 records of one database: each table group's methods, and the observer's read."""

    def __init__(self, db: Database) -> None:
        """Read and write through ``db`` (SQLite file or D1 over HTTP)."""
        super().__init__(db)

    async def snapshot(
        self,
        *,
        sites: Collection[str] | None = None,
        tenants: Collection[str] | None = None,
        customers: Collection[str] | None = None,
        hostnames: Collection[str] | None = None,
    ) -> RecordsSnapshot:
        """Every record one observation needs (:func:`.snapshot.read_snapshot`)."""
        return await read_snapshot(
            self.db, sites=sites, tenants=tenants, customers=customers, hostnames=hostnames
        )

    async def content(self, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """``site_versions.content_json`` of each (site, version) pair that has one."""
        return await read_contents(self.db, pairs)
