"""Billing handlers: the Stripe mirror, locks, and dunning through the Evolution simulator.

Runbooks 3, 7 and 8 against a migrated D1: the mirror's digest equals what the planner
compares (``billing_digest``); locks are audited; each dunning step is sent at most once, an
invalid number fails once, a disconnected gateway leaves the step pending until it is back,
and a send interrupted between the call and its record is never repeated.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.facts import CustomerBilling, Invoice, Subscription
from reconciler.core.observed import billing_digest
from reconciler.core.outcome import Status
from reconciler.core.plan import ActionKind, JsonValue
from reconciler.runtime.actions.billing import INTERRUPTED_SEND

from support.actions import Checkpoints, Crash, Rig, make_action

CUSTOMER = "cus_acme"
PHONE = "+5511912345678"
DAY = 86400.0


def invoice(invoice_id: str, *, status: str = "open", created: float = 1_700_000_000.0) -> Invoice:
    return Invoice(
        id=invoice_id,
        customer=CUSTOMER,
        subscription="sub_acme",
        status=status,
        amount_due=4900,
        currency="usd",
        created=created,
        finalized_at=created + 60,
        hosted_invoice_url=f"https://pay.example/{invoice_id}",
        attempt_count=1,
    )


def facts(*invoices: Invoice) -> CustomerBilling:
    return CustomerBilling(
        customer=CUSTOMER,
        subscriptions=(
            Subscription(
                id="sub_acme", customer=CUSTOMER, status="past_due", latest_invoice="in_1"
            ),
        ),
        open_invoices=invoices,
    )


def sync_action() -> Any:
    after: dict[str, JsonValue] = {
        "tenant": "acme",
        "customer": CUSTOMER,
        "digest": "planned",
        "display_name": "Acme Bakery",
        "policy": "standard",
        "whatsapp": PHONE,
    }
    return make_action(ActionKind.SYNC_BILLING, "Tenant/acme", after, site=None)


def dunning_action(step: str = "D3", *, phone: str = PHONE, superseded: Any = ()) -> Any:
    after: dict[str, JsonValue] = {
        "tenant": "acme",
        "invoice_id": "in_1",
        "step_code": step,
        "phone": phone,
        "message": f"Acme Bakery, invoice in_1 is overdue ({step})",
        "superseded": list(superseded),
    }
    return make_action(ActionKind.SEND_DUNNING, f"Invoice/in_1:{step}", after, site=None)


def lock_action(kind: ActionKind, access: str, source: str = "policy") -> Any:
    after: dict[str, JsonValue] = {
        "tenant": "acme",
        "access": access,
        "source": source,
        "reason": "invoice in_1 is 8 days past due",
    }
    return make_action(kind, "Tenant/acme", after, site=None)


async def synced(rig: Rig, *invoices: Invoice) -> None:
    rig.stripe.billing[CUSTOMER] = facts(*invoices)
    outcome = await rig.run(sync_action())
    assert outcome.status is Status.APPLIED, outcome.message


async def log_row(rig: Rig, step: str = "D3") -> dict[str, Any]:
    rows = await rig.rows(
        "SELECT * FROM dunning_step_logs WHERE invoice_id = 'in_1' AND step_code = ?", (step,)
    )
    assert len(rows) == 1
    return rows[0]


def messages(rig: Rig) -> list[dict[str, Any]]:
    return rig.evo.state.messages_since(0)


# --------------------------------------------------------------------------- mirror


async def test_the_billing_sync_mirrors_stripe_and_stores_the_digest_the_planner_compares(
    rig: Rig,
) -> None:
    await synced(rig, invoice("in_1"))

    mirror = await rig.rows(
        "SELECT mirror_digest, status FROM billing_accounts WHERE provider_customer_id = ?",
        (CUSTOMER,),
    )
    assert mirror == [
        {"mirror_digest": billing_digest(facts(invoice("in_1"))), "status": "past_due"}
    ]
    tenant = (await rig.rows("SELECT * FROM tenants WHERE id = 'acme'"))[0]
    assert (tenant["name"], tenant["billing_policy"], tenant["whatsapp_phone"]) == (
        "Acme Bakery",
        "standard",
        PHONE,
    )
    [row] = await rig.rows("SELECT * FROM invoices")
    assert row["status"] == "open" and row["subscription_id"] == "sub_acme"
    assert row["first_failed_at"] == "2023-11-14T22:14:20Z"  # finalized_at, day 0 of dunning
    assert row["due_at"] == "2023-11-14T22:14:20Z"  # no due_date: due when finalised
    [sub] = await rig.rows("SELECT status FROM subscriptions")
    assert sub["status"] == "past_due"


async def test_an_invoice_paid_while_the_webhook_was_missed_is_closed_by_the_next_sync(
    rig: Rig,
) -> None:
    await synced(rig, invoice("in_1"))
    rig.stripe.invoices["in_1"] = invoice("in_1", status="paid")
    await synced(rig)  # Stripe lists no open invoice any more

    [row] = await rig.rows("SELECT status, paid_at FROM invoices")
    assert row["status"] == "paid" and row["paid_at"] is not None
    [account] = await rig.rows("SELECT status, mirror_digest FROM billing_accounts")
    assert account == {"status": "active", "mirror_digest": billing_digest(facts())}


# --------------------------------------------------------------------------- locks


async def test_a_hard_lock_sets_the_tenant_status_and_leaves_an_audit_event(rig: Rig) -> None:
    await synced(rig, invoice("in_1"))
    outcome = await rig.run(lock_action(ActionKind.HARD_LOCK, "hard_locked"))
    assert outcome.status is Status.APPLIED
    [tenant] = await rig.rows("SELECT status, status_reason, status_changed_at FROM tenants")
    assert tenant["status"] == "hard_locked"
    assert tenant["status_reason"] == "policy: invoice in_1 is 8 days past due"
    assert tenant["status_changed_at"] is not None
    [event] = await rig.rows("SELECT kind, resource, action_id, message FROM events")
    assert event["resource"] == "Tenant/acme" and event["kind"] == "tenant.access"
    assert "active -> hard_locked (policy)" in event["message"]
    [account] = await rig.rows("SELECT status FROM billing_accounts")
    assert account["status"] == "hard_locked"

    again = await rig.run(lock_action(ActionKind.HARD_LOCK, "hard_locked"))
    assert again.status is Status.UNCHANGED


async def test_a_manual_unlock_is_recorded_with_its_override_source(rig: Rig) -> None:
    await synced(rig, invoice("in_1"))
    await rig.run(lock_action(ActionKind.SOFT_LOCK, "soft_locked"))
    outcome = await rig.run(lock_action(ActionKind.UNLOCK, "active", source="override"))
    assert outcome.status is Status.APPLIED
    [tenant] = await rig.rows("SELECT status, status_reason FROM tenants")
    assert tenant["status"] == "active" and tenant["status_reason"].startswith("override: ")
    events = await rig.rows("SELECT data FROM events ORDER BY id")
    assert '"source":"override"' in str(events[-1]["data"])
    [account] = await rig.rows("SELECT status FROM billing_accounts")
    assert account["status"] == "past_due"  # still owing: unlocked by override, not by payment


# --------------------------------------------------------------------------- dunning


async def test_a_due_step_is_sent_once_and_logged_with_the_provider_response(rig: Rig) -> None:
    await synced(rig, invoice("in_1"))
    checkpoints = Checkpoints()
    outcome = await rig.run(
        dunning_action("D3", superseded=["FAIL_IMMEDIATE"]), checkpoints=checkpoints
    )

    assert outcome.status is Status.APPLIED, outcome.message
    assert checkpoints.passed == ["dunning.before-send", "dunning.after-send"]
    row = await log_row(rig)
    assert row["status"] == "sent" and row["attempts"] == 1
    assert row["provider_message_id"] == outcome.data["provider_message_id"]
    assert row["subscription_id"] == "sub_acme" and row["sent_at"] is not None
    assert '"key"' in row["provider_response"]
    assert (await log_row(rig, "FAIL_IMMEDIATE"))["status"] == "skipped"
    assert len(messages(rig)) == 1

    again = await rig.run(dunning_action("D3", superseded=["FAIL_IMMEDIATE"]), resumed=True)
    assert again.status is Status.UNCHANGED
    assert len(messages(rig)) == 1


async def test_a_number_not_on_whatsapp_fails_the_step_once_with_a_clear_reason(
    rig: Rig,
) -> None:
    await synced(rig, invoice("in_1"))
    rig.evo.state.set_on_whatsapp([PHONE], exists=False)

    outcome = await rig.run(dunning_action())

    assert outcome.status is Status.FAILED_PERMANENT
    row = await log_row(rig)
    assert row["status"] == "failed" and row["error_message"].startswith("invalid number")
    assert messages(rig) == []
    sends = len(rig.evo.state.calls_since(0))
    again = await rig.run(dunning_action())
    assert again.status is Status.UNCHANGED
    assert len(rig.evo.state.calls_since(0)) == sends  # never retried


async def test_a_malformed_number_fails_without_calling_the_gateway(rig: Rig) -> None:
    await synced(rig, invoice("in_1"))
    outcome = await rig.run(dunning_action(phone="11 91234"))
    assert outcome.status is Status.FAILED_PERMANENT
    assert "not an E.164 phone number" in (await log_row(rig))["error_message"]
    assert rig.evo.state.calls_since(0) == []


async def test_a_disconnected_gateway_leaves_the_step_pending_and_it_is_sent_when_back(
    rig: Rig,
) -> None:
    await synced(rig, invoice("in_1"))
    rig.evo.state.disconnect()

    outcome = await rig.run(dunning_action())

    assert outcome.status is Status.FAILED_TRANSIENT and outcome.retry_after == 60.0
    row = await log_row(rig)
    assert row["status"] == "pending" and row["error_message"]
    assert messages(rig) == []

    rig.evo.state.connect()
    sent = await rig.run(dunning_action(), resumed=True)
    assert sent.status is Status.APPLIED, sent.message
    row = await log_row(rig)
    assert row["status"] == "sent" and row["attempts"] == 2
    assert len(messages(rig)) == 1


async def test_a_send_interrupted_before_its_record_is_not_sent_again(rig: Rig) -> None:
    await synced(rig, invoice("in_1"))
    with pytest.raises(Crash):
        await rig.run(dunning_action(), checkpoints=Checkpoints(crash_at="dunning.after-send"))
    assert len(messages(rig)) == 1
    assert (await log_row(rig))["status"] == "pending"

    outcome = await rig.run(dunning_action(), resumed=True)

    assert outcome.status is Status.FAILED_PERMANENT
    assert outcome.message == INTERRUPTED_SEND
    row = await log_row(rig)
    assert row["status"] == "unknown" and row["error_message"] == INTERRUPTED_SEND
    assert len(messages(rig)) == 1


async def test_a_crash_before_the_send_call_is_also_never_sent_twice(rig: Rig) -> None:
    await synced(rig, invoice("in_1"))
    with pytest.raises(Crash):
        await rig.run(dunning_action(), checkpoints=Checkpoints(crash_at="dunning.before-send"))
    outcome = await rig.run(dunning_action(), resumed=True)
    assert outcome.status is Status.FAILED_PERMANENT  # unknown to the log: treated as maybe sent
    assert messages(rig) == []


async def test_a_send_whose_outcome_is_unknown_is_recorded_unknown_not_failed(rig: Rig) -> None:
    """A 5xx on the send: it may have gone out, so the row is ``unknown`` (never resent, and
    not ``failed``, which the runbook's manual resend would pick up)."""
    from reconciler.sandbox.faults import FaultRule

    await synced(rig, invoice("in_1"))
    rig.evo.state.faults.set(
        [FaultRule(path_prefix="/message/sendText", error_rate=1.0, error_status=503)]
    )
    outcome = await rig.run(dunning_action())
    rig.evo.state.faults.clear()

    assert outcome.status is Status.FAILED_PERMANENT
    assert outcome.message.startswith("outcome of the send is unknown")
    row = await log_row(rig)
    assert row["status"] == "unknown"
    sends = len(rig.evo.state.calls_since(0))
    again = await rig.run(dunning_action(), resumed=True)
    assert again.status is Status.UNCHANGED
    assert len(rig.evo.state.calls_since(0)) == sends  # never sent again
