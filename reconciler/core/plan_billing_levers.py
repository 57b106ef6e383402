"""plan_billing_levers: a tenant's manual levers: sync its billing, enforce access, send a step.

Called by ``core/plan_billing.py`` (the tenant area of :func:`reconciler.core.plan.build_plan`)
for the ``sync_billing``, ``enforce`` and ``send_dunning`` levers of ``core.levers``: each
becomes the same ``sync_billing``, lock or ``send_dunning`` action the planner makes by
itself, or a refusal whose reason says what forbids it (a step already sent, one whose
outcome is unknown, nothing owed, a manual access override). Calls ``core.policy`` for the
owed rule and a named step's message. Pure.
"""

from __future__ import annotations

from reconciler.core.desired import DesiredTenant
from reconciler.core.facts import Invoice
from reconciler.core.levers import Lever, LeverKind
from reconciler.core.observed import DunningRecord, Source
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.policy import DunningDue, dunning_step, invoice_owed
from reconciler.spec.vocabulary import Kind


def plan_dunning_levers(builder: PlanBuilder, tenant: DesiredTenant) -> None:
    """Honour or refuse every ``send_dunning`` lever that names this tenant or its invoices."""
    for lever in builder.settings.selection.levers:
        if lever.kind is not LeverKind.SEND_DUNNING:
            continue
        resolved = _resolve(builder, tenant, lever)
        if resolved is None:
            continue
        builder.reached.add(lever)
        mark = builder.mark()
        invoice, step = resolved
        refusal = _refusal(builder, tenant, invoice, step)
        if refusal is not None:
            builder.block(
                ActionKind.SEND_DUNNING,
                lever.target if invoice is None else f"Invoice/{invoice.id}:{step or ''}",
                tenant=tenant.name,
                site=None,
                gate="refused",
                reason=refusal,
                source=builder.source(Kind.TENANT, tenant.name, "spec.whatsapp"),
            )
        else:
            assert invoice is not None and step is not None  # _refusal refuses both
            _send(builder, tenant, invoice, step)
        builder.attribute(mark)


def _resolve(
    builder: PlanBuilder, tenant: DesiredTenant, lever: Lever
) -> tuple[Invoice | None, str | None] | None:
    """The invoice and step a lever means, or None when it is not about this tenant."""
    facts = builder.observed.billing.get(tenant.customer)
    unsettled = {inv.id: inv for inv in facts.open_invoices} if facts is not None else {}
    if lever.target == f"Tenant/{tenant.name}":
        invoice = tenant.oldest_open_invoice
        step = lever.step
        if step is None and invoice is not None:
            step = next((d.step_code for d in tenant.dunning if d.invoice_id == invoice.id), None)
        return invoice, step
    kind, _, name = lever.target.partition("/")
    ident, _, code = name.partition(":")
    if kind != "Invoice" or ident not in unsettled:
        return None
    return unsettled[ident], code or lever.step


def _refusal(
    builder: PlanBuilder, tenant: DesiredTenant, invoice: Invoice | None, step: str | None
) -> str | None:
    """Why the step must not be sent now, or None (``core.policy`` rule 6)."""
    for source in (Source.D1, Source.STRIPE, Source.WHATSAPP):
        gap = builder.incomplete(source)
        if gap is not None:
            return f"nothing is sent while {gap}"
    if tenant.access.source == "override":
        return (
            f"tenant {tenant.name} has a manual access override ({tenant.access.reason}): "
            "dunning is off while it lasts"
        )
    if invoice is None:
        return f"tenant {tenant.name} owes nothing: no invoice is open"
    policy = builder.desired.specs.policies[tenant.policy].spec
    if not invoice_owed(invoice, policy):
        return (
            f"invoice {invoice.id} is {invoice.status} and not owed under policy "
            f"{tenant.policy} (uncollectible: {policy.uncollectible.value})"
        )
    codes = ", ".join(step.code for step in policy.dunning) or "none"
    if step is None:
        return f"no step is due yet for invoice {invoice.id}; name one with --step ({codes})"
    if all(known.code != step for known in policy.dunning):
        return f"policy {tenant.policy} has no dunning step {step} (its steps: {codes})"
    return _log_refusal(builder.observed.dunning.get((invoice.id, step)), invoice.id, step)


def _log_refusal(record: DunningRecord | None, invoice: str, step: str) -> str | None:
    """What the log row forbids: a sent step, or one whose outcome is unknown."""
    if record is None:
        return None
    what = f"step {step} of invoice {invoice}"
    if record.status == "sent":
        return f"{what} was already sent: a step is never sent twice"
    unknown = record.status == "unknown" or (
        record.status == "pending" and record.attempts > 0 and not record.error_message
    )
    if unknown:
        detail = f" ({record.error_message})" if record.error_message else ""
        return (
            f"the outcome of the last send of {what} is unknown{detail}: it is never sent "
            "again, so no tenant is messaged twice"
        )
    return None


def _send(builder: PlanBuilder, tenant: DesiredTenant, invoice: Invoice, step: str) -> None:
    """The ``send_dunning`` action of the lever (the planner's own, when it already has it)."""
    target = f"Invoice/{invoice.id}:{step}"
    for action in builder.actions:
        if action.target == target and action.kind is ActionKind.SEND_DUNNING:
            builder.forced.add(action.id)
            return
    policy = builder.desired.specs.policies[tenant.policy].spec
    due = dunning_step(
        policy=policy,
        invoice=invoice,
        step_code=step,
        tenant_name=tenant.display_name,
        phone=tenant.whatsapp,
        now=builder.desired.now,
    )
    assert due is not None  # _refusal checked the step exists
    record = builder.observed.dunning.get((invoice.id, step))
    resend = record is not None and record.status in ("failed", "skipped")
    again = ""
    if record is not None and resend:
        again = f" (it was {record.status}: {record.error_message or 'no error'})"
    add_dunning(
        builder,
        tenant,
        due,
        record=record,
        superseded=[],
        resend=resend,
        reason=(
            f"asked by hand (reconciler send-dunning): send step {step} (day {due.day} of the "
            f"schedule) for invoice {invoice.id} now{again}"
        ),
    )


def add_dunning(
    builder: PlanBuilder,
    tenant: DesiredTenant,
    due: DunningDue,
    *,
    record: DunningRecord | None,
    superseded: list[JsonValue],
    resend: bool,
    reason: str,
) -> None:
    """The one ``send_dunning`` action of ``due``: the planner's and the lever's alike."""
    after: dict[str, JsonValue] = {
        "tenant": tenant.name,
        "invoice_id": due.invoice_id,
        "step_code": due.step_code,
        "phone": due.phone,
        "message": due.message,
        "superseded": superseded,
    }
    if resend:
        after["resend"] = True
    builder.add(
        ActionKind.SEND_DUNNING,
        f"Invoice/{due.invoice_id}:{due.step_code}",
        tenant=tenant.name,
        site=None,
        before={"status": record.status if record is not None else None},
        after=after,
        reason=reason,
        source=builder.source(Kind.TENANT, tenant.name, "spec.whatsapp"),
        cause=Cause.CHANGE,
        depends_on=builder.billing_of(tenant.name),
    )
