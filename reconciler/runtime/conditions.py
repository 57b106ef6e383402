"""Conditions of each resource after a daemon pass, and the deadlines that should wake it.

Called by the daemon loop (``runtime/loop.py``) after every pass, with what the pass knew: the
desired facts, the observation, the report of the executed plan, and which resources the pass
covered. It returns :class:`~reconciler.runtime.status.ConditionUpdate` values for
:meth:`StatusStore.set_many <reconciler.runtime.status.StatusStore.set_many>` and the next
deadlines for :meth:`WorkQueue.wake_at <reconciler.runtime.workqueue.WorkQueue.wake_at>`. It
performs no I/O and reads no clock (``now`` is passed in); docs/status.md lists the conditions.

Rules:

1. Only what the pass covered is reported: a site's conditions when the site was in scope,
   its hostnames' DNS and certificate conditions only when custom hostnames were listed, a
   tenant's ``PaymentCurrent`` only when Stripe was read. A reading that failed gives
   ``Unknown``, never a guess; a reading the pass deliberately skipped gives nothing at all, so
   an earlier answer stands.
2. ``Synced`` is False while an action for the resource failed, is blocked, or (after the
   observation, for hostnames) is still settling; the first failure's message is the last
   error. An action that was applied makes ``Synced`` True: the world now matches the specs at
   the pass's commit.
3. ``Stuck`` is True when the work queue gave up on the resource (``stuck``) or when the
   planner blocked it with the ``stuck`` gate (publish attempts or hostname recreations used
   up); the message says what a human must do.
4. Deadlines are the earliest future moment at which the planner would decide differently
   without any change: a pending hostname's validation timeout, and the next dunning day or
   lock threshold of a tenant's oldest open invoices.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.core.budget import check_budget
from reconciler.core.desired import Desired, DesiredHostname, DesiredSite, DesiredTenant
from reconciler.core.facts import Invoice
from reconciler.core.observed import Observed, ObservedHostname, Source
from reconciler.core.outcome import Outcome, Report, Status
from reconciler.core.plan import Action, ActionKind, Blocked
from reconciler.core.policy import billing_moments
from reconciler.runtime.status import Condition, ConditionUpdate
from reconciler.spec.models import Access, BillingPolicySpec

__all__ = [
    "Coverage",
    "conditions_for",
    "next_billing_deadline",
    "next_validation_deadline",
    "resource_key",
]

_PENDING_STATUS = frozenset({"pending", "test_pending", "pending_provisioned"})
_PENDING_SSL = frozenset({"initializing", "pending_validation", "pending_issuance"})
_FAILED_STATUS = frozenset({"moved", "deleted", "blocked", "pending_blocked", "test_failed"})
_FAILED_SSL = frozenset(
    {
        "initializing_timed_out",
        "validation_timed_out",
        "issuance_timed_out",
        "deployment_timed_out",
        "expired",
        "deleted",
    }
)
_FAILED_OUTCOMES = (Status.FAILED_TRANSIENT, Status.FAILED_PERMANENT, Status.STUCK)
_GATE_REASONS: Mapping[str, str] = {
    "hard_locked": "HardLocked",
    "budget": "OverBudget",
    "build": "BuildFailed",
    "missing_version": "MissingVersion",
    "missing_project": "MissingProject",
    "stuck": "RetriesExhausted",
    "conflict": "Conflict",
    "blast_radius": "BlastRadius",
    "incomplete": "WaitingForReading",
}
_FAILURE_REASONS: Mapping[ActionKind, str] = {
    ActionKind.PUBLISH: "PublishFailed",
    ActionKind.RETRY_PUBLISH: "PublishFailed",
    ActionKind.ROLLBACK: "RollbackFailed",
    ActionKind.SYNC_BILLING: "BillingSyncFailed",
    ActionKind.SEND_DUNNING: "DunningFailed",
    ActionKind.SOFT_LOCK: "LockFailed",
    ActionKind.HARD_LOCK: "LockFailed",
    ActionKind.UNLOCK: "UnlockFailed",
    ActionKind.RECORD_PUBLISH_FAILURE: "PublishFailed",
    ActionKind.PURGE_CACHE: "PurgeFailed",
}


def resource_key(target: str) -> str:
    """The resource an action target belongs to: ``Site/a:production`` -> ``Site/a``."""
    if target.startswith("Site/"):
        return target.split(":", 1)[0]
    return target


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which resources a pass may report on (module rule 1).

    ``sites`` and ``tenants`` are names; ``stuck`` maps a resource key (``Site/a``,
    ``Tenant/t``) to the last error of a key the work queue gave up on.
    """

    sites: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    stuck: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Verdicts:
    """What the plan and the report say per resource key."""

    failed: dict[str, tuple[Action, Outcome]] = field(default_factory=dict)
    blocked: dict[str, Blocked] = field(default_factory=dict)
    applied: dict[str, list[Action]] = field(default_factory=dict)
    succeeded: dict[str, Outcome] = field(default_factory=dict)


