"""Conditions of each resource after a pass, computed from the plan's own verdicts.

Part of the pure core (no I/O, no clock: ``now`` is passed in). Called after every daemon pass
(``runtime/loop.py``) and after ``reconciler apply`` (``commands/apply.py``), with what the
pass knew: the desired facts, the observation, the report of the executed plan, and which
resources the pass covered. It returns
:class:`~reconciler.core.conditions_common.ConditionUpdate` values for
:meth:`StatusStore.set_many <reconciler.runtime.status.StatusStore.set_many>`, and the
resources that left both the specs and the world, whose rows are forgotten. Site and hostname
conditions are in ``core/conditions_sites.py``, deadlines in ``core/deadlines.py``;
docs/status.md lists the conditions.

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
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.conditions_common import (
    Condition,
    ConditionUpdate,
    Coverage,
    Verdicts,
    failed_sources,
    stuck,
    synced,
    update,
    verdicts_of,
)
from reconciler.core.conditions_sites import hostname_conditions, site_conditions
from reconciler.core.desired import Desired, DesiredTenant
from reconciler.core.observed import Observed, Source
from reconciler.core.outcome import Report
from reconciler.spec.models import Access

__all__ = ["conditions_for"]


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
    verdicts = verdicts_of(report)
    commit = report.plan.revision
    updates: list[ConditionUpdate] = []
    for name in sorted(coverage.sites):
        site = desired.sites.get(name)
        if site is None:
            continue
        updates.extend(site_conditions(site, desired, observed, verdicts, coverage, commit))
        if observed.is_complete(Source.HOSTNAMES) or Source.HOSTNAMES in failed_sources(observed):
            for hostname in site.hostnames:
                updates.extend(hostname_conditions(hostname, observed, verdicts, commit, now))
    for name in sorted(coverage.tenants):
        tenant = desired.tenants.get(name)
        if tenant is not None:
            updates.extend(_tenant(tenant, observed, verdicts, coverage, commit))
    return updates


def _tenant(
    tenant: DesiredTenant,
    observed: Observed,
    verdicts: Verdicts,
    coverage: Coverage,
    commit: str | None,
) -> list[ConditionUpdate]:
    key = f"Tenant/{tenant.name}"
    scope: dict[str, str | None] = {"commit": commit, "tenant": tenant.name, "site": None}
    result: list[ConditionUpdate] = []
    failed = failed_sources(observed)
    if Source.STRIPE in failed or Source.D1 in failed:
        source = Source.STRIPE if Source.STRIPE in failed else Source.D1
        error = observed.incomplete[source]
        result.append(
            update(
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
            update(
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
        result.append(synced(key, verdicts, converged="billing and access match", **scope))
    result.append(stuck(key, verdicts, coverage, **scope))
    return result


def _payment(tenant: DesiredTenant, scope: Mapping[str, str | None]) -> ConditionUpdate:
    decision = tenant.access
    key = f"Tenant/{tenant.name}"
    commit, name = scope["commit"], scope["tenant"]
    invoice = decision.invoice
    if invoice is None:
        return update(
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
    return update(
        key,
        Condition.PAYMENT_CURRENT,
        False,
        reason,
        f"invoice {invoice.id} is {days} days past due",
        commit=commit,
        tenant=name,
        site=None,
    )
