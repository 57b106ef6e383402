"""Golden-file scenarios for the plan renderers: literal specs and observations at a fixed NOW.

Read by ``tests/core/test_golden.py``, which plans each scenario with ``derive`` +
``build_plan`` and compares the text, JSON and Markdown renderings with the files under
``tests/core/golden/<scenario>/``. Every input is written out here (through the literal
builders of ``support/core.py``): no I/O, no clock, no randomness, so a scenario always plans
the same bytes.

The base world is one tenant, ``acme`` (policy ``standard``: grace 3 days, hard lock at 14,
dunning FAIL_IMMEDIATE/D3/D7), with one site, ``acme-home``, live at version 2 on
``www.acme-home.com``, billing mirrored and nothing owed. Each scenario changes one thing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.core.desired import derive
from reconciler.core.facts import CustomerBilling, Invoice
from reconciler.core.observed import (
    BuildPreview,
    DunningRecord,
    Observed,
    ObservedHostname,
    ObservedProject,
    PublishRecord,
    SiteLedger,
    Source,
    TenantRecord,
    billing_digest,
)
from reconciler.core.plan import Plan, PlanSettings, build_plan
from reconciler.core.render import Rate
from reconciler.core.routing import RouteEntry
from reconciler.spec.load import Specs

from support.core import (
    DAY,
    NOW,
    build_preview,
    deployment,
    hostname,
    invoice,
    project,
    served,
    site_yaml,
    specs_from,
    suspended,
    tenant_yaml,
)

REVISION = "3f9c2b7e1d4a6c8b0e2f4a6c8d0b2e4f6a8c0d2e"
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
    soft: "{tenant_name}: invoice {invoice_id} is {days_past_due} days late;
      hard lock on {hard_lock_date}"
  performance_budget: {max_js_kb: 100, max_css_kb: 50, max_third_party_scripts: 2}
  domains: {validation_timeout: 24h, max_recreates: 2}
  suspension_origin: suspended.sitebuilder.example
"""
RATES: Mapping[str, Rate] = {"cloudflare": Rate(requests=1200, period=300)}
SUSPENDED = "suspended.sitebuilder.example"
INVOICE = "in_1QbR7sAcme0001"


