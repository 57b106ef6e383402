"""Webhook verification: only correctly signed, fresh Stripe events get through."""

from __future__ import annotations

import json
import queue
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import stripe

from reconciler.errors import PermanentError
from reconciler.providers.stripe import StripeBilling
from reconciler.sandbox.localstripe import LocalStripe
from reconciler.settings import Secret, StripeSettings

WEBHOOK_SECRET = "whsec_unit_" + secrets.token_hex(8)


@pytest.fixture
async def verifier() -> AsyncIterator[StripeBilling]:
    """An adapter used only to verify webhooks (it makes no request)."""
    settings = StripeSettings(base_url="http://127.0.0.1:9", webhook_secret=Secret(WEBHOOK_SECRET))
    async with StripeBilling(settings) as adapter:
        yield adapter


def invoice_paid_event(created: int | None = None) -> str:
    """A synthetic ``invoice.paid`` event, the kind localstripe never sends."""
    return json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "type": "invoice.paid",
            "created": created if created is not None else int(time.time()),
            "api_version": "2026-10-28.endive",
            "livemode": False,
            "data": {
                "object": {
                    "id": "in_1",
                    "object": "invoice",
                    "customer": "cus_1",
                    "status": "paid",
                }
            },
        }
    )


def test_correctly_signed_event_is_accepted_and_names_its_customer(
    verifier: StripeBilling,
) -> None:
    payload = invoice_paid_event()
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)

    event = verifier.verify_webhook(payload.encode(), header)

    assert (event.id, event.type, event.customer) == ("evt_1", "invoice.paid", "cus_1")
    assert (event.object_id, event.object_type) == ("in_1", "invoice")


def test_event_about_a_customer_names_that_customer(verifier: StripeBilling) -> None:
    payload = json.dumps(
        {
            "id": "evt_2",
            "object": "event",
            "type": "customer.updated",
            "created": int(time.time()),
            "data": {"object": {"id": "cus_9", "object": "customer"}},
        }
    )
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)

    assert verifier.verify_webhook(payload.encode(), header).customer == "cus_9"


def test_event_signed_with_another_secret_is_rejected(verifier: StripeBilling) -> None:
    payload = invoice_paid_event()
    header = stripe.WebhookSignature.generate_signature_header(payload, "whsec_other")

    with pytest.raises(PermanentError, match="signature"):
        verifier.verify_webhook(payload.encode(), header)


def test_tampered_body_is_rejected(verifier: StripeBilling) -> None:
    payload = invoice_paid_event()
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)
    tampered = payload.replace('"cus_1"', '"cus_2"')

    with pytest.raises(PermanentError, match="signature"):
        verifier.verify_webhook(tampered.encode(), header)


def test_replay_older_than_the_tolerance_is_rejected(verifier: StripeBilling) -> None:
    old = int(time.time()) - 301
    payload = invoice_paid_event(created=old)
    header = stripe.WebhookSignature.generate_signature_header(
        payload, WEBHOOK_SECRET, timestamp=old
    )

    with pytest.raises(PermanentError, match="tolerance"):
        verifier.verify_webhook(payload.encode(), header, tolerance=300)


def test_signature_inside_the_tolerance_is_accepted(verifier: StripeBilling) -> None:
    recent = int(time.time()) - 200
    payload = invoice_paid_event(created=recent)
    header = stripe.WebhookSignature.generate_signature_header(
        payload, WEBHOOK_SECRET, timestamp=recent
    )

    assert verifier.verify_webhook(payload.encode(), header, tolerance=300).created == recent


def test_signed_malformed_json_is_rejected(verifier: StripeBilling) -> None:
    payload = '{"id": "evt_1", "type": '
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)

    with pytest.raises(PermanentError, match="not a Stripe event"):
        verifier.verify_webhook(payload.encode(), header)


def test_signed_json_without_event_fields_is_rejected(verifier: StripeBilling) -> None:
    payload = json.dumps({"object": "event", "data": {}})
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)

    with pytest.raises(PermanentError):
        verifier.verify_webhook(payload.encode(), header)


@pytest.mark.parametrize("header", ["", "garbage", "t=notanumber,v1=abc", "t=123"])
def test_missing_or_garbled_signature_header_is_rejected(
    verifier: StripeBilling, header: str
) -> None:
    with pytest.raises(PermanentError, match="webhook rejected"):
        verifier.verify_webhook(invoice_paid_event().encode(), header)


async def test_without_a_configured_secret_every_webhook_is_rejected() -> None:
    payload = invoice_paid_event()
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)
    async with StripeBilling(StripeSettings(base_url="http://127.0.0.1:9")) as adapter:
        with pytest.raises(PermanentError, match="no webhook secret"):
            adapter.verify_webhook(payload.encode(), header)


def test_zero_tolerance_is_refused_because_it_disables_replay_protection(
    verifier: StripeBilling,
) -> None:
    payload = invoice_paid_event()
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)

    with pytest.raises(ValueError, match="tolerance"):
        verifier.verify_webhook(payload.encode(), header, tolerance=0)


def test_localstripe_delivers_events_the_adapter_verifies(
    local: LocalStripe,
    billing: StripeBilling,
    webhook_secret: str,
    webhook_receiver: tuple[str, queue.Queue[tuple[bytes, str]]],
) -> None:
    url, deliveries = webhook_receiver
    local.register_webhook(url, webhook_secret, hook_id="tests", events=["customer.created"])
    customer = local.create_customer(metadata={"tenant": "acme"})

    deadline = time.monotonic() + 30
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "localstripe delivered no customer.created for our customer"
        try:
            body, signature = deliveries.get(timeout=remaining)
        except queue.Empty:
            continue
        event = billing.verify_webhook(body, signature)
        if event.customer == customer:  # earlier tests' events may arrive too
            break

    assert event.type == "customer.created"
    assert event.object_type == "customer"


def test_a_timestamp_in_the_future_beyond_the_tolerance_is_rejected(
    verifier: StripeBilling,
) -> None:
    """The SDK bounds only the past; a future stamp would stretch the replay window."""
    future = int(time.time()) + 301
    payload = invoice_paid_event(created=future)
    header = stripe.WebhookSignature.generate_signature_header(
        payload, WEBHOOK_SECRET, timestamp=future
    )
    with pytest.raises(PermanentError, match="in the future, outside the tolerance"):
        verifier.verify_webhook(payload.encode(), header, tolerance=300)
    near = int(time.time()) + 200  # a little clock skew is fine
    header = stripe.WebhookSignature.generate_signature_header(
        payload, WEBHOOK_SECRET, timestamp=near
    )
    assert verifier.verify_webhook(payload.encode(), header, tolerance=300).id == "evt_1"
