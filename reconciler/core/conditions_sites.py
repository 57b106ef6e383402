"""Conditions of sites and their hostnames: Synced, Ready, WithinBudget, DNSConfigured, ...

Part of the pure core, called by :func:`reconciler.core.conditions.conditions_for` for every
site a pass covered; it reads the desired facts, the observation and the plan's verdicts
(:class:`~reconciler.core.conditions_common.Verdicts`) and returns condition values.
"""

from __future__ import annotations

from reconciler.core.budget import check_build
from reconciler.core.conditions_common import (
    Condition,
    ConditionUpdate,
    Coverage,
    Subject,
    Verdicts,
    stuck,
    synced,
)
from reconciler.core.desired import Desired, DesiredHostname, DesiredSite
from reconciler.core.hostname_state import PENDING_STATUS, hostname_failed
from reconciler.core.observed import FAILED_SSL_STATUS, Observed, ObservedHostname, Source
from reconciler.core.payloads import PublishPayload, RollbackPayload
from reconciler.core.plan import ActionKind
from reconciler.spec.vocabulary import Access

__all__ = ["hostname_conditions", "site_conditions"]


def site_conditions(
    site: DesiredSite,
    desired: Desired,
    observed: Observed,
    verdicts: Verdicts,
    coverage: Coverage,
    commit: str | None,
) -> list[ConditionUpdate]:
    at = Subject(f"Site/{site.name}", commit, site.tenant, site.name)
    result: list[ConditionUpdate] = []
    if Source.D1 in observed.failed():
        error = observed.incomplete[Source.D1].detail
        # Not Synced (the change waits on the reading); Ready is not known.
        for condition, status in ((Condition.SYNCED, False), (Condition.READY, None)):
            result.append(at.set(condition, status, "D1Unreadable", "D1 could not be read", error))
    else:
        result.append(synced(at, verdicts, converged=f"version {site.production} is live"))
        result.append(_site_ready(site, desired, observed, verdicts, at))
    budget = _within_budget(site, observed, verdicts, at)
    if budget is not None:
        result.append(budget)
    flag = stuck(at, verdicts, coverage)
    if flag is not None:
        result.append(flag)
    return result


def _site_ready(
    site: DesiredSite, desired: Desired, observed: Observed, verdicts: Verdicts, at: Subject
) -> ConditionUpdate:
    tenant = desired.tenants.get(site.tenant)
    if tenant is not None and tenant.access.level is Access.HARD_LOCKED:
        message = f"tenant {site.tenant} is hard-locked: its hostnames serve the suspension origin"
        return at.set(Condition.READY, False, "HardLocked", message)
    ledger = observed.ledger.get(site.name)
    live = ledger.live.get("production") if ledger is not None else None
    done = any(
        isinstance(action.payload, PublishPayload | RollbackPayload)
        and action.payload.environment == "production"
        for action in verdicts.applied.get(at.key, ())
    )
    if done or (live is not None and live.version == site.production):
        message = f"version {site.production} is live in production"
        return at.set(Condition.READY, True, "Live", message)
    if live is not None:
        message = f"version {live.version} is live; version {site.production} is wanted"
        return at.set(Condition.READY, True, "Behind", message)
    return at.set(Condition.READY, False, "NotPublished", "nothing is live in production yet")


def _within_budget(
    site: DesiredSite, observed: Observed, verdicts: Verdicts, at: Subject
) -> ConditionUpdate | None:
    blocked = verdicts.blocked.get(at.key)
    if blocked is not None and blocked.gate == "budget":
        return at.set(Condition.WITHIN_BUDGET, False, "OverBudget", blocked.reason)
    build = observed.builds.get((site.name, site.production))
    if build is not None and build.error is None:
        ok = not check_build(build, site.budget)
        message = (
            f"version {site.production}: JS {build.js_kb} KB, CSS {build.css_kb} KB, "
            f"{build.third_party_scripts} third-party scripts"
        )
        return at.set(Condition.WITHIN_BUDGET, ok, "WithinBudget" if ok else "OverBudget", message)
    if any(
        action.kind in (ActionKind.PUBLISH, ActionKind.RETRY_PUBLISH)
        for action in verdicts.applied.get(at.key, ())
    ):
        message = "the published build passed the performance budget check"
        return at.set(Condition.WITHIN_BUDGET, True, "WithinBudget", message)
    return None  # no build this pass: an earlier answer stands (module rule 1)


