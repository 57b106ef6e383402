"""plan_hostnames: the planner's hostname area: create, update, retry, recreate, delete, record.

Called by :func:`reconciler.core.plan.build_plan` once per plan, after the tenants and sites
(rules 2, 3, 5 and 7 of ``core.plan``). Fills a :class:`~reconciler.core.plan_builder.PlanBuilder`
with custom hostname actions and their D1 ``domains`` records, notes unmanaged and retained
hostnames, and caps deletions by the blast radius (``core.policy.deletion_blocked``). Pure.

This module plans the declared hostnames; the undeclared ones are
``plan_hostname_deletions.py``'s, the D1 ``domains`` rows ``plan_hostname_records.py``'s and
the levers ``plan_hostname_levers.py``'s.
"""

from __future__ import annotations

from typing import NamedTuple

from reconciler.core.desired import Desired, DesiredHostname, DesiredSite
from reconciler.core.hostname_dns import dns_finding, stuck_reason
from reconciler.core.hostname_state import hostname_failed, hostname_pending
from reconciler.core.levers import LeverKind
from reconciler.core.observed import ObservedHostname, Source
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import Blocker, PlanBuilder
from reconciler.core.plan_hostname_deletions import plan_undeclared
from reconciler.core.plan_hostname_levers import plan_hostname_lever, plan_ssl_timeout
from reconciler.core.plan_hostname_records import (
    hostname_before,
    hostname_blocker,
    plan_deleted_records,
    plan_hostname_record,
)


def plan_hostnames(builder: PlanBuilder) -> None:
    """Plan every declared hostname in scope, then the undeclared ones and their D1 rows.

    Args:
        builder: The collector of this plan, after tenants and sites (lock dependencies).
    """
    gap = builder.incomplete(Source.HOSTNAMES)
    claimed: set[str] = set()
    scope = builder.observed.scope
    seen = builder.observed.hostnames
    for site in builder.desired.sites.values():
        for hostname in site.hostnames:
            claimed.add(hostname.hostname)
            if scope is not None and site.name not in scope:
                continue
            have = seen.get(hostname.hostname)
            _plan_hostname(builder, _Host(site, hostname, gap, builder), have)
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
    plan_undeclared(builder, claimed, gap)
    if gap is None and builder.incomplete(Source.D1) is None:
        plan_deleted_records(builder, claimed)


def _plan_hostname(builder: PlanBuilder, host: _Host, have: ObservedHostname | None) -> None:
    planned = len(builder.actions)
    if builder.has_levers:
        mark = builder.mark()
        _plan_hostname_change(builder, host, have)
        if builder.reached_on(host.target):
            builder.attribute(mark)  # everything planned for a hostname a lever names
    else:
        _plan_hostname_change(builder, host, have)
    if len(builder.actions) == planned:
        plan_hostname_record(builder, host.site, host.want, have)


class _Host(NamedTuple):
    """One declared hostname being planned: what its steps share.

    A named tuple over the builder: its blocker and dependencies are made when an action or a
    block needs them, not for each of the (mostly converged) hostnames of the fleet.
    """

    site: DesiredSite
    want: DesiredHostname
    gap: str | None  # why the hostname listing is incomplete; None when it was read
    builder: PlanBuilder

    @property
    def target(self) -> str:
        """``Hostname/<name>``, the address of its actions and levers."""
        return f"Hostname/{self.want.hostname}"

    @property
    def block(self) -> Blocker:
        """The hostname's target, with its spec line as the source."""
        return hostname_blocker(self.builder, self.site, self.want)

    @property
    def depends_on(self) -> tuple[str, ...]:
        """The tenant's lock actions, then the write of the hostname's routing entry.

        Both are planned before any hostname (``build_plan``), so reading them when an action
        is added gives what reading them first would.
        """
        locks = self.builder.tenant_actions.get(self.site.tenant, ())
        route = self.builder.route_writes.get(self.want.hostname)
        return (*locks, route) if route is not None else tuple(locks)  # plan_routes rule 2

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
        self.block.add(
            kind,
            before=hostname_before(have),
            after=after,
            reason=reason,
            cause=cause,
            depends_on=self.depends_on if ordered else (),
        )


def _plan_hostname_change(builder: PlanBuilder, host: _Host, have: ObservedHostname | None) -> None:
    """Rules 2 and 5: create, refuse, recreate, update or re-validate one declared hostname."""
    want = host.want
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
    if builder.has_levers and _plan_lever(builder, host, have):
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
        before=hostname_before(have) if have is not None else None,
        failed=have is not None and hostname_failed(have),
        source=host.block.source,
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
    host.block.add(
        ActionKind.CREATE_HOSTNAME,
        before={},
        after=after,
        reason=(
            f"listed by site {site.name} but not in the zone: create it, with its "
            f"certificate validated by {want.ssl_method.upper()}{suspended}{again}"
        ),
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
            before=hostname_before(have),
            dns_finding=dns_finding(want, have, target),
            source=host.block.source,
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
