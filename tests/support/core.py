"""Literal builders for core tests: specs, billing facts and observations without any I/O."""

from __future__ import annotations

from typing import Any

from reconciler.core.facts import CustomerBilling, Invoice
from reconciler.core.observed import (
    BuildPreview,
    ObservedDeployment,
    ObservedHostname,
    ObservedProject,
    PublishRecord,
    SiteLedger,
    domain_status,
)
from reconciler.core.routing import ROUTE_SERVE, ROUTE_SUSPEND, RouteEntry
from reconciler.spec.load import SourceFile, Specs, load_files

DAY = 86400.0
NOW = 1_800_000_000.0
SUSPENSION_ORIGIN = "suspended.sitebuilder.example"  # the POLICY's suspension_origin

POLICY = """\
apiVersion: sitebuilder/v1
kind: BillingPolicy
metadata: {name: standard}
spec:
  grace_days: 3
  hard_lock_days: 14
  dunning:
    - {code: FAIL_IMMEDIATE, day: 0, template: first}
    - {code: D3, day: 3, template: soft}
    - {code: D7, day: 7, template: soft}
  templates:
    first: "Hi {tenant_name}, your payment of {amount_due} failed. Pay: {invoice_url}"
    soft: "{tenant_name}: invoice {invoice_id} is {days_past_due} days late; \
      hard lock on {hard_lock_date}"
  performance_budget: {max_js_kb: 100, max_css_kb: 50, max_third_party_scripts: 2}
  domains: {validation_timeout: 24h, max_recreates: 2}
  suspension_origin: suspended.sitebuilder.example
"""

TENANT = """\
apiVersion: sitebuilder/v1
kind: Tenant
metadata: {{name: {name}}}
spec:
  display_name: {display}
  policy: standard
  stripe: {{customer: cus_{name}}}
  whatsapp: "+5511912345678"
{extra}"""

SITE = """\
apiVersion: sitebuilder/v1
kind: Site
metadata: {{name: {name}}}
spec:
  tenant: {tenant}
  pages_project: {name}
  production: {{version: {version}}}
  deletion_policy: {deletion}
  domains:
{domains}"""


def specs(
    *,
    sites: dict[str, dict[str, Any]] | None = None,
    tenants: dict[str, str] | None = None,
) -> Specs:
    """Build validated specs from a compact description.

    ``sites`` maps a site name to {"tenant", "version", "domains": [...], "deletion"};
    ``tenants`` maps a tenant name to extra YAML lines for its spec (e.g. an access override).
    """
    tenants = tenants if tenants is not None else {"acme": ""}
    sites = sites if sites is not None else {"acme-home": {}}
    files = [("specs/policies/standard.yaml", POLICY)]
    for name, extra in tenants.items():
        files.append(
            (
                f"specs/tenants/{name}.yaml",
                TENANT.format(name=name, display=name.title(), extra=extra),
            )
        )
    for name, options in sites.items():
        domains = options.get("domains", [f"www.{name}.com"])
        lines = "".join(f"    - hostname: {d}\n" for d in domains) or "    []\n"
        if not domains:
            lines = ""
        text = SITE.format(
            name=name,
            tenant=options.get("tenant", "acme"),
            version=options.get("version", 2),
            deletion=options.get("deletion", "retain"),
            domains=lines,
        )
        if not domains:
            text = text.replace("  domains:\n", "  domains: []\n")
        files.append((f"specs/sites/{name}.yaml", text))
    return load_files([SourceFile(path=p, read=_reader(t)) for p, t in files], revision="c0ffee")


def _reader(text: str) -> Any:
    data = text.encode()
    return lambda _limit: data


def invoice(customer: str, *, days: float, amount: int = 2900, ident: str | None = None) -> Invoice:
    """An open invoice that became overdue ``days`` days before NOW."""
    return Invoice(
        id=ident or f"in_{customer}",
        customer=customer,
        subscription=f"sub_{customer}",
        status="open",
        amount_due=amount,
        currency="usd",
        created=NOW - days * DAY,
        finalized_at=NOW - days * DAY,
        hosted_invoice_url=f"https://pay.example/{customer}",
    )


def billing(*invoices: Invoice, customer: str = "cus_acme") -> dict[str, CustomerBilling]:
    return {customer: CustomerBilling(customer=customer, open_invoices=tuple(invoices))}


def deployment(
    ident: str, *, site: str = "acme-home", version: int, status: str = "success", at: float = 0.0
) -> ObservedDeployment:
    return ObservedDeployment(
        id=ident,
        environment="production",
        status=status,
        stage="deploy",
        created_on=at,
        site=site,
        version=version,
        commit="abc",
    )


def project(
    name: str = "acme-home",
    *,
    serving: str | None = None,
    deployments: tuple[ObservedDeployment, ...] = (),
) -> ObservedProject:
    return ObservedProject(
        name=name,
        subdomain=f"{name}.pages.dev",
        production_deployment_id=serving,
        deployments=deployments,
    )


def ledger(
    site: str = "acme-home",
    *,
    live: int | None,
    deployment_id: str | None = None,
    latest: PublishRecord | None = None,
    versions: frozenset[int] = frozenset(),
) -> SiteLedger:
    live_rows = {}
    if live is not None:
        live_rows["production"] = PublishRecord(
            site=site,
            environment="production",
            version=live,
            status="live",
            deployment_id=deployment_id,
            attempts=1,
            error_message=None,
            created_at=0.0,
        )
    latest_rows = {"production": latest} if latest is not None else dict(live_rows)
    return SiteLedger(site=site, live=live_rows, latest=latest_rows, versions=versions)