def _verdicts(report: Report) -> _Verdicts:
    verdicts = _Verdicts()
    by_id = {action.id: action for action in report.plan.actions}
    for outcome in report.outcomes:
        action = by_id.get(outcome.action_id)
        if action is None:
            continue
        keys = {resource_key(action.target)}
        if action.kind in (ActionKind.SEND_DUNNING, ActionKind.SYNC_BILLING) and action.tenant:
            keys.add(f"Tenant/{action.tenant}")
        for key in keys:
            if outcome.status in _FAILED_OUTCOMES or outcome.status is Status.BLOCKED:
                verdicts.failed.setdefault(key, (action, outcome))
            elif outcome.succeeded:
                verdicts.applied.setdefault(key, []).append(action)
                verdicts.succeeded[key] = outcome
    for blocked in report.plan.blocked:
        verdicts.blocked.setdefault(resource_key(blocked.target), blocked)
    return verdicts


def conditions_for(
    *,
    desired: Desired,
    observed: Observed,
    report: Report,
    coverage: Coverage,
    now: float,
) -> list[ConditionUpdate]:
    """Every condition the pass can state (module rules 1-3), sorted by resource.

    Args:
        desired: the desired facts the plan was made from.
        observed: the observation the plan was made against.
        report: the plan and the outcome of each executed action.
        coverage: the resources the pass covered, and the stuck keys among them.
        now: the injected clock, epoch seconds.

    Returns:
        Condition updates, each carrying the pass's commit and the owning tenant and site.
    """
    verdicts = _verdicts(report)
    commit = report.plan.revision
    updates: list[ConditionUpdate] = []
    for name in sorted(coverage.sites):
        site = desired.sites.get(name)
        if site is None:
            continue
        updates.extend(_site(site, desired, observed, verdicts, coverage, commit))
        if observed.is_complete(Source.HOSTNAMES) or Source.HOSTNAMES in _failed_sources(observed):
            for hostname in site.hostnames:
                updates.extend(_hostname(hostname, observed, verdicts, commit, now))
    for name in sorted(coverage.tenants):
        tenant = desired.tenants.get(name)
        if tenant is not None:
            updates.extend(_tenant(tenant, observed, verdicts, coverage, commit))
    return updates


def _failed_sources(observed: Observed) -> set[Source]:
    """Sources whose reading failed (as opposed to being skipped by the pass on purpose)."""
    return {
        source
        for source, reason in observed.incomplete.items()
        if not reason.startswith(SKIPPED_PREFIX)
    }


SKIPPED_PREFIX = "not read by this pass"
"""How the loop marks a provider it deliberately did not read (module rule 1)."""


