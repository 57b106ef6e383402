"""Pure billing and safety policies: access levels, dunning steps due, message text, blast radius.

Called by ``core/desired.py`` (access, dunning) and ``core/plan.py`` (blast radius). Every
function is a pure function of its arguments; ``now`` is always passed in.

Rules:

1. Days past due count whole days since the oldest open invoice became overdue
   (``Invoice.overdue_since``: finalisation, else creation), floored.
2. ``soft_locked`` from ``grace_days`` days past due, ``hard_locked`` from ``hard_lock_days``.
   Which invoices count is decided once, by :func:`invoice_owed`: an ``open`` one with something
   left to pay, and an ``uncollectible`` one unless the policy writes those off
   (``uncollectible: written_off``); ``void``, ``paid`` and ``draft`` ones never. Locks, dunning,
   timers and the billing reasons all ask it.
3. A manual override (``access`` other than ``auto``) wins and is reported as such.
4. Of the dunning steps of one invoice that are due, only the latest is sent; earlier ones that
   were never sent are recorded as skipped (a tenant 40 days late gets one message, not five).
5. Deletions are judged by what they remove, not by a bare count: removing one site with its
   own few hostnames is not a mass event, removing a tenth of a tenant's sites or hostnames
   (or more than ten hostnames in one plan) is, and needs an approval (docs/plan.md).
6. A step is never sent twice, and never again when its outcome is ``unknown``. A ``failed``
   step is one nothing was sent for (its number was refused); it is sent once more when its
   cause is fixed: the tenant spec names another number (:func:`resend_after_fix`). A gateway
   that was down leaves the step pending, so it is sent when the gateway is back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.core.facts import Invoice
from reconciler.core.spec_view import BillingPolicySpec, DunningStepRule
from reconciler.spec.vocabulary import Access, Uncollectible

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """The access a tenant should have, and why."""

    level: Access  # never AUTO
    source: str  # "override" | "policy"
    reason: str
    days_past_due: int | None
    invoice: Invoice | None


@dataclass(frozen=True, slots=True)
class DunningDue:
    """A dunning message that should have been sent for ``invoice`` by now."""

    invoice_id: str
    step_code: str
    day: int
    due_at: float
    phone: str
    message: str
    superseded: tuple[str, ...]  # earlier step codes of the same invoice never sent: skipped


def days_past_due(invoice: Invoice, now: float) -> int:
    """Whole days since ``invoice`` became overdue (0 on the first day, never negative)."""
    return max(0, math.floor((now - invoice.overdue_since) / DAY))


UNSETTLED_STATUSES = frozenset({"open", "uncollectible"})
"""Invoice statuses that may still be owed: the ones the Stripe adapter keeps for the core."""


def invoice_owed(invoice: Invoice, policy: BillingPolicySpec) -> bool:
    """Whether ``invoice`` is owed under ``policy`` (rule 2): the one place this is decided.

    An ``open`` invoice with something left to pay is owed. An ``uncollectible`` one stays
    owed (Stripe gave up collecting; the customer still owes it) unless the policy says
    ``uncollectible: written_off``. ``void`` (cancelled), ``paid`` and ``draft`` never are.
    """
    if invoice.amount_due <= 0:
        return False
    if invoice.status == "open":
        return True
    return invoice.status == "uncollectible" and policy.uncollectible is Uncollectible.OWED


def owed_invoices(invoices: Sequence[Invoice], policy: BillingPolicySpec) -> list[Invoice]:
    """The invoices ``policy`` counts as owed, oldest overdue first."""
    if not invoices:
        return []  # most tenants: nothing to filter or sort
    return sorted(
        (inv for inv in invoices if invoice_owed(inv, policy)),
        key=lambda inv: (inv.overdue_since, inv.id),
    )


_NO_OPEN_INVOICE = AccessDecision(
    level=Access.ACTIVE, source="policy", reason="no open invoice", days_past_due=None, invoice=None
)


def desired_access(
    *,
    override: Access,
    override_reason: str | None,
    policy: BillingPolicySpec,
    open_invoices: Sequence[Invoice],
    now: float,
) -> AccessDecision:
    """Decide a tenant's access from its override, or its policy and oldest open invoice."""
    owing = owed_invoices(open_invoices, policy)
    oldest = owing[0] if owing else None
    days = days_past_due(oldest, now) if oldest is not None else None
    if override is not Access.AUTO:
        return AccessDecision(
            level=override,
            source="override",
            reason=f"manual override in the tenant spec: {override_reason or 'no reason given'}",
            days_past_due=days,
            invoice=oldest,
        )
    if oldest is None or days is None:
        return _NO_OPEN_INVOICE  # most tenants: one immutable value, not one made per tenant
    if days >= policy.hard_lock_days:
        level = Access.HARD_LOCKED
        reason = (
            f"invoice {oldest.id} is {days} days past due "
            f"(hard lock from {policy.hard_lock_days} days)"
        )
    elif days >= policy.grace_days:
        level = Access.SOFT_LOCKED
        reason = (
            f"invoice {oldest.id} is {days} days past due (grace period of "
            f"{policy.grace_days} days is over; hard lock at {policy.hard_lock_days} days)"
        )
    else:
        level = Access.ACTIVE
        reason = (
            f"invoice {oldest.id} is {days} days past due, within the grace period of "
            f"{policy.grace_days} days"
        )
    return AccessDecision(
        level=level, source="policy", reason=reason, days_past_due=days, invoice=oldest
    )


