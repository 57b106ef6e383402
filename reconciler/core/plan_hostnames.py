"""plan_hostnames: the planner's hostname area: create, update, retry, recreate, delete, record.

Called by :func:`reconciler.core.plan.build_plan` once per plan, after the tenants and sites
(rules 2, 3, 5 and 7 of ``core.plan``). Fills a :class:`~reconciler.core.plan_builder.PlanBuilder`
with custom hostname actions and their D1 ``domains`` records, notes unmanaged and retained
hostnames, and caps deletions by the blast radius (``core.policy.deletion_blocked``). Pure.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from reconciler.core.desired import Desired, DesiredHostname, DesiredSite
from reconciler.core.hostname_dns import dns_finding, stuck_reason
from reconciler.core.hostname_state import hostname_failed, hostname_pending
from reconciler.core.levers import LeverKind
from reconciler.core.observed import ObservedHostname, Source, domain_status
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import Blocker, PlanBuilder
from reconciler.core.plan_hostname_levers import plan_hostname_lever, plan_ssl_timeout
from reconciler.core.policy import APPROVAL_TRAILER, Deletion, TenantSize, deletion_blocked
from reconciler.spec.models import Kind


def plan_hostnames(builder: PlanBuilder) -> None:
    """Plan every declared hostname in scope, then the undeclared ones and their D1 rows.

    Args:
        builder: The collector of this plan, after tenants and sites (lock dependencies).
    """
    gap = builder.incomplete(Source.HOSTNAMES)
    claimed: set[str] = set()
    scope = builder.observed.scope
    for site in builder.desired.sites.values():
        for hostname in site.hostnames:
            claimed.add(hostname.hostname)
            if scope is not None and site.name not in scope:
                continue
            _plan_hostname(builder, site, hostname, gap)
    if builder.desired.scope is not None:
        # A scoped derive holds the scoped sites only: a hostname none of them declares
        # may still be declared by another site (moved there), so ask the specs.
        unclaimed = {
            name
            for name, have in builder.observed.hostnames.items()
            if name not in claimed and (scope is None or have.site in scope)
        }
        unclaimed |= {
            name
            for name, row in builder.observed.unlisted_domains.items()
            if name not in claimed and (scope is None or row.site in scope)
        }
        claimed |= _declared(builder.desired, unclaimed)
    deletions: list[tuple[ObservedHostname, str | None]] = []
    unclaimed_seen = [(n, h) for n, h in builder.observed.hostnames.items() if n not in claimed]
    for name, observed in sorted(unclaimed_seen):
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
            builder.note(
                target,
                tenant=observed.tenant,
                site=observed.site,
                category="retained",
                reason=(
                    f"{why}; kept because its deletion_policy is retain (delete it by hand, "
                    "or set deletion_policy: delete)"
                ),
            )
            continue
        deletions.append((observed, why))
    _plan_deletions(builder, deletions, gap)
    if gap is None and builder.incomplete(Source.D1) is None:
        _plan_deleted_records(builder, claimed)


def _plan_deleted_records(builder: PlanBuilder, claimed: set[str]) -> None:
    """Rule 7: mark ``deleted`` the rows of hostnames gone from the zone that no spec keeps.

    Only rows that record a custom hostname id: a row without one never named a hostname
    in the zone (the app may write a row before the reconciler creates the hostname).
    """
    scope = builder.observed.scope
    for name, row in sorted(builder.observed.unlisted_domains.items()):
        if name in claimed or (scope is not None and row.site not in scope):
            continue  # declared: created again, and that create records the row
        if not row.custom_hostname_id:
            continue
        recorded = f"{row.status}, id {row.custom_hostname_id}"
        builder.add(
            ActionKind.RECORD_HOSTNAME,
            f"Hostname/{name}",
            tenant=row.tenant,
            site=row.site,
            before={"status": row.status, "id": row.custom_hostname_id, "origin": row.origin},
            after={"hostname": name, "site": row.site, "status": "deleted"},
            reason=(
                f"gone from the zone and in no spec, but D1 domains still records it "
                f"({recorded}): mark it deleted"
            ),
            source=None,
            cause=Cause.DRIFT,
        )


def _plan_hostname(
    builder: PlanBuilder, site: DesiredSite, want: DesiredHostname, gap: str | None
) -> None:
    planned = len(builder.actions)
    mark = builder.mark()
    _plan_hostname_change(builder, site, want, gap)
    if builder.has_levers and builder.reached_on(f"Hostname/{want.hostname}"):
        builder.attribute(mark)  # everything planned for a hostname a lever names
    if len(builder.actions) == planned:
        _plan_hostname_record(builder, site, want)


def _plan_hostname_record(builder: PlanBuilder, site: DesiredSite, want: DesiredHostname) -> None:
    """Rule 7: copy what Cloudflare shows into the hostname's D1 ``domains`` row."""
    have = builder.observed.hostnames.get(want.hostname)
    if (
        have is None
        or not have.owned
        or have.site != site.name
        or builder.incomplete(Source.D1) is not None
    ):
        return
    status = domain_status(have.status, have.ssl_status, suspended=want.suspended)
    if want.hostname in builder.route_records:
        status = have.recorded_status or status  # the write_routes action records it
    if have.recorded_status is None:
        recorded = "no row"
    else:
        differs = []
        if status != have.recorded_status:
            # a certificate stage alone is not worth a write (the next record has it)
            differs.append(
                f"{have.recorded_status} (certificate {have.recorded_ssl_status or 'none'})"
            )
        if have.recorded_id != have.id:
            differs.append(f"id {have.recorded_id or 'none'}")
        if have.recorded_origin != have.origin:
            differs.append(f"origin {have.recorded_origin or 'none'}")
        if have.recorded_site != site.name:
            differs.append(f"site {have.recorded_site or 'none'}")
        if have.dcv_txt_value and have.recorded_dcv_txt_value != have.dcv_txt_value:
            differs.append(f"DCV TXT {have.recorded_dcv_txt_value or 'none'}")
        if not differs:
            return
        recorded = ", ".join(differs)
    shown = f"{status} (status {have.status}, certificate {have.ssl_status or 'none'})"
    if recorded == "no row" or have.recorded_id != have.id:
        shown += f", id {have.id}"
    if recorded == "no row" or have.recorded_origin != have.origin:
        shown += f", origin {have.origin or 'none'}"
    builder.add(
        ActionKind.RECORD_HOSTNAME,
        f"Hostname/{want.hostname}",
        tenant=site.tenant,
        site=site.name,
        before={
            "status": have.recorded_status,
            "ssl_status": have.recorded_ssl_status,
            "id": have.recorded_id,
            "origin": have.recorded_origin,
        },
        after={
            "hostname": want.hostname,
            "site": site.name,
            "tenant": site.tenant,
            "project": site.pages_project,
            "id": have.id,
            "origin": have.origin,
            "ssl_method": have.ssl_method or want.ssl_method,
            "status": status,
            "ssl_status": have.ssl_status,
            "verification_errors": list[JsonValue](have.verification_errors),
            "verification_token": have.txt_value,
            **_dcv(have),
        },
        reason=(
            f"D1 domains records {recorded}; Cloudflare shows {shown}: record it, so the "
            "domains table reads what Cloudflare shows"
        ),
        source=builder.source(Kind.SITE, site.name, f"spec.domains[{want.position}].hostname"),
        cause=Cause.DRIFT,
    )