def _update(
    resource: str,
    condition: Condition,
    status: bool | None,
    reason: str,
    message: str,
    *,
    commit: str | None,
    tenant: str | None,
    site: str | None,
    error: str | None = None,
) -> ConditionUpdate:
    return ConditionUpdate(
        resource=resource,
        condition=condition.value,
        status=status,
        reason=reason,
        message=message,
        last_error=error,
        commit=commit,
        tenant=tenant,
        site=site,
    )


def _synced(
    key: str,
    verdicts: _Verdicts,
    *,
    commit: str | None,
    tenant: str | None,
    site: str | None,
    converged: str,
) -> ConditionUpdate:
    failed = verdicts.failed.get(key)
    if failed is not None:
        action, outcome = failed
        reason = "Blocked" if outcome.status is Status.BLOCKED else _failure_reason(action.kind)
        return _update(
            key,
            Condition.SYNCED,
            False,
            reason,
            f"{action.kind.value} {action.target} {outcome.status.value}",
            commit=commit,
            tenant=tenant,
            site=site,
            error=outcome.message or outcome.status.value,
        )
    blocked = verdicts.blocked.get(key)
    if blocked is not None:
        return _update(
            key,
            Condition.SYNCED,
            False,
            _GATE_REASONS.get(blocked.gate, "Blocked"),
            blocked.reason,
            commit=commit,
            tenant=tenant,
            site=site,
        )
    applied = verdicts.applied.get(key)
    if applied:
        message = "; ".join(f"{a.kind.value} {a.target}" for a in applied) + " done"
        return _update(
            key,
            Condition.SYNCED,
            True,
            "Applied",
            message,
            commit=commit,
            tenant=tenant,
            site=site,
        )
    return _update(
        key, Condition.SYNCED, True, "Converged", converged, commit=commit, tenant=tenant, site=site
    )


def _failure_reason(kind: ActionKind) -> str:
    if kind in _FAILURE_REASONS:
        return _FAILURE_REASONS[kind]
    return "HostnameFailed"


def _stuck(
    key: str,
    verdicts: _Verdicts,
    coverage: Coverage,
    *,
    commit: str | None,
    tenant: str | None,
    site: str | None,
) -> ConditionUpdate:
    error = coverage.stuck.get(key)
    if error is not None:
        return _update(
            key,
            Condition.STUCK,
            True,
            "RetriesExhausted",
            "the daemon stopped retrying after repeated failures; fix the cause, then push a "
            "change (or send a webhook) to try again",
            commit=commit,
            tenant=tenant,
            site=site,
            error=error,
        )
    blocked = verdicts.blocked.get(key)
    if blocked is not None and blocked.gate == "stuck":
        return _update(
            key,
            Condition.STUCK,
            True,
            "RecreateLimit" if blocked.kind is ActionKind.RECREATE_HOSTNAME else "PublishLimit",
            blocked.reason,
            commit=commit,
            tenant=tenant,
            site=site,
            error=blocked.reason,
        )
    return _update(
        key,
        Condition.STUCK,
        False,
        "Progressing",
        "not stuck",
        commit=commit,
        tenant=tenant,
        site=site,
    )


def _site(
    site: DesiredSite,
    desired: Desired,
    observed: Observed,
    verdicts: _Verdicts,
    coverage: Coverage,
    commit: str | None,
) -> list[ConditionUpdate]:
    key = f"Site/{site.name}"
    scope = {"commit": commit, "tenant": site.tenant, "site": site.name}
    result: list[ConditionUpdate] = []
    if Source.D1 in _failed_sources(observed):
        error = observed.incomplete[Source.D1]
        for condition in (Condition.SYNCED, Condition.READY):
            result.append(
                _update(
                    key,
                    condition,
                    None,
                    "D1Unreadable",
                    "D1 could not be read",
                    **scope,
                    error=error,
                )
            )
    else:
        result.append(
            _synced(
                key,
                verdicts,
                converged=f"version {site.production} is live",
                **scope,
            )
        )
        result.append(_site_ready(site, desired, observed, verdicts, key, scope))
    budget = _within_budget(site, observed, verdicts, key, scope)
    if budget is not None:
        result.append(budget)
    result.append(_stuck(key, verdicts, coverage, **scope))
    return result


