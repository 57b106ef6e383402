"""The observer's read of every record one observation needs, a few queries per table group.

Rules:

1. A handful of queries per observation, never one per site: each table is read in one
   statement for the whole fleet, or in ``IN (...)`` chunks of at most 100 values when the
   observation is scoped (PR mode).
2. App tables store ISO-8601 UTC text; the reconciler's own tables store epoch seconds.
   Everything leaves here as epoch seconds (``float``), the core's unit.
3. A database that lacks the tables or columns read here has not been migrated: that is a
   :class:`~reconciler.errors.MigrationError` telling the operator to run ``reconciler
   migrate``, not a provider outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field

from reconciler.core.observed import DunningRecord, SiteLedger, TenantRecord
from reconciler.providers.d1 import Database
from reconciler.runtime.records.billing import read_mirror
from reconciler.runtime.records.domains import DomainRow, domain_rows, read_creating, read_domains
from reconciler.runtime.records.dunning import read_dunning
from reconciler.runtime.records.site_ledgers import read_projects, read_site_ledgers
from reconciler.runtime.records.tenants import read_tenants

__all__ = ["RecordsSnapshot", "read_snapshot"]


@dataclass(frozen=True, slots=True)
class RecordsSnapshot:
    """Every record one observation needs, read in a few queries."""

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


async def read_snapshot(
    db: Database,
    *,
    sites: Collection[str] | None = None,
    tenants: Collection[str] | None = None,
    customers: Collection[str] | None = None,
    hostnames: Collection[str] | None = None,
) -> RecordsSnapshot:
    """Read the records, for the whole fleet (every argument None) or for a scope.

    Args:
        db: the D1 database.
        sites: site names to read publishes, versions and domains of (None: all).
        tenants: tenant names to read access and dunning logs of (None: all).
        customers: Stripe customer ids to read the billing mirror of (None: all).
        hostnames: extra hostnames whose ``domains`` rows to read in a scoped read (for
            domains that moved between sites or belong to removed sites).

    Raises:
        MigrationError: the database lacks the tables or columns of the migrations.
        ProviderError: D1 could not be read.
    """
    ledgers = await read_site_ledgers(db, sites)
    domains = await read_domains(db, sites, hostnames)
    tenant_records = await read_tenants(db, tenants)
    dunning = await read_dunning(db, tenants)
    creating = await read_creating(db, hostnames if sites is not None else None, domains)
    mirror = await read_mirror(db, customers)
    # Our record of every site's Pages project, read on whole-fleet reads only: it names
    # the projects no Site of the specs claims any more (shown as unmanaged).
    projects = await read_projects(db) if sites is None else {}
    rows = (
        domain_rows(domains) if sites is not None else await asyncio.to_thread(domain_rows, domains)
    )
    return RecordsSnapshot(
        sites=ledgers,
        domains=rows,
        tenants=tenant_records,
        dunning=dunning,
        mirror=mirror,
        creating=creating,
        projects=projects,
    )