def hostname(
    name: str,
    *,
    site: str | None = "acme-home",
    tenant: str | None = "acme",
    owned: bool = True,
    status: str = "active",
    ssl_status: str = "active",
    origin: str | None = None,
    since: float = NOW - DAY,
    recreates: int = 0,
    deletion_policy: str | None = "retain",
    recorded: bool | None = None,
    locked: bool = False,
) -> ObservedHostname:
    """An observed custom hostname; owned ones come with a D1 ``domains`` row that agrees.

    ``recorded`` False leaves the hostname without a row (default: a row when ``owned``); the
    row records the suspension status when ``locked`` (its tenant is hard-locked).
    """
    row = owned if recorded is None else recorded
    suspended = locked or origin == SUSPENSION_ORIGIN
    return ObservedHostname(
        id=f"id-{name}",
        hostname=name,
        status=status,
        ssl_status=ssl_status,
        ssl_method="http",
        origin=origin,
        owned=owned,
        site=site,
        tenant=tenant,
        deletion_policy=deletion_policy,
        created_at=since,
        status_since=since,
        recreate_count=recreates,
        recorded_status=domain_status(status, ssl_status, suspended=suspended) if row else None,
        recorded_ssl_status=ssl_status if row else None,
        recorded_id=f"id-{name}" if row else None,
        recorded_origin=origin if row else None,
        recorded_site=site if row else None,
    )


def served(
    *names: str, site: str = "acme-home", tenant: str = "acme", project: str | None = None
) -> dict[str, RouteEntry]:
    """Routing-table entries serving ``site`` (its Pages project) for each hostname."""
    entry = RouteEntry(action=ROUTE_SERVE, tenant=tenant, site=site, project=project or site)
    return dict.fromkeys(names, entry)


def suspended(*names: str, tenant: str = "acme") -> dict[str, RouteEntry]:
    """Routing-table entries serving the suspension page for each hostname."""
    return dict.fromkeys(names, RouteEntry(action=ROUTE_SUSPEND, tenant=tenant))


# --- richer literal specs (golden scenarios) ------------------------------------------------

WHATSAPP = "+5511912345678"


def tenant_yaml(
    name: str,
    *,
    display: str | None = None,
    customer: str | None = None,
    whatsapp: str = WHATSAPP,
    access: str | None = None,
    access_reason: str | None = None,
) -> str:
    """One Tenant document on the ``standard`` policy; ``customer`` defaults to ``cus_<name>``."""
    lines = [
        "apiVersion: sitebuilder/v1",
        "kind: Tenant",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  display_name: {display or name.title()}",
        "  policy: standard",
        f"  stripe: {{customer: {customer or 'cus_' + name}}}",
        f'  whatsapp: "{whatsapp}"',
    ]
    if access is not None:
        lines.append(f"  access: {access}")
    if access_reason is not None:
        lines.append(f'  access_reason: "{access_reason}"')
    return "\n".join(lines) + "\n"


def site_yaml(
    name: str,
    *,
    tenant: str = "acme",
    version: int = 2,
    preview: int | None = None,
    domains: tuple[str | tuple[str, str], ...] | None = None,
    deletion: str = "retain",
    scripts: tuple[str, ...] = (),
) -> str:
    """One Site document; a domain is a hostname or a (hostname, ssl method) pair.

    ``domains`` defaults to ``www.<name>.com``; the Pages project has the site's name.
    """
    domains = domains if domains is not None else (f"www.{name}.com",)
    lines = [
        "apiVersion: sitebuilder/v1",
        "kind: Site",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  tenant: {tenant}",
        f"  pages_project: {name}",
        f"  production: {{version: {version}}}",
    ]
    if preview is not None:
        lines.append(f"  preview: {{version: {preview}}}")
    if domains:
        lines.append("  domains:")
        for domain in domains:
            if isinstance(domain, tuple):
                lines.append(f"    - hostname: {domain[0]}")
                lines.append(f"      ssl: {{method: {domain[1]}}}")
            else:
                lines.append(f"    - hostname: {domain}")
    else:
        lines.append("  domains: []")
    if scripts:
        lines.append("  scripts:")
        lines.extend(f"    - {url}" for url in scripts)
    lines.append(f"  deletion_policy: {deletion}")
    return "\n".join(lines) + "\n"


def specs_from(
    *,
    tenants: dict[str, str],
    sites: dict[str, str],
    revision: str | None = "c0ffee",
    policy: str = POLICY,
) -> Specs:
    """Validated specs from Tenant and Site YAML texts by name, plus the ``standard`` policy."""
    files = [("specs/policies/standard.yaml", policy)]
    files.extend((f"specs/tenants/{name}.yaml", text) for name, text in sorted(tenants.items()))
    files.extend((f"specs/sites/{name}.yaml", text) for name, text in sorted(sites.items()))
    return load_files([SourceFile(path=p, read=_reader(t)) for p, t in files], revision=revision)


def build_preview(
    site: str,
    version: int,
    *,
    js_kb: int = 40,
    css_kb: int = 12,
    scripts: int = 0,
    content_hash: str | None = None,
    error: str | None = None,
) -> BuildPreview:
    """An in-memory build of ``site`` at ``version`` (within the standard budget by default)."""
    return BuildPreview(
        site=site,
        version=version,
        content_hash=content_hash or f"{site}-v{version}",
        js_kb=js_kb,
        css_kb=css_kb,
        third_party_scripts=scripts,
        error=error,
    )
