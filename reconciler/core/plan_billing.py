"""plan_billing: the planner's tenant area: billing sync, access locks and dunning messages.

Called by :func:`reconciler.core.plan.build_plan` once per tenant in scope (before the sites,
so hostname actions can depend on a tenant's lock). Fills a
:class:`~reconciler.core.plan_builder.PlanBuilder` with ``sync_billing``, ``unlock`` /
``soft_lock`` / ``hard_lock`` and ``send_dunning`` actions; calls ``core.observed`` and
``core.policy`` for digests and amounts. Pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from reconciler.core.desired import DesiredTenant
from reconciler.core.facts import Invoice
from reconciler.core.levers import LeverKind
from reconciler.core.observed import Source, billing_digest
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_billing_levers import add_dunning, plan_dunning_levers
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.policy import (
    AccessDecision,
    DunningDue,
    format_amount,
    owed_invoices,
    resend_after_fix,
)
from reconciler.core.spec_view import BillingPolicySpec
from reconciler.spec.vocabulary import Access, Kind


def plan_tenant(builder: PlanBuilder, tenant: DesiredTenant) -> None:
    """Plan a tenant's billing mirror, access level and due dunning steps, in that order.

    Args:
        builder: The collector of this plan.
        tenant: The derived tenant, one of whose sites is in scope.
    """
    stripe_gap = builder.incomplete(Source.STRIPE)
    d1_gap = builder.incomplete(Source.D1)
    if not builder.has_levers and d1_gap is None:  # the common plan: no lever to look for
        _plan_sync(builder, tenant, stripe_gap, forced=False)
        _plan_access(builder, tenant, stripe_gap)
        _plan_dunning(builder, tenant, stripe_gap)
        return
    target = f"Tenant/{tenant.name}"
    sync = builder.lever(target, LeverKind.SYNC_BILLING)
    enforce = builder.lever(target, LeverKind.ENFORCE)
    mark = builder.mark()
    if d1_gap is not None:
        builder.note(target, tenant=tenant.name, site=None, category="waiting", reason=d1_gap)
        if sync is not None or enforce is not None:
            builder.attribute(mark)
        plan_dunning_levers(builder, tenant)
        return
    _plan_sync(builder, tenant, stripe_gap, forced=sync is not None)
    if sync is not None:
        builder.attribute(mark)
    mark = builder.mark()
    _plan_access(builder, tenant, stripe_gap)
    if enforce is not None and not builder.attribute(mark):
        builder.note(
            target,
            tenant=tenant.name,
            site=None,
            category="unchanged",
            reason=(
                f"access is {tenant.access.level.value} as the {tenant.access.source} says "
                f"({tenant.access.reason}): nothing to enforce"
            ),
        )
        builder.attribute(mark)
    _plan_dunning(builder, tenant, stripe_gap)
    if builder.has_levers:
        plan_dunning_levers(builder, tenant)


def _plan_sync(
    builder: PlanBuilder, tenant: DesiredTenant, stripe_gap: str | None, *, forced: bool
) -> None:
    """The billing mirror: copy Stripe when D1's digest differs, or when a lever asks."""
    target = f"Tenant/{tenant.name}"
    facts = builder.observed.billing.get(tenant.customer)
    if stripe_gap is not None or facts is None:
        if forced:
            builder.block(
                ActionKind.SYNC_BILLING,
                target,
                tenant=tenant.name,
                site=None,
                gate="refused",
                reason=stripe_gap or f"Stripe has no customer {tenant.customer}: nothing to copy",
                source=builder.source(Kind.TENANT, tenant.name, "spec.stripe"),
            )
        return
    digest = billing_digest(facts)
    mirrored = builder.observed.billing_mirror.get(tenant.customer)
    if mirrored == digest and not forced:
        return
    owed = _owed(facts.open_invoices, builder.desired.specs.policies[tenant.policy].spec)
    state = "has no copy of" if mirrored is None else "has an outdated copy of"
    reason = (
        f"D1 {state} the Stripe billing of customer {tenant.customer}; Stripe "
        f"shows {owed}: copy it (read from Stripe, so a missed webhook does "
        "not matter)"
    )
    after: dict[str, JsonValue] = {
        "tenant": tenant.name,
        "customer": tenant.customer,
        "digest": digest,
        "display_name": tenant.display_name,
        "policy": tenant.policy,
        "whatsapp": tenant.whatsapp,
    }
    if mirrored == digest:
        reason = (
            "asked by hand (reconciler sync-billing): D1's copy of customer "
            f"{tenant.customer} looks current (Stripe shows {owed}); read Stripe and "
            "copy subscriptions and invoices again"
        )
        after["requested_at"] = builder.desired.now
    builder.billing_actions[tenant.name] = builder.add(
        ActionKind.SYNC_BILLING,
        target,
        tenant=tenant.name,
        site=None,
        before={"mirror": mirrored},
        after=after,
        reason=reason,
        source=builder.source(Kind.TENANT, tenant.name, "spec.stripe"),
        cause=Cause.DRIFT,
    )


