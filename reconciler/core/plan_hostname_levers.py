"""plan_hostname_levers: a hostname's manual levers, its certificate timeout and honest Stuck text.

Called by ``core/plan_hostnames.py`` (the hostname area of
:func:`reconciler.core.plan.build_plan`): :func:`plan_hostname_lever` turns the
``retry_validation``, ``recreate`` and ``clear_stuck`` levers of ``core.levers`` into
``retry_validation`` / ``recreate_hostname`` actions or refuses them;
:func:`plan_ssl_timeout` recreates a hostname whose certificate stays pending past the
policy's ``ssl_timeout``; :func:`dns_is_right` tells a Stuck block whether the customer's
DNS is the problem at all. Pure.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.core.desired import DesiredHostname, DesiredSite
from reconciler.core.levers import Lever, LeverKind
from reconciler.core.observed import ObservedHostname, domain_status
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import PlanBuilder

AfterFor = Callable[[ObservedHostname], dict[str, JsonValue]]
"""The executor's input for an existing hostname (``plan_hostnames._hostname_after``)."""


def plan_hostname_lever(
    builder: PlanBuilder,
    lever: Lever,
    want: DesiredHostname,
    have: ObservedHostname | None,
    *,
    gap: str | None,
    after: AfterFor,
    before: dict[str, JsonValue] | None,
    failed: bool,
    source: str | None,
) -> bool:
    """Honour or refuse a hostname lever; True when it planned the hostname's action.

    Args:
        builder: The collector of this plan.
        lever: the retry_validation, recreate or clear_stuck lever on this hostname.
        want: the declared hostname.
        have: what the zone shows (None: not in the zone).
        gap: why the hostname listing is incomplete, if it is.
        after: builds the executor's input for the existing hostname.
        before: the hostname's observed fields, for the action's ``before``.
        failed: the hostname's status or certificate has failed or timed out.
        source: the spec line that declares the hostname.
    """
    target = f"Hostname/{want.hostname}"
    on = builder.blocker(target, tenant=want.tenant, site=want.site, source=source)
    refusal = _refusal(lever, want, have, gap, failed)
    if refusal is not None:
        on(_ACTION[lever.kind], gate="refused", reason=refusal)
        return False
    assert have is not None and before is not None  # _refusal refuses both
    fields = after(have)
    kind, reason = _forced(builder, lever, want, have, fields)
    locks = builder.tenant_actions.get(want.tenant, [])
    on.add(kind, before=before, after=fields, reason=reason, cause=Cause.CHANGE, depends_on=locks)
    return True


def _forced(
    builder: PlanBuilder,
    lever: Lever,
    want: DesiredHostname,
    have: ObservedHostname,
    fields: dict[str, JsonValue],
) -> tuple[ActionKind, str]:
    """The action kind a lever asks for and its reason (a recreation counts in ``fields``)."""
    if lever.kind is LeverKind.RETRY_VALIDATION:
        return ActionKind.RETRY_VALIDATION, (
            f"asked by hand (reconciler retry-validation): {have.status}/"
            f"{have.ssl_status or 'none'} for {_hours(builder, have)} h; re-trigger "
            "validation now with the same ssl settings"
        )
    count = have.recreate_count + 1
    fields["recreate_count"] = count
    past = " (past the cap)" if count > want.max_recreates else ""
    return ActionKind.RECREATE_HOSTNAME, (
        f"asked by hand (reconciler {lever.kind.value.replace('_', '-')}): status "
        f"{have.status}, certificate {have.ssl_status or 'none'}: delete and create again "
        f"(recreation {count} of {want.max_recreates}{past})"
    )


