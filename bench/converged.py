"""Seed a sandbox into the converged state of a fleet: what the world looks like after apply.

Used by ``bench/bench_plan.py`` (10,000 sites) and the plan tests (``tests/runtime``,
``tests/e2e``). It writes the simulator's state directly (no API calls, nothing logged) and the
D1 SQLite file with :mod:`sqlite3` after :func:`reconciler.runtime.migrate.migrate`:

- every Pages project the sites name;
- every declared hostname, created as an apply on an ordinary account does (no origin, no
  metadata), its DNS pointed at the zone, and the virtual clock advanced until it is active;
- the routing table's KV namespace with one ``serve`` entry per hostname (docs/routing.md);
- D1: ``tenants`` active, ``sites``, ``billing_accounts`` with the billing mirror digest of a
  customer without invoices, ``site_versions`` and a live ``publish_versions`` row per site and
  environment at the desired version, ``domains`` rows (with the zone's custom hostname ids).

:class:`FakeStripe` answers ``customer_billing`` like ``StripeBilling`` for customers without
invoices, counting calls, so benchmarks and tests need no localstripe.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from reconciler.core.facts import CustomerBilling
from reconciler.core.observed import billing_digest
from reconciler.core.routing import ROUTE_SERVE, RouteEntry
from reconciler.providers.cloudflare_models import DeploymentTag
from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.migrate import migrate
from reconciler.sandbox.cloudflare import CloudflareSim
from reconciler.sandbox.cloudflare_kv import Entry
from reconciler.spec.load import Specs

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
SNAPSHOT = {
    "format": 1,
    "pages": [{"path": "/", "title": "Home", "blocks": [{"type": "hero", "heading": "Hello"}]}],
}
STAMP = "2026-01-01T00:00:00Z"
ROUTES_NAMESPACE = "sitebuilder-routes"  # RoutingSettings' default title


class FakeStripe:
    """``customer_billing`` for a set of customers without invoices; unknown ones are absent."""

    def __init__(self, known: Collection[str], *, invoices: Mapping[str, CustomerBilling] = {}):
        """Know ``known`` customers (no invoices unless ``invoices`` gives their facts)."""
        self.known = set(known)
        self.invoices = dict(invoices)
        self.calls = 0

    async def customer_billing(self, customer_ids: Sequence[str]) -> dict[str, CustomerBilling]:
        """Facts of the known customers among ``customer_ids`` (two "requests" each)."""
        result: dict[str, CustomerBilling] = {}
        for index, customer in enumerate(dict.fromkeys(customer_ids)):
            if index and not index % 1000:
                await asyncio.sleep(0)  # as the real client would, between its requests
            self.calls += 2
            if customer in self.known:
                result[customer] = self.invoices.get(customer, CustomerBilling(customer=customer))
        return result


def migrate_file(path: Path) -> None:
    """Apply the repository's migrations to the SQLite file at ``path``."""

    async def run() -> None:
        async with SqliteDatabase(path) as db:
            await migrate(db, MIGRATIONS)

    asyncio.run(run())


def seed_cloudflare(sim: CloudflareSim, specs: Specs) -> dict[str, str]:
    """Projects, DNS-pointed hostnames and their routing entries (advance the clock after).

    Returns the custom hostname id of every hostname, by name.
    """
    sim.ensure_projects(sorted({site.spec.pages_project for site in specs.sites.values()}))
    namespace = sim.kv.create(ROUTES_NAMESPACE)
    ids: dict[str, str] = {}
    for name, site in sorted(specs.sites.items()):
        entry = RouteEntry(
            action=ROUTE_SERVE, tenant=site.spec.tenant, site=name, project=site.spec.pages_project
        )
        for domain in site.spec.domains:
            sim.point_dns(domain.canonical)
            made = sim.add_hostname(domain.canonical, ssl_method=domain.ssl.method.value)
            ids[domain.canonical] = str(made["id"])
            sim.kv.put(
                namespace,
                domain.canonical,
                Entry(value=entry.value().encode(), metadata=entry.as_json()),
            )
    return ids