def _iso_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")


def format_amount(amount: int, currency: str) -> str:
    """``1999, "usd"`` -> ``"19.99 USD"`` (two-decimal currencies; zero-decimal ones as is)."""
    zero_decimal = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf",
                    "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}  # fmt: skip
    if currency.lower() in zero_decimal:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:.2f} {currency.upper()}"


def render_message(
    policy: BillingPolicySpec,
    step: DunningStepRule,
    *,
    invoice: Invoice,
    tenant_name: str,
    now: float,
) -> str:
    """Fill ``step``'s template's ``{variables}`` (the set is ``models.TEMPLATE_VARIABLES``)."""
    start = invoice.overdue_since
    values = {
        "tenant_name": tenant_name,
        "amount_due": format_amount(invoice.amount_due, invoice.currency),
        "currency": invoice.currency.upper(),
        "invoice_id": invoice.id,
        "invoice_url": invoice.hosted_invoice_url or "",
        "days_past_due": str(days_past_due(invoice, now)),
        "due_date": _iso_day(invoice.due_date if invoice.due_date is not None else start),
        "soft_lock_date": _iso_day(start + policy.grace_days * DAY),
        "hard_lock_date": _iso_day(start + policy.hard_lock_days * DAY),
        "step_code": step.code,
    }
    return policy.templates[step.template].format_map(values)


def dunning_due(
    *,
    policy: BillingPolicySpec,
    open_invoices: Sequence[Invoice],
    tenant_name: str,
    phone: str,
    now: float,
) -> tuple[DunningDue, ...]:
    """The latest due dunning step of every open invoice, with the earlier ones it supersedes.

    The planner drops a step already in the D1 log; a step is never due twice for one invoice.
    """
    result: list[DunningDue] = []
    for invoice in owed_invoices(open_invoices, policy):
        days = days_past_due(invoice, now)
        due_steps = [step for step in policy.dunning if step.day <= days]
        if not due_steps:
            continue
        superseded = tuple(step.code for step in due_steps[:-1])
        result.append(
            _due(policy, invoice, due_steps[-1], tenant_name, phone, now, superseded=superseded)
        )
    return tuple(result)


def _due(
    policy: BillingPolicySpec,
    invoice: Invoice,
    step: DunningStepRule,
    tenant_name: str,
    phone: str,
    now: float,
    *,
    superseded: tuple[str, ...],
) -> DunningDue:
    """``step`` of ``policy`` for ``invoice``, its message rendered for ``tenant_name``."""
    return DunningDue(
        invoice_id=invoice.id,
        step_code=step.code,
        day=step.day,
        due_at=invoice.overdue_since + step.day * DAY,
        phone=phone,
        message=render_message(policy, step, invoice=invoice, tenant_name=tenant_name, now=now),
        superseded=superseded,
    )


def billing_moments(policy: BillingPolicySpec, open_invoices: Sequence[Invoice]) -> list[float]:
    """Every dunning day and lock threshold of the invoices ``policy`` counts as owed."""
    moments: list[float] = []
    for invoice in owed_invoices(open_invoices, policy):
        start = invoice.overdue_since
        moments.extend(start + step.day * DAY for step in policy.dunning)
        moments.append(start + policy.grace_days * DAY)
        moments.append(start + policy.hard_lock_days * DAY)
    return moments