def _site_ready(
    site: DesiredSite,
    desired: Desired,
    observed: Observed,
    verdicts: _Verdicts,
    key: str,
    scope: Mapping[str, str | None],
) -> ConditionUpdate:
    tenant = desired.tenants.get(site.tenant)
    commit, owner = scope["commit"], scope["tenant"]
    if tenant is not None and tenant.access.level is Access.HARD_LOCKED:
        return _update(
            key,
            Condition.READY,
            False,
            "HardLocked",
            f"tenant {site.tenant} is hard-locked: its hostnames serve the suspension origin",
            commit=commit,
            tenant=owner,
            site=site.name,
        )
    ledger = observed.ledger.get(site.name)
    live = ledger.live.get("production") if ledger is not None else None
    done = any(
        action.kind in (ActionKind.PUBLISH, ActionKind.RETRY_PUBLISH, ActionKind.ROLLBACK)
        and action.after.get("environment") == "production"
        for action in verdicts.applied.get(key, ())
    )
    if done or (live is not None and live.version == site.production):
        return _update(
            key,
            Condition.READY,
            True,
            "Live",
            f"version {site.production} is live in production",
            commit=commit,
            tenant=owner,
            site=site.name,
        )
    if live is not None:
        return _update(
            key,
            Condition.READY,
            True,
            "Behind",
            f"version {live.version} is live; version {site.production} is wanted",
            commit=commit,
            tenant=owner,
            site=site.name,
        )
    return _update(
        key,
        Condition.READY,
        False,
        "NotPublished",
        "nothing is live in production yet",
        commit=commit,
        tenant=owner,
        site=site.name,
    )


def _within_budget(
    site: DesiredSite,
    observed: Observed,
    verdicts: _Verdicts,
    key: str,
    scope: Mapping[str, str | None],
) -> ConditionUpdate | None:
    commit, owner = scope["commit"], scope["tenant"]
    blocked = verdicts.blocked.get(key)
    if blocked is not None and blocked.gate == "budget":
        return _update(
            key,
            Condition.WITHIN_BUDGET,
            False,
            "OverBudget",
            blocked.reason,
            commit=commit,
            tenant=owner,
            site=site.name,
        )
    build = observed.builds.get((site.name, site.production))
    if build is not None and build.error is None:
        violations = check_budget(
            js_kb=build.js_kb,
            css_kb=build.css_kb,
            third_party_scripts=build.third_party_scripts,
            budget=site.budget,
        )
        ok = not violations
        return _update(
            key,
            Condition.WITHIN_BUDGET,
            ok,
            "WithinBudget" if ok else "OverBudget",
            f"version {site.production}: JS {build.js_kb} KB, CSS {build.css_kb} KB, "
            f"{build.third_party_scripts} third-party scripts",
            commit=commit,
            tenant=owner,
            site=site.name,
        )
    if any(
        action.kind in (ActionKind.PUBLISH, ActionKind.RETRY_PUBLISH)
        for action in verdicts.applied.get(key, ())
    ):
        return _update(
            key,
            Condition.WITHIN_BUDGET,
            True,
            "WithinBudget",
            "the published build passed the performance budget check",
            commit=commit,
            tenant=owner,
            site=site.name,
        )
    return None  # no build this pass: an earlier answer stands (module rule 1)