def record_hostname_ids(path: Path, ids: Mapping[str, str]) -> None:
    """Write each hostname's Cloudflare id into its ``domains`` row, as an apply would have."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "UPDATE domains SET custom_hostname_id = ? WHERE domain = ?",
                [(ident, name) for name, ident in ids.items()],
            )
    finally:
        connection.close()


def seed_deployment(sim: CloudflareSim, project: str, *, site: str, version: int) -> str:
    """A tagged production deployment of ``site`` at ``version`` (succeeds as the clock runs)."""
    tag = DeploymentTag(site=site, version=version, publish=f"seed{version:08d}")
    with sim.lock:
        pages_project = sim.pages.project(project)
        form = {
            "manifest": "{}",
            "branch": pages_project.production_branch,
            "commit_message": tag.commit_message(),
        }
        return sim.pages.create_deployment(pages_project, form, [], sim.clock.now()).id


def set_live(path: Path, site: str, *, version: int, deployment_id: str) -> None:
    """Make ``version`` (with ``deployment_id``) the live production row of ``site`` in D1."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(
                "UPDATE publish_versions SET status = 'superseded' WHERE site_id = ? "
                "AND environment = 'production' AND status = 'live'",
                (site,),
            )
            connection.execute(
                "INSERT OR IGNORE INTO site_versions (site_id, version_number, content_json) "
                "VALUES (?, ?, ?)",
                (site, version, json.dumps(SNAPSHOT)),
            )
            connection.execute(
                "INSERT INTO publish_versions (site_id, version_number, environment, status, "
                "deployment_id, created_at) VALUES (?, ?, 'production', 'live', ?, ?)",
                (site, version, deployment_id, STAMP),
            )
    finally:
        connection.close()


def seed_d1(path: Path, specs: Specs, *, stripe_known: bool = True) -> None:
    """Converged ledger rows for every tenant, site and domain (the file must be migrated)."""
    content = json.dumps(SNAPSHOT)
    tenants = []
    accounts = []
    for name, tenant in sorted(specs.tenants.items()):
        spec = tenant.spec
        tenants.append((name, spec.display_name, spec.policy, spec.whatsapp, STAMP))
        digest = billing_digest(CustomerBilling(customer=spec.stripe.customer))
        accounts.append(
            (f"ba_{name}", name, spec.stripe.customer, digest if stripe_known else None)
        )
    sites = []
    versions = []
    publishes = []
    domains = []
    for name, site in sorted(specs.sites.items()):
        site_spec = site.spec
        preview = site_spec.preview.version if site_spec.preview is not None else None
        sites.append(
            (
                name,
                site_spec.tenant,
                name,
                site_spec.pages_project,
                site_spec.production.version,
                preview,
            )
        )
        wanted = [("production", site_spec.production.version)]
        if preview is not None:
            wanted.append(("preview", preview))
        for env, version in wanted:
            versions.append((name, version, content))
            publishes.append((name, version, env, f"dep-{name}-{env}-{version}", STAMP))
        for domain in site_spec.domains:
            domains.append(
                (
                    f"dom_{domain.canonical}",
                    name,
                    site_spec.tenant,
                    domain.canonical,
                    domain.ssl.method.value,
                    STAMP,
                )
            )
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO tenants (id, name, status, billing_policy, whatsapp_phone, "
                "status_changed_at) VALUES (?, ?, 'active', ?, ?, ?)",
                tenants,
            )
            connection.executemany(
                "INSERT INTO billing_accounts (id, tenant_id, provider_customer_id, "
                "mirror_digest) VALUES (?, ?, ?, ?)",
                accounts,
            )
            connection.executemany(
                "INSERT INTO sites (id, tenant_id, name, pages_project, production_version, "
                "preview_version) VALUES (?, ?, ?, ?, ?, ?)",
                sites,
            )
            connection.executemany(
                "INSERT OR IGNORE INTO site_versions (site_id, version_number, content_json) "
                "VALUES (?, ?, ?)",
                versions,
            )
            connection.executemany(
                "INSERT INTO publish_versions (site_id, version_number, environment, status, "
                "deployment_id, created_at) VALUES (?, ?, ?, 'live', ?, ?)",
                publishes,
            )
            connection.executemany(
                "INSERT INTO domains (id, site_id, tenant_id, domain, status, ssl_status, "
                "ssl_method, status_since) "
                "VALUES (?, ?, ?, ?, 'active', 'active', ?, ?)",
                domains,
            )
    finally:
        connection.close()


def converge(sim: CloudflareSim, path: Path, specs: Specs) -> None:
    """Migrate ``path``, seed D1 and the simulator, and let the hostnames become active."""
    migrate_file(path)
    seed_d1(path, specs)
    record_hostname_ids(path, seed_cloudflare(sim, specs))
    sim.clock.advance(600)