def _refusal(
    lever: Lever,
    want: DesiredHostname,
    have: ObservedHostname | None,
    gap: str | None,
    failed: bool,
) -> str | None:
    """Why the specs or the world forbid the lever now, or None when it may go ahead."""
    name = want.hostname
    if gap is not None:
        return f"{name}: {gap}; nothing is done until the listing succeeds"
    if have is None:
        return f"{name} is not in the zone yet; the plan creates it (no lever needed)"
    if not have.owned:
        return f"{name} lacks our ownership marker: the reconciler never changes it"
    status = domain_status(have.status, have.ssl_status)
    if status == "active":
        return f"{name} is active and serving: there is nothing to retry or recreate"
    if lever.kind is LeverKind.RETRY_VALIDATION and failed:
        return (
            f"{name} has failed (status {have.status}, certificate {have.ssl_status}): "
            f"retrying validation cannot revive it; recreate it with "
            f"`reconciler recreate Hostname/{name}`"
        )
    if lever.kind is LeverKind.CLEAR_STUCK and not (
        failed and have.recreate_count >= want.max_recreates
    ):
        return (
            f"{name} is not stuck ({have.recreate_count} of {want.max_recreates} recreations "
            "used): the plan handles it without a lever"
        )
    return None


def plan_ssl_timeout(
    builder: PlanBuilder,
    site: DesiredSite,
    want: DesiredHostname,
    have: ObservedHostname,
    *,
    after: AfterFor,
    before: dict[str, JsonValue],
    dns_finding: str,
    source: str | None,
) -> bool:
    """Recreate a hostname whose certificate is pending past ``ssl_timeout``; True if planned.

    Validated (``status`` active) with the certificate still pending: the customer's part is
    done, so this is Cloudflare's side. The clock is ``status_since`` of the D1 row once it
    records ``pending_ssl`` (the pass after validation records it). A recreation restarts
    issuance, up to ``max_recreates``; past that the hostname is Stuck with what to do.
    """
    if domain_status(have.status, have.ssl_status) != "pending_ssl":
        return False
    if have.recorded_status != "pending_ssl":
        return False  # D1 has not recorded the validation yet: status_since is not its clock
    waited = builder.desired.now - have.status_since
    if waited < want.ssl_timeout:
        return False
    target = f"Hostname/{want.hostname}"
    late = (
        f"the certificate has been pending ({have.ssl_status or 'none'}) for "
        f"{waited / 3600:.1f} h since validation, over the ssl timeout of "
        f"{want.ssl_timeout / 3600:g} h"
    )
    if have.recreate_count >= want.max_recreates:
        _ssl_stuck(builder, site, want, have, late, dns_finding, source)
        return True
    fields = after(have)
    fields["recreate_count"] = have.recreate_count + 1
    reason = (
        f"{late}: delete and create again to restart issuance (recreation "
        f"{have.recreate_count + 1} of {want.max_recreates})"
    )
    on = builder.blocker(target, tenant=site.tenant, site=site.name, source=source)
    locks = builder.tenant_actions.get(site.tenant, [])
    on.add(
        ActionKind.RECREATE_HOSTNAME,
        before=before,
        after=fields,
        reason=reason,
        cause=Cause.DRIFT,
        depends_on=locks,
    )
    return True


def _ssl_stuck(
    builder: PlanBuilder,
    site: DesiredSite,
    want: DesiredHostname,
    have: ObservedHostname,
    late: str,
    dns_finding: str,
    source: str | None,
) -> None:
    """A certificate past ``ssl_timeout`` with every recreation used: Stuck, naming Cloudflare."""
    builder.block(
        ActionKind.RECREATE_HOSTNAME,
        f"Hostname/{want.hostname}",
        tenant=site.tenant,
        site=site.name,
        gate="stuck",
        reason=(
            f"{late}, after {have.recreate_count} recreations (max "
            f"{want.max_recreates}); the hostname is validated, so the customer's DNS is "
            "not the cause: check Cloudflare's status page or contact Cloudflare support, "
            f"then `reconciler clear-stuck Hostname/{want.hostname}`"
            + (f"; DNS check: {dns_finding}" if dns_finding else "")
        ),
        source=source,
    )


def _hours(builder: PlanBuilder, have: ObservedHostname) -> str:
    return f"{(builder.desired.now - have.status_since) / 3600:.1f}"


_ACTION = {
    LeverKind.RETRY_VALIDATION: ActionKind.RETRY_VALIDATION,
    LeverKind.RECREATE: ActionKind.RECREATE_HOSTNAME,
    LeverKind.CLEAR_STUCK: ActionKind.RECREATE_HOSTNAME,
}
