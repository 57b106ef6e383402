"""plan_hostname_deletions: hostnames in the zone that no spec declares: kept or deleted.

Pure; part of ``core/plan_hostnames.py``, kept apart by job (rule 3 of ``core.plan``): a
hostname our records do not say we created is noted ``unmanaged``; one whose deletion policy
is ``retain`` is noted ``retained``; the rest are deleted, within the blast radius
(``core.policy.deletion_blocked``) unless a commit trailer or ``--allow-mass-deletion``
approves more.
"""

from __future__ import annotations

from collections import defaultdict

from reconciler.core.observed import ObservedHostname
from reconciler.core.plan import ActionKind, Cause
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.plan_hostname_records import hostname_before
from reconciler.core.policy import APPROVAL_TRAILER, Deletion, TenantSize, deletion_blocked

__all__ = ["approval_hint", "plan_undeclared"]


def plan_undeclared(builder: PlanBuilder, claimed: set[str], gap: str | None) -> None:
    """Hostnames in the zone no spec declares: unmanaged, retained, or deleted (rule 3)."""
    scope = builder.observed.scope
    deletions: list[tuple[ObservedHostname, str | None]] = []
    # Only the hostnames no spec claims are sorted: a converged zone's are all claimed.
    unclaimed = [(n, h) for n, h in builder.observed.hostnames.items() if n not in claimed]
    for name, observed in sorted(unclaimed):
        target = f"Hostname/{name}"
        if scope is not None and observed.site not in scope:
            continue
        if not observed.owned:
            builder.note(
                target,
                tenant=None,
                site=None,
                category="unmanaged",
                reason=(
                    "in the zone but in no spec, and our records do not say we created it: "
                    "left alone, never deleted"
                ),
            )
            continue
        owner = builder.desired.sites.get(observed.site or "")
        policy = owner.deletion_policy if owner is not None else observed.deletion_policy
        why = (
            f"removed from site {observed.site}"
            if owner is not None
            else f"site {observed.site} is no longer in the specs"
        )
        if policy != "delete":
            reason = (
                f"{why}; kept because its deletion_policy is retain (delete it by hand, "
                "or set deletion_policy: delete)"
            )
            tenant, site = observed.tenant, observed.site
            builder.note(target, tenant=tenant, site=site, category="retained", reason=reason)
            continue
        deletions.append((observed, why))
    _plan_deletions(builder, deletions, gap)


def _plan_deletions(
    builder: PlanBuilder, deletions: list[tuple[ObservedHostname, str | None]], gap: str | None
) -> None:
    if not deletions:
        return
    cap = deletion_blocked(
        [_deletion(builder, observed) for observed, _ in deletions],
        _tenant_sizes(builder),
        builder.settings.blast_radius,
    )
    for observed, why in deletions:
        target = f"Hostname/{observed.hostname}"
        block = builder.blocker(target, tenant=observed.tenant, site=observed.site, source=None)
        if gap is not None:
            block(
                ActionKind.DELETE_HOSTNAME,
                gate="incomplete",
                reason=f"{why}, but {gap}: nothing is deleted until the listing succeeds",
            )
            continue
        approval = _approval(builder, observed)
        if cap is not None and not builder.settings.allow_mass_deletion and approval is None:
            block(
                ActionKind.DELETE_HOSTNAME,
                gate="blast_radius",
                reason=f"{why}; {cap}: nothing is deleted without an approval: "
                + approval_hint(target, observed.site),
            )
            continue
        approved = f"; {cap}, approved by {approval}" if cap is not None and approval else ""
        builder.add(
            ActionKind.DELETE_HOSTNAME,
            target,
            tenant=observed.tenant,
            site=observed.site,
            before=hostname_before(observed),
            after={
                "id": observed.id,
                "hostname": observed.hostname,
                "site": observed.site,
                "route": observed.hostname in builder.observed.routes,
            },
            reason=(
                f"{why} and its deletion_policy is delete; our records say we created it; "
                "its routing entry goes with it"
            )
            + approved,
            source=None,
            cause=Cause.CHANGE,
        )


def approval_hint(target: str, site: str | None) -> str:
    """How a human approves a deletion over the cap (docs/plan.md, "Deletion safety")."""
    if site is not None:
        names = (
            f"`{APPROVAL_TRAILER}: Site/{site}` (or one `{APPROVAL_TRAILER}: Hostname/<name>` "
            "per hostname)"
        )
    else:
        names = f"`{APPROVAL_TRAILER}: {target}`"
    return f"a commit trailer {names}, or --allow-mass-deletion"


def _approval(builder: PlanBuilder, observed: ObservedHostname) -> str | None:
    approvals = builder.settings.approved_deletions
    found = approvals.get(f"Hostname/{observed.hostname}")
    if found is None and observed.site is not None:
        found = approvals.get(f"Site/{observed.site}")
    return found


def _deletion(builder: PlanBuilder, observed: ObservedHostname) -> Deletion:
    site = observed.site
    return Deletion(
        hostname=observed.hostname,
        tenant=observed.tenant or "(none)",
        site=site,
        site_removed=site is not None and site not in builder.desired.sites,
    )


def _tenant_sizes(builder: PlanBuilder) -> dict[str, TenantSize]:
    """Each tenant's sites (in the specs, or removed but still owning hostnames) and hostnames."""
    sites: dict[str, set[str]] = defaultdict(set)
    hostnames: dict[str, int] = defaultdict(int)
    for site in builder.desired.sites.values():
        sites[site.tenant].add(site.name)
    for observed in builder.observed.hostnames.values():
        if observed.owned and observed.tenant:
            hostnames[observed.tenant] += 1
            if observed.site is not None:
                sites[observed.tenant].add(observed.site)
    return {
        tenant: TenantSize(sites=len(sites.get(tenant, ())), hostnames=hostnames.get(tenant, 0))
        for tenant in set(sites) | set(hostnames)
    }