def _plan_access(builder: PlanBuilder, tenant: DesiredTenant, stripe_gap: str | None) -> None:
    target = f"Tenant/{tenant.name}"
    decision = tenant.access
    record = builder.observed.tenants.get(tenant.name)
    current = record.access if record is not None else Access.ACTIVE.value
    if decision.level.value == current:
        return
    if decision.source == "policy" and stripe_gap is not None:
        _wait(builder, tenant, target, f"access not re-evaluated: {stripe_gap}")
        return
    kind = {
        Access.ACTIVE: ActionKind.UNLOCK,
        Access.SOFT_LOCKED: ActionKind.SOFT_LOCK,
        Access.HARD_LOCKED: ActionKind.HARD_LOCK,
    }[decision.level]
    field_path = "spec.access" if decision.source == "override" else "spec.policy"
    action_id = builder.add(
        kind,
        target,
        tenant=tenant.name,
        site=None,
        before={"access": current},
        after={
            "tenant": tenant.name,
            "access": decision.level.value,
            "source": decision.source,
            "reason": decision.reason,
        },
        reason=_access_reason(decision, current),
        source=builder.source(Kind.TENANT, tenant.name, field_path),
        cause=Cause.CHANGE,
        depends_on=builder.billing_of(tenant.name),
    )
    builder.tenant_actions[tenant.name].append(action_id)


def _wait(builder: PlanBuilder, tenant: DesiredTenant, target: str, reason: str) -> None:
    """A tenant-level change that waits for a reading: noted ``waiting``."""
    builder.note(target, tenant=tenant.name, site=None, category="waiting", reason=reason)


def _plan_dunning(builder: PlanBuilder, tenant: DesiredTenant, stripe_gap: str | None) -> None:
    if not tenant.dunning:
        return
    whatsapp_gap = builder.incomplete(Source.WHATSAPP)
    for due in tenant.dunning:
        target = f"Invoice/{due.invoice_id}:{due.step_code}"
        record = builder.observed.dunning.get((due.invoice_id, due.step_code))
        resend = record is not None and resend_after_fix(record.status, record.phone, due.phone)
        if record is not None and record.status != "pending" and not resend:
            continue  # sent, failed for good, or skipped: at most once per (invoice, step)
        if stripe_gap is not None:
            continue  # derive saw no invoices it can trust; nothing is due
        if whatsapp_gap is not None:
            _wait(
                builder,
                tenant,
                target,
                f"dunning step {due.step_code} is due but waits: {whatsapp_gap}",
            )
            continue
        unsent, skipped = _superseded(builder, due)
        state = "has not been sent"
        if resend:
            state = (
                f"failed ({record.error_message if record is not None else ''}); the number "
                "was corrected in the tenant spec since, so it is sent once more"
            )
        add_dunning(
            builder,
            tenant,
            due,
            record=record,
            superseded=list[JsonValue](unsent),
            resend=resend,
            reason=(
                f"dunning step {due.step_code} (day {due.day} of the schedule) is due for "
                f"invoice {due.invoice_id} and {state}{skipped}"
            ),
        )


def _superseded(builder: PlanBuilder, due: DunningDue) -> tuple[list[str], str]:
    """The earlier steps a send records as skipped, and the words that say so (or "")."""
    # Earlier steps already logged (sent, failed, skipped) are not superseded again.
    unsent = [
        code
        for code in due.superseded
        if (logged := builder.observed.dunning.get((due.invoice_id, code))) is None
        or logged.status == "pending"
    ]
    if not unsent:
        return unsent, ""
    steps = ", ".join(unsent)
    noun = "step" if len(unsent) == 1 else "steps"
    verb = "was" if len(unsent) == 1 else "were"
    return unsent, (
        f"; the earlier {noun} {steps} {verb} never sent and will be recorded as "
        "skipped, so the tenant gets one message, not several"
    )


def _owed(invoices: Sequence[Invoice], policy: BillingPolicySpec) -> str:
    """``"1 open invoice (29.00 USD)"``, ``"2 unpaid invoices (29.00 USD, 10.00 EUR)"``.

    Counts what :func:`~reconciler.core.policy.invoice_owed` counts; "unpaid" once one of
    them is ``uncollectible`` (still owed under the policy).
    """
    owing = owed_invoices(invoices, policy)
    if not owing:
        return "no open invoice"
    totals: dict[str, int] = defaultdict(int)
    for item in owing:
        totals[item.currency] += item.amount_due
    amounts = ", ".join(format_amount(amount, cur) for cur, amount in sorted(totals.items()))
    word = "open" if all(item.status == "open" for item in owing) else "unpaid"
    return f"{len(owing)} {word} invoice{'s' if len(owing) != 1 else ''} ({amounts})"


def _access_reason(decision: AccessDecision, current: str) -> str:
    """Why a tenant's access changes, with the amount owed and what the change does."""
    reason = decision.reason
    invoice = decision.invoice
    if invoice is not None and invoice.id in reason:
        amount = format_amount(invoice.amount_due, invoice.currency)
        reason = reason.replace(invoice.id, f"{invoice.id} ({amount})", 1)
    if decision.source == "policy" and decision.level is Access.ACTIVE:
        reason = "no invoice is open any more (paid or voided)"
    if decision.level is Access.HARD_LOCKED:
        reason += "; publishes stop and the tenant's hostnames serve the suspension page"
    elif current == Access.HARD_LOCKED.value:
        reason += "; the tenant's hostnames serve its sites again"
    return reason