class _Host(NamedTuple):
    """One declared hostname being planned: what its steps share.

    A named tuple (immutable), made in a third of a frozen dataclass's time: one per
    declared hostname of the fleet.
    """

    site: DesiredSite
    want: DesiredHostname
    gap: str | None  # why the hostname listing is incomplete; None when it was read
    target: str
    builder: PlanBuilder

    @property
    def depends_on(self) -> tuple[str, ...]:
        """The tenant's lock actions, then the write of the hostname's routing entry.

        Both are planned before any hostname (``build_plan``), so reading them when an action
        is added gives what reading them first would.
        """
        locks = self.builder.tenant_actions.get(self.site.tenant, [])
        route = self.builder.route_writes.get(self.want.hostname)
        return (*locks, route) if route is not None else tuple(locks)  # plan_routes rule 2

    @property
    def source(self) -> str | None:
        """Where the hostname is declared, located when an action or a block cites it."""
        field = f"spec.domains[{self.want.position}].hostname"
        return self.builder.source(Kind.SITE, self.site.name, field)

    @property
    def block(self) -> Blocker:
        """Blocks actions on this hostname (made when one is blocked, not per hostname)."""
        return self.builder.blocker(
            self.target, tenant=self.site.tenant, site=self.site.name, source=self.source
        )

    def after(self, existing_id: str | None = None) -> dict[str, JsonValue]:
        """The executor's input (``_hostname_after``)."""
        return _hostname_after(self.site, self.want, existing_id)

    def add(
        self,
        builder: PlanBuilder,
        kind: ActionKind,
        have: ObservedHostname,
        after: dict[str, JsonValue],
        reason: str,
        *,
        cause: Cause = Cause.DRIFT,
        ordered: bool = True,
    ) -> None:
        """Add ``kind`` on the hostname in the zone (after the lock and routing when ordered)."""
        builder.add(
            kind,
            self.target,
            tenant=self.site.tenant,
            site=self.site.name,
            before=_hostname_before(have),
            after=after,
            reason=reason,
            source=self.source,
            cause=cause,
            depends_on=self.depends_on if ordered else (),
        )


