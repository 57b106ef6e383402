"""Conditions of sites and their hostnames: Synced, Ready, WithinBudget, DNSConfigured, ...

Part of the pure core, called by :func:`reconciler.core.conditions.conditions_for` for every
site a pass covered; it reads the desired facts, the observation and the plan's verdicts
(:class:`~reconciler.core.conditions_common.Verdicts`) and returns condition values.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.budget import check_budget
from reconciler.core.conditions_common import (
    Condition,
    ConditionUpdate,
    Coverage,
    Verdicts,
    failed_sources,
    stuck,
    synced,
    update,
)
from reconciler.core.desired import Desired, DesiredHostname, DesiredSite
from reconciler.core.hostname_state import PENDING_STATUS, hostname_failed
from reconciler.core.observed import FAILED_SSL_STATUS, Observed, ObservedHostname, Source
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
    key = f"Site/{site.name}"
    scope = {"commit": commit, "tenant": site.tenant, "site": site.name}
    result: list[ConditionUpdate] = []
    if Source.D1 in failed_sources(observed):
        error = observed.incomplete[Source.D1].detail
        # Not Synced (the change waits on the reading); Ready is not known.
        for condition, status in ((Condition.SYNCED, False), (Condition.READY, None)):
            result.append(
                update(
                    key,
                    condition,
                    status,
                    "D1Unreadable",
                    "D1 could not be read",
                    **scope,
                    error=error,
                )
            )
    else:
        result.append(
            synced(
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
    flag = stuck(key, verdicts, coverage, **scope)
    if flag is not None:
        result.append(flag)
    return result


def _site_ready(
    site: DesiredSite,
    desired: Desired,
    observed: Observed,
    verdicts: Verdicts,
    key: str,
    scope: Mapping[str, str | None],
) -> ConditionUpdate:
    tenant = desired.tenants.get(site.tenant)
    commit, owner = scope["commit"], scope["tenant"]
    if tenant is not None and tenant.access.level is Access.HARD_LOCKED:
        return update(
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
        return update(
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
        return update(
            key,
            Condition.READY,
            True,
            "Behind",
            f"version {live.version} is live; version {site.production} is wanted",
            commit=commit,
            tenant=owner,
            site=site.name,
        )
    return update(
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
    verdicts: Verdicts,
    key: str,
    scope: Mapping[str, str | None],
) -> ConditionUpdate | None:
    commit, owner = scope["commit"], scope["tenant"]
    blocked = verdicts.blocked.get(key)
    if blocked is not None and blocked.gate == "budget":
        return update(
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
            media=build.media,
        )
        ok = not violations
        return update(
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
        return update(
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


def hostname_conditions(
    want: DesiredHostname,
    observed: Observed,
    verdicts: Verdicts,
    commit: str | None,
    now: float,
) -> list[ConditionUpdate]:
    key = f"Hostname/{want.hostname}"
    scope = {"commit": commit, "tenant": want.tenant, "site": want.site}
    if not observed.is_complete(Source.HOSTNAMES):
        error = observed.incomplete[Source.HOSTNAMES].detail
        return [
            update(
                key,
                condition,
                status,
                "Unlisted",
                "custom hostnames could not be listed",
                error=error,
                **scope,
            )
            for condition, status in (
                (Condition.SYNCED, False),  # waiting on the reading: not Synced
                (Condition.DNS_CONFIGURED, None),
                (Condition.CERTIFICATE_ISSUED, None),
            )
        ]
    have = observed.hostnames.get(want.hostname)
    result = [synced(key, verdicts, converged="matches the specs", **scope)]
    if have is None:
        created = any(a.kind is ActionKind.CREATE_HOSTNAME for a in verdicts.applied.get(key, ()))
        reason = "ValidationPending" if created else "NotCreated"
        message = "created; waiting for validation" if created else "not in the zone"
        result += [
            update(key, Condition.DNS_CONFIGURED, False, reason, message, **scope),
            update(key, Condition.CERTIFICATE_ISSUED, False, "SslPending", message, **scope),
            update(key, Condition.READY, False, "Pending", message, **scope),
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
        return update(
            key,
            Condition.DNS_CONFIGURED,
            True,
            "Validated",
            "ownership validated",
            commit=commit,
            tenant=tenant,
            site=site,
        )
    if have.status in PENDING_STATUS:
        waited = now - have.status_since
        timed_out = waited >= want.validation_timeout
        return update(
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
    return update(
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
    elif ssl in FAILED_SSL_STATUS:
        status, reason = False, "SslFailed"
    else:
        status, reason = False, "SslPending"
    return update(
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
        return update(
            key,
            Condition.READY,
            False,
            "HardLocked",
            "serves the suspension origin",
            commit=commit,
            tenant=tenant,
            site=site,
        )
    if hostname_failed(have):
        return update(
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
        return update(
            key,
            Condition.READY,
            True,
            "Active",
            f"serving {have.origin}",
            commit=commit,
            tenant=tenant,
            site=site,
        )
    return update(
        key,
        Condition.READY,
        False,
        "Pending",
        f"status {have.status}, certificate {have.ssl_status}",
        commit=commit,
        tenant=tenant,
        site=site,
    )