def hostname_conditions(
    want: DesiredHostname,
    observed: Observed,
    verdicts: Verdicts,
    commit: str | None,
    now: float,
) -> list[ConditionUpdate]:
    at = Subject(f"Hostname/{want.hostname}", commit, want.tenant, want.site)
    if not observed.is_complete(Source.HOSTNAMES):
        error = observed.incomplete[Source.HOSTNAMES].detail
        return [
            at.set(condition, status, "Unlisted", "custom hostnames could not be listed", error)
            for condition, status in (
                (Condition.SYNCED, False),  # waiting on the reading: not Synced
                (Condition.DNS_CONFIGURED, None),
                (Condition.CERTIFICATE_ISSUED, None),
            )
        ]
    have = observed.hostnames.get(want.hostname)
    result = [synced(at, verdicts, converged="matches the specs")]
    if have is None:
        applied = verdicts.applied.get(at.key, ())
        created = any(a.kind is ActionKind.CREATE_HOSTNAME for a in applied)
        reason = "ValidationPending" if created else "NotCreated"
        message = "created; waiting for validation" if created else "not in the zone"
        result += [
            at.set(Condition.DNS_CONFIGURED, False, reason, message),
            at.set(Condition.CERTIFICATE_ISSUED, False, "SslPending", message),
            at.set(Condition.READY, False, "Pending", message),
        ]
        return result
    result.append(_dns(want, have, at, now))
    result.append(_certificate(have, at))
    result.append(_hostname_ready(want, have, at))
    return result


def _errors(have: ObservedHostname) -> str | None:
    return "; ".join(have.verification_errors) or None


def _dns(want: DesiredHostname, have: ObservedHostname, at: Subject, now: float) -> ConditionUpdate:
    if have.status == "active":
        return at.set(Condition.DNS_CONFIGURED, True, "Validated", "ownership validated")
    if have.status in PENDING_STATUS:
        waited = now - have.status_since
        timed_out = waited >= want.validation_timeout
        reason = "ValidationTimedOut" if timed_out else "ValidationPending"
        timeout = want.validation_timeout / 3600
        message = f"pending for {waited / 3600:.1f} h (timeout {timeout:g} h)"
        return at.set(Condition.DNS_CONFIGURED, False, reason, message, _errors(have))
    message = f"status {have.status}"
    return at.set(Condition.DNS_CONFIGURED, False, "ValidationFailed", message, _errors(have))


def _certificate(have: ObservedHostname, at: Subject) -> ConditionUpdate:
    ssl = have.ssl_status or "unknown"
    if ssl == "active":
        status, reason = True, "Active"
    elif ssl in FAILED_SSL_STATUS:
        status, reason = False, "SslFailed"
    else:
        status, reason = False, "SslPending"
    error = None if status else _errors(have)
    return at.set(Condition.CERTIFICATE_ISSUED, status, reason, f"certificate {ssl}", error)


def _hostname_ready(want: DesiredHostname, have: ObservedHostname, at: Subject) -> ConditionUpdate:
    stage = f"status {have.status}, certificate {have.ssl_status}"
    if want.suspended:
        return at.set(Condition.READY, False, "HardLocked", "serves the suspension origin")
    if hostname_failed(have):
        return at.set(Condition.READY, False, "Failed", stage)
    if have.status == "active" and have.ssl_status == "active":
        return at.set(Condition.READY, True, "Active", f"serving {have.origin}")
    return at.set(Condition.READY, False, "Pending", stage)
