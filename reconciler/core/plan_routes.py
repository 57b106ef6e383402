"""plan_routes: the routing-table writes of one plan, one ``write_routes`` action per tenant.

Called by :func:`reconciler.core.plan.build_plan` after the platform and the tenants (lock
actions) and before the hostnames, so a hostname's create can depend on the write of its entry
(rule 2). Fills the :class:`~reconciler.core.plan_builder.PlanBuilder`. Pure.

Rules:

1. The desired table holds one entry per declared hostname of the sites in scope that is ours
   or not yet in the zone (``core/routing.py`` rule 1): ``serve`` its site's Pages project, or
   ``suspend`` while its tenant is hard-locked. A hostname in the zone that our records do not
   own gets no entry, so the Worker never serves a site on someone else's hostname.
2. An entry is written before its hostname is created or recreated (the create depends on the
   write): the moment Cloudflare announces the hostname, the Worker already knows its site.
3. A key the desired table does not hold is removed, unless its hostname is ours and still in
   the zone without a spec (retained, or about to be deleted: ``delete_hostname`` removes the
   key right after the hostname). Removals need complete listings of the table and the zone.
4. Writes and removals of one tenant are one action, sent as KV bulk requests of up to 10,000
   keys: a hard lock of a tenant with 500 hostnames is one request, not 500 PATCHes.
5. The action also writes the ``domains`` status its change implies (``suspended`` on a hard
   lock, the status Cloudflare shows on unlock), in one D1 batch; the hostname planner then
   plans no ``record_hostname`` for that difference alone.
6. KV is eventually consistent: the reason says the edge sees a write within about a minute.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from reconciler.core.desired import DesiredHostname, DesiredSite
from reconciler.core.observed import Source, domain_status
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.routing import (
    KV_BULK_LIMIT,
    KV_CONSISTENCY_SECONDS,
    ROUTE_SERVE,
    ROUTE_SUSPEND,
    RouteEntry,
)

__all__ = ["desired_entry", "plan_routes"]


def desired_entry(site: DesiredSite, hostname: DesiredHostname) -> RouteEntry:
    """The routing-table value a declared hostname should have (rule 1)."""
    if hostname.suspended:
        return RouteEntry(action=ROUTE_SUSPEND, tenant=site.tenant)
    return RouteEntry(
        action=ROUTE_SERVE, tenant=site.tenant, site=site.name, project=site.pages_project
    )


@dataclass(slots=True)
class _TenantRoutes:
    """What one tenant's ``write_routes`` action puts, removes and records."""

    put: dict[str, RouteEntry] = field(default_factory=dict)
    delete: set[str] = field(default_factory=set)
    records: dict[str, str] = field(default_factory=dict)
    before: dict[str, str | None] = field(default_factory=dict)
    sites: set[str] = field(default_factory=set)


def plan_routes(builder: PlanBuilder) -> None:
    """Plan every tenant's routing-table writes and removals (module rules)."""
    routes_gap = builder.incomplete(Source.ROUTES)
    hosts_gap = builder.incomplete(Source.HOSTNAMES)
    work: dict[str, _TenantRoutes] = defaultdict(_TenantRoutes)
    declared = _plan_puts(builder, work, routes_gap, hosts_gap)
    if routes_gap is None and hosts_gap is None:
        _plan_removals(builder, work, declared)
    for tenant, routes in sorted(work.items()):
        if routes.put or routes.delete:
            _add(builder, tenant, routes)


def _plan_puts(
    builder: PlanBuilder,
    work: dict[str, _TenantRoutes],
    routes_gap: str | None,
    hosts_gap: str | None,
) -> set[str]:
    """Rule 1: the entries to write; returns every hostname the scoped sites declare."""
    observed = builder.observed
    scope = observed.scope
    declared: set[str] = set()
    waiting: set[str] = set()  # tenants with an entry to write once the table can be read
    for site in builder.desired.sites.values():
        for want in site.hostnames:
            declared.add(want.hostname)
            if scope is not None and site.name not in scope:
                continue
            have = observed.hostnames.get(want.hostname)
            if have is not None and not have.owned:
                continue  # someone else's: no entry (rule 1); plan_hostnames blocks it
            if have is None and hosts_gap is not None:
                continue  # the create is blocked anyway
            if routes_gap is not None:
                builder.route_blocked[want.hostname] = routes_gap
                waiting.add(site.tenant)
                continue
            entry = desired_entry(site, want)
            current = observed.routes.get(want.hostname)
            if current == entry:
                continue
            routes = work[site.tenant]
            routes.put[want.hostname] = entry
            routes.before[want.hostname] = current.describe() if current else None
            routes.sites.add(site.name)
            if have is not None and have.recorded_status is not None:
                status = domain_status(have.status, have.ssl_status, suspended=want.suspended)
                if status != have.recorded_status:
                    routes.records[want.hostname] = status
    if routes_gap is not None:
        _block_writes(builder, routes_gap, waiting)
    return declared


