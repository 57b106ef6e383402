"""Error mapping: every SDK failure becomes Transient or Permanent, and keys never leak."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconciler.errors import NotFoundError, PermanentError, TransientError
from reconciler.providers.stripe import DEFAULT_RATE_LIMIT_BACKOFF, StripeBilling
from reconciler.sandbox.localstripe import LocalStripe
from reconciler.settings import Secret, StripeSettings

SECRET_KEY = "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"


def stripe_error(kind: str, message: str, **extra: Any) -> bytes:
    """A Stripe-shaped error body."""
    return json.dumps({"error": {"type": kind, "message": message, **extra}}).encode()


@pytest.fixture
async def stubbed(stub_stripe: tuple[str, Any]) -> AsyncIterator[tuple[StripeBilling, Any]]:
    """An adapter pointed at the canned-reply server."""
    url, reply = stub_stripe
    settings = StripeSettings(base_url=url, api_key=Secret(SECRET_KEY))
    async with StripeBilling(settings) as adapter:
        yield adapter, reply


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_stripe_unreachable_is_transient() -> None:
    settings = StripeSettings(
        base_url=f"http://127.0.0.1:{closed_port()}", api_key=Secret(SECRET_KEY)
    )
    async with StripeBilling(settings) as adapter:
        with pytest.raises(TransientError) as caught:
            await adapter.customer_billing(["cus_1"])

    assert caught.value.status is None
    assert adapter.calls == 1  # no hidden SDK retries


async def test_key_localstripe_refuses_is_permanent(local: LocalStripe) -> None:
    settings = StripeSettings(base_url=local.base_url, api_key=Secret("pk_test_notasecretkey"))
    async with StripeBilling(settings) as adapter:
        with pytest.raises(PermanentError) as caught:
            await adapter.customer_billing(["cus_1"])

    assert not isinstance(caught.value, TransientError)
    assert caught.value.status == 401


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(stubbed: tuple[StripeBilling, Any], status: int) -> None:
    adapter, reply = stubbed
    reply.status = status
    reply.body = stripe_error("api_error", "Something went wrong on Stripe's end.")

    with pytest.raises(TransientError) as caught:
        await adapter.invoice("in_1")

    assert caught.value.status == status


async def test_rate_limit_is_transient_with_the_servers_retry_hint(
    stubbed: tuple[StripeBilling, Any],
) -> None:
    adapter, reply = stubbed
    reply.status = 429
    reply.headers = {"Retry-After": "7"}
    reply.body = stripe_error("invalid_request_error", "Too many requests", code="rate_limit")

    with pytest.raises(TransientError) as caught:
        await adapter.customer_billing(["cus_1"])

    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)


async def test_rate_limit_without_a_hint_gets_the_default_backoff(
    stubbed: tuple[StripeBilling, Any],
) -> None:
    adapter, reply = stubbed
    reply.status = 429
    reply.body = stripe_error("invalid_request_error", "Too many requests", code="rate_limit")

    with pytest.raises(TransientError) as caught:
        await adapter.invoice("in_1")

    assert caught.value.retry_after == DEFAULT_RATE_LIMIT_BACKOFF


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "invalid_request_error"),
        (402, "card_error"),
        (403, "invalid_request_error"),
    ],
)
async def test_refusals_are_permanent(
    stubbed: tuple[StripeBilling, Any], status: int, kind: str
) -> None:
    adapter, reply = stubbed
    reply.status = status
    reply.body = stripe_error(kind, "Refused")

    with pytest.raises(PermanentError) as caught:
        await adapter.invoice("in_1")

    assert caught.value.status == status
    assert not isinstance(caught.value, NotFoundError)


async def test_conflict_is_transient_only_when_stripe_says_it_should_be_retried(
    stubbed: tuple[StripeBilling, Any],
) -> None:
    adapter, reply = stubbed
    reply.status = 409
    reply.body = stripe_error("api_error", "Conflict")
    with pytest.raises(PermanentError):
        await adapter.invoice("in_1")

    reply.headers = {"Stripe-Should-Retry": "true"}
    with pytest.raises(TransientError):
        await adapter.invoice("in_1")


async def test_errors_keep_the_sdk_error_as_their_cause(
    stubbed: tuple[StripeBilling, Any],
) -> None:
    adapter, reply = stubbed
    reply.status = 500

    with pytest.raises(TransientError) as caught:
        await adapter.invoice("in_1")

    assert type(caught.value.__cause__).__module__.startswith("stripe")


async def test_api_key_echoed_by_the_server_is_scrubbed_from_the_error(
    stubbed: tuple[StripeBilling, Any],
) -> None:
    adapter, reply = stubbed
    reply.status = 401
    reply.body = stripe_error("invalid_request_error", f"Invalid API Key provided: {SECRET_KEY}")

    with pytest.raises(PermanentError) as caught:
        await adapter.invoice("in_1")

    assert SECRET_KEY not in str(caught.value)
    assert SECRET_KEY not in repr(caught.value)
    assert "Invalid API Key provided: ***" in str(caught.value)


async def test_api_key_never_appears_in_reprs_or_debug_logs(
    local: LocalStripe, billing: StripeBilling, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # An earlier `reconciler run` in the same process holds third-party loggers at WARNING.
    caplog.set_level(logging.DEBUG, logger="stripe")
    customer = local.create_customer()
    local.subscribe_failing(customer)
    refused = StripeBilling(StripeSettings(base_url=local.base_url, api_key=Secret("sk_x")))

    await billing.customer_billing([customer])
    async with refused:
        with pytest.raises(PermanentError) as caught:
            await refused.customer_billing([customer])

    seen = [str(caught.value), repr(billing), repr(refused), repr(local), caplog.text]
    seen.append(repr(local.settings(webhook_secret="whsec_x")))
    assert "Request to Stripe api" in caplog.text  # the SDK did log at DEBUG
    for text in seen:
        assert api_key not in text
