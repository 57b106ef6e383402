"""Runbook 7, billing webhook not received: the tenant paid, but no webhook ever arrived.

localstripe has no webhook registered, so the payment is only visible through the API. The next
``apply`` reads it from Stripe (polling: a missed webhook changes nothing), mirrors the paid
invoice into D1 and unlocks the tenant.
"""

from __future__ import annotations

from support.scenario import DAY, Scenario


def test_a_payment_without_a_webhook_is_mirrored_on_the_next_pass_and_unlocks(
    world: Scenario,
) -> None:
    billing = world.tenant_with_site(domains=["www.acme.test"])
    world.settle()
    billing = world.fail_payment(billing)
    world.advance(8 * DAY)
    assert world.apply().code == 0
    assert world.tenant_status("acme") == "soft_locked"
    query = "SELECT status FROM invoices WHERE provider_invoice_id = ?"
    assert world.rows(query, billing.invoice) == [{"status": "open"}]

    world.pay(billing)  # paid in Stripe; no webhook is delivered
    assert world.rows(query, billing.invoice) == [{"status": "open"}]  # the runbook's symptom

    run = world.apply()
    assert run.code == 0, run.out
    assert "sync billing acme ... applied" in run.err
    assert world.rows(query, billing.invoice) == [{"status": "paid"}]
    assert world.tenant_status("acme") == "active"
    [subscription] = world.rows(
        "SELECT status FROM subscriptions WHERE provider_subscription_id = ?",
        billing.subscription,
    )
    assert subscription["status"] == "active"
    assert "nothing to do" in world.apply().out