def _plan_removals(
    builder: PlanBuilder, work: dict[str, _TenantRoutes], declared: set[str]
) -> None:
    """Rule 3: keys no declared hostname holds, except ours still in the zone."""
    observed = builder.observed
    scope = observed.scope
    scoped_tenants = (
        {site.tenant for name, site in builder.desired.sites.items() if name in scope}
        if scope is not None
        else None
    )
    if scope is not None:
        declared = declared | _declared_anywhere(builder, set(observed.routes) - declared)
    # Only keys that may go are sorted: a converged table's declared keys are skipped first,
    # and the zone's hostnames that are not ours are gathered once, not looked up per key.
    foreign = {name for name, have in observed.hostnames.items() if not have.owned}
    keys = [(n, e) for n, e in observed.routes.items() if n not in declared or n in foreign]
    for name, entry in sorted(keys):
        have = observed.hostnames.get(name)
        if have is not None and have.owned and name not in declared:
            continue  # retained or being deleted: delete_hostname removes the key
        if scope is not None:
            in_scope = entry.site in scope if entry.site else entry.tenant in (scoped_tenants or ())
            if not in_scope:
                continue
        routes = work[entry.tenant]
        routes.delete.add(name)
        routes.before[name] = entry.describe()
        if entry.site:
            routes.sites.add(entry.site)


def _declared_anywhere(builder: PlanBuilder, names: set[str]) -> set[str]:
    """Those of ``names`` some site of the specs declares (a scoped plan sees a few sites)."""
    if not names:
        return set()
    return {
        domain.canonical
        for site in builder.desired.specs.sites.values()
        for domain in site.spec.domains
        if domain.canonical in names
    }


def _block_writes(builder: PlanBuilder, gap: str, tenants: set[str]) -> None:
    for tenant in sorted(tenants):
        builder.block(
            ActionKind.WRITE_ROUTES,
            f"Routes/{tenant}",
            tenant=tenant,
            site=None,
            gate="incomplete",
            reason=f"{gap}: no routing entry is written or removed until the listing succeeds",
            source=None,
        )


def _add(builder: PlanBuilder, tenant: str, routes: _TenantRoutes) -> None:
    put: dict[str, JsonValue] = {
        name: dict[str, JsonValue](entry.as_json()) for name, entry in sorted(routes.put.items())
    }
    requests = -(-len(routes.put) // KV_BULK_LIMIT) + -(-len(routes.delete) // KV_BULK_LIMIT)
    depends = list(builder.tenant_actions.get(tenant, []))
    depends.extend(builder.platform_actions.values())  # plan_platform rule 1
    after: dict[str, JsonValue] = {
        "tenant": tenant,
        "put": put,
        "delete": list[JsonValue](sorted(routes.delete)),
        "records": {name: status for name, status in sorted(routes.records.items())},
    }
    platform = builder.observed.platform
    if platform is not None and platform.namespace_id is not None:
        after["namespace_id"] = platform.namespace_id  # as observed: no lookup by title
    action_id = builder.add(
        ActionKind.WRITE_ROUTES,
        f"Routes/{tenant}",
        tenant=tenant,
        site=next(iter(routes.sites)) if len(routes.sites) == 1 else None,
        before={name: value for name, value in sorted(routes.before.items())},
        after=after,
        reason=_reason(routes, requests),
        source=None,
        cause=_cause(builder, tenant, routes),
        depends_on=depends,
    )
    for name in routes.put:
        builder.route_writes[name] = action_id
    builder.route_records.update(routes.records)


def _cause(builder: PlanBuilder, tenant: str, routes: _TenantRoutes) -> Cause:
    """A change when a lock or a new hostname asks for it; drift when the table moved."""
    known = builder.observed.known_domains
    if builder.tenant_actions.get(tenant) or any(name not in known for name in routes.put):
        return Cause.CHANGE
    return Cause.DRIFT


def _reason(routes: _TenantRoutes, requests: int) -> str:
    suspend = sum(1 for e in routes.put.values() if e.action == ROUTE_SUSPEND)
    serve = len(routes.put) - suspend
    parts = []
    if serve:
        parts.append(f"route {serve} hostname{'s' if serve != 1 else ''} to their site")
    if suspend:
        parts.append(
            f"route {suspend} hostname{'s' if suspend != 1 else ''} to the suspension page"
        )
    if routes.delete:
        count = len(routes.delete)
        parts.append(f"remove {count} routing entr{'ies' if count != 1 else 'y'} (not found)")
    return (
        "; ".join(parts)
        + f" in {requests} KV bulk request{'s' if requests != 1 else ''}; the edge sees it "
        f"within about {KV_CONSISTENCY_SECONDS} s"
    )
