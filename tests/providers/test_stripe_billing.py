"""The Stripe adapter against localstripe: what it reads, and what it costs in calls."""

from __future__ import annotations

import time

import pytest

import reconciler.providers.stripe as stripe_adapter
from reconciler.errors import NotFoundError
from reconciler.providers.stripe import StripeBilling
from reconciler.sandbox.localstripe import LocalStripe

DAY = 86400


async def test_failing_customer_has_one_open_invoice_ready_for_days_past_due(
    local: LocalStripe, billing: StripeBilling
) -> None:
    before = time.time()
    customer = local.create_customer(metadata={"tenant": "acme"})
    seeded = local.subscribe_failing(customer)
    after = time.time()

    result = await billing.customer_billing([customer])

    facts = result[customer]
    assert [s.status for s in facts.subscriptions] == ["incomplete"]
    assert [inv.id for inv in facts.open_invoices] == [seeded.invoice]
    invoice = facts.open_invoices[0]
    assert invoice.status == "open"
    assert invoice.customer == customer
    assert invoice.subscription == seeded.id
    assert invoice.amount_due == 2900
    assert invoice.currency == "usd"
    assert invoice.finalized_at is not None
    assert before - 2 <= invoice.overdue_since <= after + 2


async def test_paying_customer_has_no_open_invoice(
    local: LocalStripe, billing: StripeBilling
) -> None:
    customer = local.create_customer()
    seeded = local.subscribe(customer)

    facts = (await billing.customer_billing([customer]))[customer]

    assert facts.open_invoices == ()
    assert [(s.id, s.status, s.latest_invoice) for s in facts.subscriptions] == [
        (seeded.id, "active", seeded.invoice)
    ]
    assert facts.subscriptions[0].current_period_end is not None


async def test_open_invoice_disappears_and_subscription_is_active_after_payment(
    local: LocalStripe, billing: StripeBilling
) -> None:
    customer = local.create_customer()
    seeded = local.subscribe_failing(customer)
    assert seeded.invoice is not None
    assert len((await billing.customer_billing([customer]))[customer].open_invoices) == 1

    assert local.pay_invoice(seeded.invoice) == "paid"

    facts = (await billing.customer_billing([customer]))[customer]
    assert facts.open_invoices == ()
    assert [s.status for s in facts.subscriptions] == ["active"]
    paid = await billing.invoice(seeded.invoice)
    assert paid.status == "paid"


async def test_past_due_subscription_shows_its_new_open_invoice(
    local: LocalStripe, billing: StripeBilling
) -> None:
    customer = local.create_customer()
    seeded = local.subscribe(customer)

    past_due = local.make_past_due(seeded.id)

    facts = (await billing.customer_billing([customer]))[customer]
    assert [s.status for s in facts.subscriptions] == ["past_due"]
    assert [(inv.id, inv.subscription) for inv in facts.open_invoices] == [
        (past_due.invoice, seeded.id)
    ]


async def test_backdated_invoice_is_overdue_by_the_backdated_days(
    local: LocalStripe, billing: StripeBilling
) -> None:
    customer = local.create_customer()
    seeded = local.subscribe_failing(customer)
    assert seeded.invoice is not None
    now = time.time()

    local.backdate_invoice(seeded.invoice, now - 5 * DAY - 60)

    invoice = (await billing.customer_billing([customer]))[customer].open_invoices[0]
    assert int((now - invoice.overdue_since) // DAY) == 5


async def test_reading_customers_costs_two_calls_each_and_no_more(
    local: LocalStripe, billing: StripeBilling
) -> None:
    customers = [local.create_customer() for _ in range(6)]
    for index, customer in enumerate(customers):
        if index % 2:
            local.subscribe_failing(customer)
        else:
            local.subscribe(customer)
    unmanaged = local.create_customer()
    local.subscribe_failing(unmanaged)

    result = await billing.customer_billing([*customers, customers[0]])

    assert list(result) == customers
    assert billing.calls == 2 * len(customers)
    assert sum(len(facts.open_invoices) for facts in result.values()) == 3


async def test_listing_follows_pages_with_starting_after(
    local: LocalStripe, billing: StripeBilling, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = local.create_customer()
    plan = local.create_plan()
    ids = {local.subscribe_failing(customer, plan=plan).id for _ in range(3)}
    monkeypatch.setattr(stripe_adapter, "PAGE_SIZE", 2)

    facts = (await billing.customer_billing([customer]))[customer]

    assert {s.id for s in facts.subscriptions} == ids
    assert len(facts.open_invoices) == 3
    assert billing.calls == 4  # two pages of subscriptions, two of invoices


async def test_unknown_customer_is_left_out_instead_of_failing_the_batch(
    local: LocalStripe, billing: StripeBilling
) -> None:
    known = local.create_customer()

    result = await billing.customer_billing(["cus_doesnotexist", known])

    assert list(result) == [known]


async def test_reading_a_missing_invoice_raises_not_found(billing: StripeBilling) -> None:
    with pytest.raises(NotFoundError) as caught:
        await billing.invoice("in_doesnotexist")

    assert caught.value.status == 404
    assert caught.value.provider == "stripe"