def _plan_hostname_change(
    builder: PlanBuilder, site: DesiredSite, want: DesiredHostname, gap: str | None
) -> None:
    """Rules 2 and 5: create, refuse, recreate, update or re-validate one declared hostname."""
    host = _host(builder, site, want, gap)
    have = builder.observed.hostnames.get(want.hostname)
    if have is None and want.hostname in builder.route_blocked:
        host.block(
            ActionKind.CREATE_HOSTNAME,
            gate="incomplete",
            reason=(
                f"not seen in the zone, but {builder.route_blocked[want.hostname]}: it is "
                "created only after its routing entry is written"
            ),
        )
        return
    if _plan_lever(builder, host, have):
        return
    if have is None:
        _plan_create(builder, host)
    elif not have.owned:
        host.block(
            ActionKind.CREATE_HOSTNAME,
            gate="conflict",
            reason=(
                "already in the zone, and our records (D1 domains, the intent journal) do "
                "not say we created it (made by hand or by another tool): it is never "
                "changed, routed or deleted; delete it by hand to let the reconciler create it"
            ),
        )
    elif hostname_failed(have):
        _plan_failed(builder, host, have)
    elif not _plan_update(builder, host, have):
        _plan_late(builder, host, have)


def _host(builder: PlanBuilder, site: DesiredSite, want: DesiredHostname, gap: str | None) -> _Host:
    return _Host(site=site, want=want, gap=gap, target=f"Hostname/{want.hostname}", builder=builder)


def _plan_lever(builder: PlanBuilder, host: _Host, have: ObservedHostname | None) -> bool:
    """A ``retry_validation``, ``recreate`` or ``clear_stuck`` lever; True when it decided."""
    lever = builder.lever(
        host.target, LeverKind.RETRY_VALIDATION, LeverKind.RECREATE, LeverKind.CLEAR_STUCK
    )
    return lever is not None and plan_hostname_lever(
        builder,
        lever,
        host.want,
        have,
        gap=host.gap,
        after=lambda seen: host.after(seen.id),
        before=_hostname_before(have) if have is not None else None,
        failed=have is not None and hostname_failed(have),
        source=host.source,
    )


def _plan_create(builder: PlanBuilder, host: _Host) -> None:
    """A declared hostname not in the zone is created (counted as a recreation if recorded)."""
    site, want = host.site, host.want
    if host.gap is not None:
        host.block(
            ActionKind.CREATE_HOSTNAME,
            gate="incomplete",
            reason=(
                f"not seen in the zone, but {host.gap}: nothing is created until the "
                "listing succeeds"
            ),
        )
        return
    after = host.after()
    vanished = builder.observed.unlisted_domains.get(want.hostname)
    again = ""
    if vanished is not None and vanished.custom_hostname_id:
        # Recorded as created but gone (a recreation killed between its delete and
        # its create, or deleted outside the reconciler): count it as a recreation.
        after["recreate_count"] = vanished.recreate_count + 1
        again = (
            f"; D1 domains records it as {vanished.custom_hostname_id}, gone from the "
            f"zone: recreation {vanished.recreate_count + 1} of {want.max_recreates}"
        )
    suspended = (
        "; its routing entry serves the suspension page while the tenant is hard-locked"
        if want.suspended
        else ""
    )
    builder.add(
        ActionKind.CREATE_HOSTNAME,
        host.target,
        tenant=site.tenant,
        site=site.name,
        before={},
        after=after,
        reason=(
            f"listed by site {site.name} but not in the zone: create it, with its "
            f"certificate validated by {want.ssl_method.upper()}{suspended}{again}"
        ),
        source=host.source,
        cause=Cause.DRIFT if want.hostname in builder.observed.known_domains else Cause.CHANGE,
        depends_on=host.depends_on,
    )


