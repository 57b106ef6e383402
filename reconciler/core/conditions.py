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
   ``Unknown`` for what it would have told (``Ready``, ``DNSConfigured``, ``PaymentCurrent``),
   never a guess, and ``Synced=False``: the resource's change waits on that reading. A
   reading the pass deliberately skipped gives nothing at all, so an earlier answer stands.
2. ``Synced`` is False while an action for the resource failed, is blocked, or (after the
   observation, for hostnames) is still settling; the first failure's message is the last
   error. An action that was applied makes ``Synced`` True: the world now matches the specs at
   the pass's commit.
3. ``Stuck`` is True when the work queue gave up on the resource (``stuck``) or when the
   planner blocked it with the ``stuck`` gate (publish attempts or hostname recreations used
   up); the message says what a human must do.
4. A resource the specs no longer declare still gets ``Synced=False`` while a change to it is
   blocked or failed (a removed site's hostname deletion held by the blast-radius cap): the
   specs ask for it to be gone and it is not. A site is not Synced while a change to one of
   its hostnames is blocked or failed.
5. A resource that left the specs and the world leaves the status too
   (:func:`gone_resources`): a hostname whose deletion was applied; a removed site the pass
   covered with nothing of it left blocked or failed; on a full pass, any stored resource
   the specs no longer declare and nothing blocks.
"""

from __future__ import annotations

from collections.abc import Collection

from reconciler.core.conditions_common import (
    Condition,
    ConditionUpdate,
    Coverage,
    Subject,
    Verdicts,
    stuck,
    synced,
    verdicts_of,
)
from reconciler.core.conditions_sites import hostname_conditions, site_conditions
from reconciler.core.desired import Desired, DesiredTenant
from reconciler.core.observed import Observed, Source
from reconciler.core.outcome import Report
from reconciler.core.plan import ActionKind
from reconciler.core.worker_facts import describe
from reconciler.spec.vocabulary import Access

__all__ = ["conditions_for", "declared", "gone_resources"]


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
        if observed.is_complete(Source.HOSTNAMES) or Source.HOSTNAMES in observed.failed():
            for hostname in site.hostnames:
                updates.extend(hostname_conditions(hostname, observed, verdicts, commit, now))
    for name in sorted(coverage.tenants):
        tenant = desired.tenants.get(name)
        if tenant is not None:
            updates.extend(_tenant(tenant, observed, verdicts, coverage, commit))
    updates.extend(_undeclared(desired, verdicts, commit))
    for name, worker in desired.workers.items():  # whole-fleet passes only
        at = Subject(f"Worker/{name}", commit, None, None)
        updates.append(
            synced(at, verdicts, converged=f"{worker.script} serves {describe(worker.split)}")
        )
    return updates


def declared(desired: Desired) -> set[str]:
    """Resource keys the specs declare: every site, its hostnames, every tenant, every Worker."""
    keys = {f"Tenant/{name}" for name in desired.tenants}
    keys.update(f"Worker/{name}" for name in desired.workers)
    for site in desired.sites.values():
        keys.add(f"Site/{site.name}")
        keys.update(f"Hostname/{hostname.hostname}" for hostname in site.hostnames)
    return keys


def _undeclared(desired: Desired, verdicts: Verdicts, commit: str | None) -> list[ConditionUpdate]:
    """``Synced=False`` for blocked or failed resources the specs no longer declare (rule 4)."""
    candidates = sorted(
        key
        for key in set(verdicts.blocked) | set(verdicts.failed)
        if key.startswith(("Site/", "Hostname/"))
    )
    if not candidates:
        return []
    known = declared(desired) if desired.scope is None else None
    result: list[ConditionUpdate] = []
    for key in candidates:
        kind, _, name = key.partition("/")
        if kind not in ("Site", "Hostname") or _is_declared(desired, known, kind, name):
            continue
        blocked = verdicts.blocked.get(key)
        if blocked is not None:
            tenant, site = blocked.tenant, blocked.site
        else:
            action = verdicts.failed[key][0]
            tenant, site = action.tenant, action.site
        at = Subject(key, commit, tenant, site)
        result.append(synced(at, verdicts, converged="removed from the specs"))
    return result


def _is_declared(desired: Desired, known: set[str] | None, kind: str, name: str) -> bool:
    if kind == "Site":
        return name in desired.sites
    if known is not None:
        return f"{kind}/{name}" in known
    return any(
        hostname.hostname == name for site in desired.sites.values() for hostname in site.hostnames
    )


def gone_resources(
    *,
    desired: Desired,
    report: Report,
    removed_sites: Collection[str],
    stored: Collection[str] | None = None,
) -> set[str]:
    """Resources whose status rows should go: they left the specs and the world (rule 5).

    Args:
        desired: the desired facts of the pass.
        report: the plan and outcomes of the pass.
        removed_sites: sites the pass covered that the specs no longer declare.
        stored: on a full pass, every resource key the status table holds (None otherwise).

    Returns:
        Resource keys to forget (never one with a change still blocked or failed).
    """
    verdicts = verdicts_of(report)
    held = set(verdicts.blocked) | set(verdicts.failed)
    gone = {
        key
        for key, actions in verdicts.applied.items()
        if key.startswith("Hostname/")
        and any(action.kind is ActionKind.DELETE_HOSTNAME for action in actions)
        and key not in held
    }
    gone.update(f"Site/{name}" for name in removed_sites if name not in desired.sites)
    if stored is not None:
        keep = declared(desired)
        gone.update(key for key in stored if key.startswith(_PRUNED) and key not in keep)
    return {key for key in gone if key not in held}


_PRUNED = ("Site/", "Hostname/", "Tenant/")


def _tenant(
    tenant: DesiredTenant,
    observed: Observed,
    verdicts: Verdicts,
    coverage: Coverage,
    commit: str | None,
) -> list[ConditionUpdate]:
    at = Subject(f"Tenant/{tenant.name}", commit, tenant.name, None)
    result: list[ConditionUpdate] = []
    failed = observed.failed()
    if Source.STRIPE in failed or Source.D1 in failed:
        source = Source.STRIPE if Source.STRIPE in failed else Source.D1
        error = observed.incomplete[source].detail
        unread = f"{source.value} could not be read"
        result.append(at.set(Condition.PAYMENT_CURRENT, None, "BillingUnknown", unread, error))
        # Not Synced: the tenant's billing decisions wait on the reading.
        result.append(at.set(Condition.SYNCED, False, "BillingUnknown", unread, error))
    elif observed.is_complete(Source.STRIPE):
        result.append(_payment(tenant, at))
        result.append(synced(at, verdicts, converged="billing and access match"))
    flag = stuck(at, verdicts, coverage)
    if flag is not None:
        result.append(flag)
    return result


def _payment(tenant: DesiredTenant, at: Subject) -> ConditionUpdate:
    decision = tenant.access
    invoice = decision.invoice
    if invoice is None:
        return at.set(Condition.PAYMENT_CURRENT, True, "Paid", "no invoice is past due")
    reason = {
        Access.SOFT_LOCKED: "SoftLocked",
        Access.HARD_LOCKED: "HardLocked",
    }.get(decision.level, "PastDue")
    days = decision.days_past_due or 0
    message = f"invoice {invoice.id} is {days} days past due"
    return at.set(Condition.PAYMENT_CURRENT, False, reason, message)