def deployment_id(site: str, version: int) -> str:
    """A Cloudflare-looking deployment id (UUID shape), fixed per site and version."""
    digest = hashlib.sha256(f"{site}:{version}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


@dataclass(frozen=True)
class SiteWorld:
    """What the world shows for one site: its project, its D1 ledger and its hostnames."""

    project: ObservedProject
    ledger: SiteLedger | None
    hostnames: tuple[ObservedHostname, ...]
    routes: Mapping[str, RouteEntry]


def site_world(
    name: str,
    *,
    tenant: str = "acme",
    live: int | None = 2,
    deployed: tuple[int, ...] | None = None,
    hosts: tuple[str, ...] | None = None,
    origin: str | None = None,
    versions: frozenset[int] | None = None,
) -> SiteWorld:
    """A site serving version ``live`` from its own deployment, older versions still deployed.

    ``deployed`` lists the versions with a successful production deployment (default 1..live);
    ``hosts`` its active, owned custom hostnames (default ``www.<name>.com``), each routed to
    the site by the routing table, or to the suspension page when ``origin`` is the policy's
    suspension origin (the tenant is hard-locked).
    """
    locked = origin == SUSPENDED
    deployed = deployed if deployed is not None else tuple(range(1, (live or 0) + 1))
    hosts = hosts if hosts is not None else (f"www.{name}.com",)
    deployments = tuple(
        deployment(deployment_id(name, v), site=name, version=v, at=NOW - (30 - v) * DAY)
        for v in deployed
    )
    serving = deployment_id(name, live) if live is not None else None
    ledger = None
    if live is not None or versions is not None:
        rows: dict[str, PublishRecord] = {}
        if live is not None:
            rows["production"] = PublishRecord(
                site=name,
                environment="production",
                version=live,
                status="live",
                deployment_id=serving,
                attempts=1,
                error_message=None,
                created_at=NOW - (30 - live) * DAY,
            )
        ledger = SiteLedger(
            site=name,
            live=rows,
            latest=dict(rows),
            versions=versions if versions is not None else frozenset(range(1, (live or 0) + 2)),
        )
    return SiteWorld(
        project=project(name, serving=serving, deployments=deployments),
        ledger=ledger,
        hostnames=tuple(
            hostname(h, site=name, tenant=tenant, since=NOW - 20 * DAY, locked=locked)
            for h in hosts
        ),
        routes=suspended(*hosts, tenant=tenant)
        if locked
        else served(*hosts, site=name, tenant=tenant),
    )


def world(
    *sites: SiteWorld,
    access: Mapping[str, str] | None = None,
    billing: Mapping[str, CustomerBilling] | None = None,
    mirror: Mapping[str, str] | None = None,
    extra_hostnames: tuple[ObservedHostname, ...] = (),
    **overrides: object,
) -> Observed:
    """An observation of ``sites``; billing defaults to nothing owed, mirrored in D1.

    ``access`` maps tenants to their D1 access (default ``acme`` active); ``mirror`` defaults
    to the digest of ``billing``, i.e. a mirror in sync.
    """
    sites = sites or (site_world("acme-home"),)
    access = access if access is not None else {"acme": "active"}
    billing = billing if billing is not None else {"cus_acme": CustomerBilling("cus_acme")}
    if mirror is None:
        mirror = {customer: billing_digest(facts) for customer, facts in billing.items()}
    hostnames = {h.hostname: h for s in sites for h in s.hostnames}
    hostnames.update({h.hostname: h for h in extra_hostnames})
    fields: dict[str, object] = {
        "at": NOW,
        "projects": {s.project.name: s.project for s in sites},
        "ledger": {s.ledger.site: s.ledger for s in sites if s.ledger is not None},
        "hostnames": dict(sorted(hostnames.items())),
        "routes": dict(sorted((k, v) for s in sites for k, v in s.routes.items())),
        "tenants": {name: TenantRecord(name=name, access=a) for name, a in access.items()},
        "billing": dict(billing),
        "billing_mirror": dict(mirror),
    }
    fields.update(overrides)
    return Observed(**fields)  # type: ignore[arg-type]


def acme_specs(*sites: str, revision: str | None = REVISION) -> Specs:
    """The ``acme`` tenant with the given Site documents (default: acme-home at version 2)."""
    texts = sites or (site_yaml("acme-home"),)
    by_name = {text.split("metadata: {name: ", 1)[1].split("}", 1)[0]: text for text in texts}
    return specs_from(
        tenants={"acme": tenant_yaml("acme")}, sites=by_name, revision=revision, policy=POLICY
    )


def overdue(days: float, *, amount: int = 2900) -> dict[str, CustomerBilling]:
    """acme owes one open invoice that became overdue ``days`` days before NOW."""
    owed: Invoice = invoice("cus_acme", days=days, amount=amount, ident=INVOICE)
    return {"cus_acme": CustomerBilling("cus_acme", open_invoices=(owed,))}


def sent(*steps: str) -> dict[tuple[str, str], DunningRecord]:
    """Dunning steps of INVOICE already logged as sent in D1."""
    return {(INVOICE, step): DunningRecord(INVOICE, step, "sent") for step in steps}


@dataclass(frozen=True)
class Scenario:
    """Literal inputs of one plan: specs, observation and planner settings."""

    name: str
    title: str
    specs: Specs
    observed: Observed
    settings: PlanSettings = field(default_factory=PlanSettings)
    formats: tuple[str, ...] = ("plan.txt", "plan.json", "plan.md")

    def plan(self) -> Plan:
        """derive + build_plan at NOW, with the observation's billing facts."""
        desired = derive(self.specs, self.observed.billing, now=NOW)
        return build_plan(desired, self.observed, self.settings)


# --- the scenarios ---------------------------------------------------------------------------


def converged() -> Scenario:
    return Scenario("converged", "the world matches the specs", acme_specs(), world())


def new_site() -> Scenario:
    shop = site_world("acme-shop", live=None, hosts=(), versions=frozenset({1, 2}))
    return Scenario(
        "new_site",
        "a new site with a production and a preview version and one domain",
        acme_specs(
            site_yaml("acme-home"),
            site_yaml("acme-shop", version=1, preview=2, domains=("shop.acmebakery.com",)),
        ),
        world(
            site_world("acme-home"),
            shop,
            builds=_builds(build_preview("acme-shop", 1), build_preview("acme-shop", 2)),
        ),
    )


def version_bump() -> Scenario:
    return Scenario(
        "version_bump",
        "acme-home moves from version 2 to 3, which has never been deployed",
        acme_specs(site_yaml("acme-home", version=3)),
        world(builds=_builds(build_preview("acme-home", 3, js_kb=64, css_kb=18))),
    )


def revert() -> Scenario:
    return Scenario(
        "revert",
        "the spec goes back from version 3 to 2, whose deployment still exists",
        acme_specs(site_yaml("acme-home", version=2)),
        world(site_world("acme-home", live=3)),
    )


def domain_added() -> Scenario:
    return Scenario(
        "domain_added",
        "acme-home gains the apex domain, validated by TXT record",
        acme_specs(site_yaml("acme-home", domains=("www.acme-home.com", ("acme-home.com", "txt")))),
        world(),
    )


def _removed(deletion: str) -> Scenario:
    home = site_world("acme-home", hosts=("www.acme-home.com", "old.acme-home.com"))
    return Scenario(
        f"domain_removed_{deletion}",
        f"old.acme-home.com is removed from the spec; deletion_policy: {deletion}",
        acme_specs(site_yaml("acme-home", deletion=deletion)),
        world(home),
    )


def domain_removed_retain() -> Scenario:
    return _removed("retain")


def domain_removed_delete() -> Scenario:
    return _removed("delete")


def past_due_day_0() -> Scenario:
    return Scenario(
        "past_due_day_0",
        "a payment failed today (webhook missed): mirror billing and send the first message",
        acme_specs(),
        world(billing=overdue(0), mirror={}),
    )


def past_due_day_4() -> Scenario:
    return Scenario(
        "past_due_day_4",
        "first seen 4 days late: soft lock, send D3 and skip the first message",
        acme_specs(),
        world(billing=overdue(4.5), mirror={}),
    )


def past_due_day_15() -> Scenario:
    facts = overdue(15.2)
    home = site_world("acme-home", hosts=("acme-home.com", "www.acme-home.com"))
    return Scenario(
        "past_due_day_15",
        "15 days late, every message sent and soft-locked: hard lock, suspend the hostnames",
        acme_specs(site_yaml("acme-home", domains=("www.acme-home.com", "acme-home.com"))),
        world(
            home,
            billing=facts,
            access={"acme": "soft_locked"},
            dunning=sent("FAIL_IMMEDIATE", "D3", "D7"),
        ),
    )


def hard_locked_publish() -> Scenario:
    facts = overdue(20)
    home = site_world("acme-home", origin=SUSPENDED)
    return Scenario(
        "hard_locked_publish",
        "a version bump for a tenant that is hard-locked already",
        acme_specs(site_yaml("acme-home", version=3)),
        world(
            home,
            billing=facts,
            access={"acme": "hard_locked"},
            dunning=sent("FAIL_IMMEDIATE", "D3", "D7"),
        ),
    )


def paid_still_locked() -> Scenario:
    paid = {"cus_acme": CustomerBilling("cus_acme")}
    stale = {"cus_acme": billing_digest(overdue(20)["cus_acme"])}
    home = site_world("acme-home", hosts=("acme-home.com", "www.acme-home.com"), origin=SUSPENDED)
    return Scenario(
        "paid_still_locked",
        "the invoice was paid but D1 still has the tenant hard-locked",
        acme_specs(site_yaml("acme-home", domains=("www.acme-home.com", "acme-home.com"))),
        world(home, billing=paid, mirror=stale, access={"acme": "hard_locked"}),
    )


def budget_exceeded() -> Scenario:
    scripts = (
        "https://www.googletagmanager.com/gtag/js?id=G-1",
        "https://connect.facebook.net/en_US/fbevents.js",
        "https://widget.intercom.io/widget/abc123",
    )
    return Scenario(
        "budget_exceeded",
        "version 3 builds over the JS, CSS and third-party script budgets",
        acme_specs(site_yaml("acme-home", version=3, scripts=scripts)),
        world(builds=_builds(build_preview("acme-home", 3, js_kb=312, css_kb=64, scripts=3))),
    )


def incomplete_hostnames() -> Scenario:
    home = site_world("acme-home", hosts=("www.acme-home.com", "old.acme-home.com"))
    return Scenario(
        "incomplete_hostnames",
        "listing custom hostnames failed on page 3: no creates, no deletes; publishes go on",
        acme_specs(
            site_yaml(
                "acme-home",
                version=3,
                domains=("www.acme-home.com", "shop.acme-home.com"),
                deletion="delete",
            )
        ),
        world(
            home,
            builds=_builds(build_preview("acme-home", 3)),
            incomplete={Source.HOSTNAMES: "GET custom_hostnames page 3: HTTP 503 after 4 attempts"},
        ),
    )


def unmanaged_hostname() -> Scenario:
    legacy = hostname(
        "legacy.example.org",
        site=None,
        tenant=None,
        owned=False,
        origin="legacy-lb.example.org",
        deletion_policy=None,
    )
    return Scenario(
        "unmanaged_hostname",
        "a hostname made by hand, without our marker, that no spec claims",
        acme_specs(site_yaml("acme-home", deletion="delete")),
        world(extra_hostnames=(legacy,)),
    )


def mass_deletion() -> Scenario:
    campaign = tuple(f"promo{i:02d}.acme-home.com" for i in range(1, 13))
    home = site_world("acme-home", hosts=("www.acme-home.com", *campaign))
    return Scenario(
        "mass_deletion",
        "12 campaign domains are removed at once with deletion_policy: delete",
        acme_specs(site_yaml("acme-home", deletion="delete")),
        world(home),
    )


LARGE_SITES = 400
LARGE_TENANTS = 20


def large_fleet() -> Scenario:
    """400 sites over 20 tenants, each bumped a version and given a new domain."""
    tenants = {f"t{t:02d}": tenant_yaml(f"t{t:02d}") for t in range(1, LARGE_TENANTS + 1)}
    sites: dict[str, str] = {}
    worlds: list[SiteWorld] = []
    builds: list[BuildPreview] = []
    for index in range(LARGE_SITES):
        tenant = f"t{index % LARGE_TENANTS + 1:02d}"
        name = f"{tenant}-site{index:03d}"
        sites[name] = site_yaml(
            name, tenant=tenant, version=3, domains=(f"www.{name}.com", f"shop.{name}.com")
        )
        worlds.append(site_world(name, tenant=tenant))
        builds.append(build_preview(name, 3))
    billing = {f"cus_{t}": CustomerBilling(f"cus_{t}") for t in tenants}
    return Scenario(
        "large_fleet",
        "400 sites, each with a publish and a new domain: the PR comment is truncated",
        specs_from(tenants=tenants, sites=sites, revision=REVISION, policy=POLICY),
        world(
            *worlds,
            access=dict.fromkeys(tenants, "active"),
            billing=billing,
            builds=_builds(*builds),
        ),
        formats=("plan.md",),
    )


def _builds(*previews: BuildPreview) -> dict[tuple[str, int], BuildPreview]:
    return {(p.site, p.version): p for p in previews}


SCENARIOS: Mapping[str, Callable[[], Scenario]] = {
    "converged": converged,
    "new_site": new_site,
    "version_bump": version_bump,
    "revert": revert,
    "domain_added": domain_added,
    "domain_removed_retain": domain_removed_retain,
    "domain_removed_delete": domain_removed_delete,
    "past_due_day_0": past_due_day_0,
    "past_due_day_4": past_due_day_4,
    "past_due_day_15": past_due_day_15,
    "hard_locked_publish": hard_locked_publish,
    "paid_still_locked": paid_still_locked,
    "budget_exceeded": budget_exceeded,
    "incomplete_hostnames": incomplete_hostnames,
    "unmanaged_hostname": unmanaged_hostname,
    "mass_deletion": mass_deletion,
    "large_fleet": large_fleet,
}
"""Scenario name (= golden directory) -> a function building its literal inputs."""