def next_dunning_at(policy: BillingPolicySpec, open_invoices: Sequence[Invoice]) -> float | None:
    """When the next dunning step or lock threshold of any owed invoice falls due (for timers)."""
    moments = billing_moments(policy, open_invoices)
    return min(moments) if moments else None


INVALID_NUMBER_PREFIX = "invalid number: "
"""How a dunning log's error starts when the number was refused before anything was sent."""


def resend_after_fix(status: str, failed_phone: str | None, phone: str) -> bool:
    """Rule 6: a ``failed`` step (nothing was sent: the number was refused) is sent again
    once the tenant spec names another number than the one it failed on."""
    return status == "failed" and failed_phone is not None and failed_phone != phone


def dunning_step(
    *,
    policy: BillingPolicySpec,
    invoice: Invoice,
    step_code: str,
    tenant_name: str,
    phone: str,
    now: float,
) -> DunningDue | None:
    """The message of one named step of ``policy`` for ``invoice`` (a manual send), if any."""
    for step in policy.dunning:
        if step.code != step_code:
            continue
        return _due(policy, invoice, step, tenant_name, phone, now, superseded=())
    return None


APPROVAL_TRAILER = "Approve-Deletion"
"""The Git commit trailer that approves a deletion over the cap: ``Approve-Deletion: Site/x``."""


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """How many hostname deletions one plan may make without an approval (rule 5).

    ``max_deletions`` caps the hostnames of a whole plan, whatever they belong to.
    ``max_fraction`` caps, per tenant, both the sites removed whole and the hostnames removed
    from sites that stay; each allowance is at least one. A removed site with at most
    ``max_site_hostnames`` hostnames counts as one site removal, not as that many hostnames.
    """

    max_deletions: int = 10
    max_fraction: float = 0.10
    max_site_hostnames: int = 5


@dataclass(frozen=True, slots=True)
class Deletion:
    """One hostname a plan would delete, and whether its whole site left the specs."""

    hostname: str
    tenant: str
    site: str | None
    site_removed: bool


@dataclass(frozen=True, slots=True)
class TenantSize:
    """What a tenant has, to judge what share of it a plan removes: sites and hostnames."""

    sites: int
    hostnames: int


def deletion_blocked(
    deletions: Sequence[Deletion], sizes: Mapping[str, TenantSize], limits: BlastRadius
) -> str | None:
    """Explain why a plan's hostname deletions are a mass deletion, or return None (rule 5).

    Three caps, checked in order:

    1. the plan deletes more than ``max_deletions`` hostnames;
    2. a tenant loses more whole sites than ``max_fraction`` of its sites (at least one): a
       removed site with at most ``max_site_hostnames`` hostnames is one site removal, so a
       small tenant can remove a site and its own few domains;
    3. a tenant loses more hostnames of the sites it keeps (and of removed sites too large to
       count as one removal) than ``max_fraction`` of its hostnames (at least one).
    """
    if len(deletions) > limits.max_deletions:
        return (
            f"{len(deletions)} hostname deletions exceed the blast-radius cap of "
            f"{limits.max_deletions} per plan"
        )
    per_site: dict[tuple[str, str | None], int] = {}
    for deletion in deletions:
        key = (deletion.tenant, deletion.site if deletion.site_removed else None)
        per_site[key] = per_site.get(key, 0) + 1
    removed_sites: dict[str, int] = {}
    loose: dict[str, int] = {}
    for (tenant, site), count in per_site.items():
        if site is not None and count <= limits.max_site_hostnames:
            removed_sites[tenant] = removed_sites.get(tenant, 0) + 1
        else:
            loose[tenant] = loose.get(tenant, 0) + count
    for tenant in sorted(set(removed_sites) | set(loose)):
        size = sizes.get(tenant, TenantSize(sites=0, hostnames=0))
        sites = removed_sites.get(tenant, 0)
        allowed_sites = max(1, math.floor(max(size.sites, sites) * limits.max_fraction))
        if sites > allowed_sites:
            return (
                f"tenant {tenant}: {sites} of its {max(size.sites, sites)} sites would be "
                f"removed with their hostnames, over the cap of {limits.max_fraction:.0%} "
                f"({allowed_sites})"
            )
        count = loose.get(tenant, 0)
        total = max(size.hostnames, count)
        allowed = max(1, math.floor(total * limits.max_fraction))
        if count > allowed:
            return (
                f"tenant {tenant}: {count} of its {total} hostnames would be deleted, over the "
                f"cap of {limits.max_fraction:.0%} ({allowed})"
            )
    return None