def _hostname(
    want: DesiredHostname,
    observed: Observed,
    verdicts: _Verdicts,
    commit: str | None,
    now: float,
) -> list[ConditionUpdate]:
    key = f"Hostname/{want.hostname}"
    scope = {"commit": commit, "tenant": want.tenant, "site": want.site}
    if not observed.is_complete(Source.HOSTNAMES):
        error = observed.incomplete[Source.HOSTNAMES]
        return [
            _update(
                key,
                condition,
                None,
                "Unlisted",
                "custom hostnames could not be listed",
                error=error,
                **scope,
            )
            for condition in (Condition.DNS_CONFIGURED, Condition.CERTIFICATE_ISSUED)
        ]
    have = observed.hostnames.get(want.hostname)
    result = [_synced(key, verdicts, converged="matches the specs", **scope)]
    if have is None:
        created = any(a.kind is ActionKind.CREATE_HOSTNAME for a in verdicts.applied.get(key, ()))
        reason = "ValidationPending" if created else "NotCreated"
        message = "created; waiting for validation" if created else "not in the zone"
        result += [
            _update(key, Condition.DNS_CONFIGURED, False, reason, message, **scope),
            _update(key, Condition.CERTIFICATE_ISSUED, False, "SslPending", message, **scope),
            _update(key, Condition.READY, False, "Pending", message, **scope),
        ]
        return result
    result.append(_dns(want, have, key, scope, now))
    result.append(_certificate(have, key, scope))
    result.append(_hostname_ready(want, have, key, scope))
    return result


def _errors(have: ObservedHostname) -> str | None:
    return "; ".join(have.verification_errors) or None


def _dns(
    want: DesiredHostname,
    have: ObservedHostname,
    key: str,
    scope: Mapping[str, str | None],
    now: float,
) -> ConditionUpdate:
    commit, tenant, site = scope["commit"], scope["tenant"], scope["site"]
    if have.status == "active":
        return _update(
            key,
            Condition.DNS_CONFIGURED,
            True,
            "Validated",
            "ownership validated",
            commit=commit,
            tenant=tenant,
            site=site,
        )
    if have.status in _PENDING_STATUS:
        waited = now - have.status_since
        timed_out = waited >= want.validation_timeout
        return _update(
            key,
            Condition.DNS_CONFIGURED,
            False,
            "ValidationTimedOut" if timed_out else "ValidationPending",
            f"pending for {waited / 3600:.1f} h (timeout {want.validation_timeout / 3600:g} h)",
            commit=commit,
            tenant=tenant,
            site=site,
            error=_errors(have),
        )
    return _update(
        key,
        Condition.DNS_CONFIGURED,
        False,
        "ValidationFailed",
        f"status {have.status}",
        commit=commit,
        tenant=tenant,
        site=site,
        error=_errors(have),
    )


def _certificate(
    have: ObservedHostname, key: str, scope: Mapping[str, str | None]
) -> ConditionUpdate:
    commit, tenant, site = scope["commit"], scope["tenant"], scope["site"]
    ssl = have.ssl_status or "unknown"
    if ssl == "active":
        status, reason = True, "Active"
    elif ssl in _FAILED_SSL:
        status, reason = False, "SslFailed"
    else:
        status, reason = False, "SslPending"
    return _update(
        key,
        Condition.CERTIFICATE_ISSUED,
        status,
        reason,
        f"certificate {ssl}",
        commit=commit,
        tenant=tenant,
        site=site,
        error=None if status else _errors(have),
    )


def _hostname_ready(
    want: DesiredHostname, have: ObservedHostname, key: str, scope: Mapping[str, str | None]
) -> ConditionUpdate:
    commit, tenant, site = scope["commit"], scope["tenant"], scope["site"]
    if want.suspended:
        return _update(
            key,
            Condition.READY,
            False,
            "HardLocked",
            "serves the suspension origin",
            commit=commit,
            tenant=tenant,
            site=site,
        )
    if have.status in _FAILED_STATUS or (have.ssl_status or "") in _FAILED_SSL:
        return _update(
            key,
            Condition.READY,
            False,
            "Failed",
            f"status {have.status}, certificate {have.ssl_status}",
            commit=commit,
            tenant=tenant,
            site=site,
        )
    if have.status == "active" and have.ssl_status == "active":
        return _update(
            key,
            Condition.READY,
            True,
            "Active",
            f"serving {have.origin}",
            commit=commit,
            tenant=tenant,
            site=site,
        )
    return _update(
        key,
        Condition.READY,
        False,
        "Pending",
        f"status {have.status}, certificate {have.ssl_status}",
        commit=commit,
        tenant=tenant,
        site=site,
    )