def _plan_failed(builder: PlanBuilder, host: _Host, have: ObservedHostname) -> None:
    """A failed hostname is recreated, up to its cap; then it is stuck and re-validated."""
    want = host.want
    if have.recreate_count >= want.max_recreates:
        host.block(
            ActionKind.RECREATE_HOSTNAME,
            gate="stuck",
            reason=stuck_reason(want, have, builder.observed.cname_target),
        )
        waited = builder.desired.now - have.status_since
        if host.gap is None and waited > want.validation_timeout:
            # Stuck waits on the customer's DNS; re-check it once per timeout (one
            # PATCH, nothing deleted) so the hostname recovers once the DNS is right.
            reason = (
                f"stuck for {waited / 3600:.1f} h: re-trigger validation once per validation "
                "timeout, so it recovers as soon as the customer's DNS is right"
            )
            host.add(
                builder,
                ActionKind.RETRY_VALIDATION,
                have,
                host.after(have.id),
                reason,
                ordered=False,
            )
        return
    if host.gap is not None:
        host.block(
            ActionKind.RECREATE_HOSTNAME,
            gate="incomplete",
            reason=f"failed ({have.status}/{have.ssl_status}) but {host.gap}",
        )
        return
    after = host.after(have.id)
    after["recreate_count"] = have.recreate_count + 1
    reason = (
        f"status {have.status}, certificate {have.ssl_status}: delete and create "
        f"again (recreation {have.recreate_count + 1} of {want.max_recreates})"
    )
    host.add(builder, ActionKind.RECREATE_HOSTNAME, have, after, reason)


def _plan_update(builder: PlanBuilder, host: _Host, have: ObservedHostname) -> bool:
    """A hostname whose ssl method (or, with metadata, its site) changed is updated."""
    site, want = host.site, host.want
    method_changed = (have.ssl_method or "http") != want.ssl_method
    moved = builder.settings.custom_metadata and have.site != site.name
    if not method_changed and not moved:
        return False
    changes = []
    if method_changed:
        changes.append(f"ssl method {have.ssl_method} -> {want.ssl_method}")
    if moved:
        changes.append(f"moves from site {have.site} to {site.name} (its metadata)")
    cause = Cause.CHANGE if have.site != site.name else Cause.DRIFT
    host.add(
        builder,
        ActionKind.UPDATE_HOSTNAME,
        have,
        host.after(have.id),
        "; ".join(changes),
        cause=cause,
    )
    return True


def _plan_late(builder: PlanBuilder, host: _Host, have: ObservedHostname) -> None:
    """A certificate past ``ssl_timeout``, or a validation past its timeout, is re-triggered."""
    want, target = host.want, builder.observed.cname_target
    if (
        host.gap is None
        and have.recorded_status == "pending_ssl"
        and plan_ssl_timeout(
            builder,
            host.site,
            want,
            have,
            after=lambda seen: host.after(seen.id),
            before=_hostname_before(have),
            dns_finding=dns_finding(want, have, target),
            source=host.source,
        )
    ):
        return
    waited = builder.desired.now - have.status_since
    if not hostname_pending(have) or waited < want.validation_timeout:
        return
    reason = (
        f"pending for {waited / 3600:.1f} h, over the validation timeout of "
        f"{want.validation_timeout / 3600:g} h: re-trigger validation with the same ssl settings"
    )
    if finding := dns_finding(want, have, target):
        reason += f"; DNS check: {finding}"
    host.add(builder, ActionKind.RETRY_VALIDATION, have, host.after(have.id), reason, ordered=False)


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
            before=_hostname_before(observed),
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


def _declared(desired: Desired, names: set[str]) -> set[str]:
    """Those of ``names`` some site of the specs declares (walks the specs only if asked)."""
    if not names:
        return set()
    return {
        domain.canonical
        for site in desired.specs.sites.values()
        for domain in site.spec.domains
        if domain.canonical in names
    }


def _hostname_after(
    site: DesiredSite, want: DesiredHostname, existing_id: str | None = None
) -> dict[str, JsonValue]:
    """The executor's input for a hostname; ``existing_id`` (last key) names the one in the zone."""
    after: dict[str, JsonValue] = {
        "hostname": want.hostname,
        "site": site.name,
        "tenant": site.tenant,
        "ssl_method": want.ssl_method,
        "suspended": want.suspended,
        "deletion_policy": site.deletion_policy,
        "project": site.pages_project,  # the sites row a domains row belongs to
    }
    if existing_id is not None:
        after["id"] = existing_id
    return after


def _dcv(have: ObservedHostname) -> dict[str, JsonValue]:
    """The DCV TXT record to store in ``domains`` (only when Cloudflare shows one)."""
    if not have.dcv_txt_value:
        return {}
    return {"dcv_txt_name": have.dcv_txt_name, "dcv_txt_value": have.dcv_txt_value}


def _hostname_before(have: ObservedHostname) -> dict[str, JsonValue]:
    return {
        "id": have.id,
        "status": have.status,
        "ssl_status": have.ssl_status,
        "ssl_method": have.ssl_method,
        "site": have.site,
    }