def _tenant(
    tenant: DesiredTenant,
    observed: Observed,
    verdicts: _Verdicts,
    coverage: Coverage,
    commit: str | None,
) -> list[ConditionUpdate]:
    key = f"Tenant/{tenant.name}"
    scope: dict[str, str | None] = {"commit": commit, "tenant": tenant.name, "site": None}
    result: list[ConditionUpdate] = []
    failed = _failed_sources(observed)
    if Source.STRIPE in failed or Source.D1 in failed:
        source = Source.STRIPE if Source.STRIPE in failed else Source.D1
        error = observed.incomplete[source]
        result.append(
            _update(
                key,
                Condition.PAYMENT_CURRENT,
                None,
                "BillingUnknown",
                f"{source.value} could not be read",
                error=error,
                **scope,
            )
        )
        result.append(
            _update(
                key,
                Condition.SYNCED,
                None,
                "BillingUnknown",
                f"{source.value} could not be read",
                error=error,
                **scope,
            )
        )
    elif observed.is_complete(Source.STRIPE):
        result.append(_payment(tenant, scope))
        result.append(_synced(key, verdicts, converged="billing and access match", **scope))
    result.append(_stuck(key, verdicts, coverage, **scope))
    return result


def _payment(tenant: DesiredTenant, scope: Mapping[str, str | None]) -> ConditionUpdate:
    decision = tenant.access
    key = f"Tenant/{tenant.name}"
    commit, name = scope["commit"], scope["tenant"]
    invoice = decision.invoice
    if invoice is None:
        return _update(
            key,
            Condition.PAYMENT_CURRENT,
            True,
            "Paid",
            "no invoice is past due",
            commit=commit,
            tenant=name,
            site=None,
        )
    reason = {
        Access.SOFT_LOCKED: "SoftLocked",
        Access.HARD_LOCKED: "HardLocked",
    }.get(decision.level, "PastDue")
    days = decision.days_past_due or 0
    return _update(
        key,
        Condition.PAYMENT_CURRENT,
        False,
        reason,
        f"invoice {invoice.id} is {days} days past due",
        commit=commit,
        tenant=name,
        site=None,
    )


# --------------------------------------------------------------------------- deadlines


def next_validation_deadline(
    hostnames: Iterable[DesiredHostname], observed: Observed, now: float
) -> float | None:
    """The earliest future validation or certificate (``ssl_timeout``) timeout of ``hostnames``."""
    moments: list[float] = []
    for want in hostnames:
        have = observed.hostnames.get(want.hostname)
        if have is None:
            continue
        if have.status in _PENDING_STATUS or (have.ssl_status or "") in _PENDING_SSL:
            moment = have.status_since + want.validation_timeout
            if moment > now:
                moments.append(moment)
        if have.recorded_status == "pending_ssl":  # the planner's ssl_timeout clock
            moment = have.status_since + want.ssl_timeout
            if moment > now:
                moments.append(moment)
    return min(moments) if moments else None


def next_billing_deadline(
    policy: BillingPolicySpec, open_invoices: Collection[Invoice], now: float
) -> float | None:
    """The next dunning day or lock threshold after ``now`` of any invoice still owed.

    Like :func:`reconciler.core.policy.next_dunning_at`, but only future moments: a timer
    for a moment already past would fire at once and re-plan what the pass just planned.
    """
    moments = billing_moments(policy, tuple(open_invoices))
    future = [moment for moment in moments if moment > now]
    return min(future) if future else None
