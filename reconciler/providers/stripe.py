"""Stripe adapter: reads subscriptions and open invoices, and verifies signed webhooks.

Called by the runtime (observe, the billing mirror sync, the webhook endpoint) through
:class:`StripeBilling`; built by ``wiring`` from :class:`~reconciler.settings.StripeSettings`.
It calls the official ``stripe`` SDK (``StripeClient`` with its async methods over
``stripe.HTTPXClient``) and returns the core's plain facts (:mod:`reconciler.core.facts`).

Obligations (see ``../shared/contracts/stripe/NOTES.md``, section 6, for why each holds):

1. Read only. The adapter has no write method: it never creates charges, pays, voids or edits
   anything in Stripe.
2. One code path for real Stripe and localstripe: unsettled invoices are found by listing a
   customer's invoices and keeping ``open`` and ``uncollectible`` ones here
   (``core.policy.UNSETTLED_STATUSES``; whether they are owed is ``core.policy.invoice_owed``'s
   decision; no ``status=`` filter on the list call);
   paging uses only ``limit`` + ``starting_after`` (``auto_paging_iter``); an invoice's
   subscription comes from ``parent.subscription_details.subscription`` with the legacy
   top-level ``subscription`` as fallback; a subscription's period end from its first item,
   with the legacy top-level ``current_period_end`` as fallback. ``due_date``,
   ``next_payment_attempt`` and ``attempt_count`` are kept as optional hints only.
3. Every SDK failure becomes :class:`~reconciler.errors.TransientError` (connection errors,
   timeouts, 429 with a retry hint, 5xx) or :class:`~reconciler.errors.PermanentError`
   (invalid request, authentication, permission, card errors; ``NotFoundError`` for 404),
   raised ``from`` the SDK error, with the API key scrubbed from every message.
4. Webhooks are hints: :meth:`StripeBilling.verify_webhook` only authenticates and summarises
   an event; callers re-read the customer's billing through the API before acting.
5. ``calls`` counts every HTTP request sent to Stripe, so tests and benchmarks can assert the
   cost of an observation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import stripe

from reconciler.core.facts import CustomerBilling, Invoice, Subscription
from reconciler.core.policy import UNSETTLED_STATUSES
from reconciler.core.provider import Provider
from reconciler.errors import NotFoundError, PermanentError, ProviderError, TransientError
from reconciler.providers.closing import AsyncClosing
from reconciler.redact import redact, register
from reconciler.settings import StripeSettings

PROVIDER = Provider.STRIPE

PAGE_SIZE = 100
"""Stripe's maximum page size; one list call returns up to this many objects."""

DEFAULT_RATE_LIMIT_BACKOFF = 2.0
"""Seconds to wait after a 429 that carries no ``Retry-After`` header."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified Stripe webhook event, reduced to what tells the reconciler where to look.

    ``customer`` is the customer the event concerns (the object itself for ``customer.*``
    events), or ``None`` when the event names none. ``object_id`` and ``object_type`` identify
    ``data.object`` (for example ``in_…`` / ``invoice``).
    """

    id: str
    type: str
    customer: str | None
    created: int
    object_id: str | None = None
    object_type: str | None = None


class _CountingHTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx transport, counting every request it sends (retries included)."""

    def __init__(self, owner: StripeBilling, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._owner = owner

    async def request_async(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        post_data: Any = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        self._owner.calls += 1
        return await super().request_async(method, url, headers, post_data)


class StripeBilling(AsyncClosing):
    """Read-only Stripe adapter for the managed customers' billing facts.

    Use as an async context manager (or call :meth:`aclose`) so the HTTP connections are
    released.

    Attributes:
        calls: number of HTTP requests sent to Stripe since construction (never reset here).
    """

    def __init__(
        self,
        settings: StripeSettings,
        *,
        concurrency: int = 8,
        timeout: float = 30.0,
        max_network_retries: int = 0,
    ) -> None:
        """Build the SDK client from settings.

        Args:
            settings: base URL (``https://api.stripe.com`` or a localstripe address), API key
                and webhook secret.
            concurrency: how many customers are read at the same time.
            timeout: per-request timeout in seconds.
            max_network_retries: SDK-level retries; 0 by default because the runtime retries
                :class:`TransientError` with its own backoff and budget.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.calls = 0
        self._base_url = settings.base_url.rstrip("/")
        self._api_key = settings.api_key
        self._webhook_secret = settings.webhook_secret
        register((settings.api_key.reveal(), settings.webhook_secret.reveal()))
        self._concurrency = concurrency
        self._http = _CountingHTTPXClient(self, timeout=timeout)
        self._client = stripe.StripeClient(
            settings.api_key.reveal(),
            base_addresses={"api": self._base_url},
            max_network_retries=max_network_retries,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        """Show where the adapter points, never its credentials."""
        return f"StripeBilling(base_url={self._base_url!r}, calls={self.calls})"

    async def aclose(self) -> None:
        """Close the HTTP connections (idempotent)."""
        await self._http.close_async()  # type: ignore[no-untyped-call]  # SDK leaves it untyped

    async def customer_billing(self, customer_ids: Sequence[str]) -> dict[str, CustomerBilling]:
        """Read subscriptions and open invoices of exactly the given customers.

        Cost: two list calls per customer (subscriptions with ``status=all``, invoices), plus
        one more per extra page of 100; customers are read ``concurrency`` at a time.

        Args:
            customer_ids: Stripe customer ids (duplicates are read once).

        Returns:
            ``CustomerBilling`` per customer id, in the order given. A customer Stripe does not
            know (404) is left out of the result: callers must treat a missing key as "no such
            customer", never as "no open invoices".

        Raises:
            TransientError: Stripe could not be reached, throttled us, or failed (5xx).
            PermanentError: the request was refused (authentication, invalid request).
        """
        unique = list(dict.fromkeys(customer_ids))
        gate = asyncio.Semaphore(self._concurrency)

        async def one(customer: str) -> CustomerBilling | None:
            async with gate:
                try:
                    return await self._read_customer(customer)
                except NotFoundError:
                    return None

        results = await asyncio.gather(*(one(customer) for customer in unique))
        return {billing.customer: billing for billing in results if billing is not None}

    async def invoice(self, invoice_id: str) -> Invoice:
        """Read one invoice (for example the one a webhook named).

        Raises:
            NotFoundError: no such invoice.
            TransientError: Stripe could not be reached, throttled us, or failed (5xx).
            PermanentError: any other refusal.
        """
        try:
            found = await self._client.v1.invoices.retrieve_async(invoice_id)
        except stripe.StripeError as exc:
            raise self._translate(exc, f"retrieving invoice {invoice_id}") from exc
        return _invoice_from(found.to_dict())

    def verify_webhook(
        self, payload: bytes, sig_header: str, *, tolerance: int = 300, now: float | None = None
    ) -> WebhookEvent:
        """Verify a webhook's ``Stripe-Signature`` against the raw body and summarise it.

        Args:
            payload: the raw request body, exactly as received.
            sig_header: the ``Stripe-Signature`` header value.
            tolerance: how far the signature timestamp may be from now, in seconds, in the
                past (the replay window) and in the future (a forged or skewed clock); must be
                positive.
            now: the current time, epoch seconds (default: the system clock).

        Returns:
            The event's id, type, customer, creation time and object.

        Raises:
            PermanentError: no webhook secret configured, a signature that does not match,
                a timestamp outside the tolerance, or a body that is not a Stripe event.
        """
        if tolerance <= 0:
            raise ValueError("tolerance must be positive; 0 would disable replay protection")
        if not self._webhook_secret:
            raise PermanentError(PROVIDER, "webhook rejected: no webhook secret is configured")
        try:
            event = self._client.construct_event(
                payload, sig_header, self._webhook_secret.reveal(), tolerance
            )
            data = event.to_dict()
        except stripe.SignatureVerificationError as exc:
            raise PermanentError(PROVIDER, f"webhook rejected: {exc.user_message}") from exc
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, thin events
            raise PermanentError(PROVIDER, "webhook rejected: body is not a Stripe event") from exc
        _check_not_in_future(sig_header, tolerance, time.time() if now is None else now)
        try:
            return _event_from(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(PROVIDER, "webhook rejected: event lacks id/type/created") from exc

    async def _read_customer(self, customer: str) -> CustomerBilling:
        subscriptions: list[Subscription] = []
        open_invoices: list[Invoice] = []
        try:
            sub_page = await self._client.v1.subscriptions.list_async(
                {"customer": customer, "status": "all", "limit": PAGE_SIZE}
            )
            async for sub in sub_page.auto_paging_iter():
                subscriptions.append(_subscription_from(sub.to_dict()))
            invoice_page = await self._client.v1.invoices.list_async(
                {"customer": customer, "limit": PAGE_SIZE}
            )
            async for found in invoice_page.auto_paging_iter():
                if found.status in UNSETTLED_STATUSES:
                    open_invoices.append(_invoice_from(found.to_dict()))
        except stripe.StripeError as exc:
            raise self._translate(exc, f"reading billing of customer {customer}") from exc
        return CustomerBilling(
            customer=customer,
            subscriptions=tuple(subscriptions),
            open_invoices=tuple(sorted(open_invoices, key=lambda inv: (inv.created, inv.id))),
        )

    def _translate(self, exc: stripe.StripeError, what: str) -> ProviderError:
        """Map an SDK error to the project's error tree, never echoing the API key."""
        status = exc.http_status
        detail = exc.user_message or str(exc) or type(exc).__name__
        message = _scrub(f"{what}: {type(exc).__name__}: {detail}", self._api_key.reveal())
        if isinstance(exc, stripe.RateLimitError) or status == 429:
            return TransientError(
                PROVIDER, message, status=status or 429, retry_after=_retry_after(exc)
            )
        if isinstance(exc, stripe.APIConnectionError):
            return TransientError(PROVIDER, message, status=status)
        if isinstance(
            exc,
            stripe.InvalidRequestError
            | stripe.AuthenticationError
            | stripe.PermissionError
            | stripe.CardError
            | stripe.IdempotencyError,
        ):
            if status == 404:
                return NotFoundError(PROVIDER, message, status=status)
            return PermanentError(PROVIDER, message, status=status)
        if status is None or status >= 500 or _header(exc, "stripe-should-retry") == "true":
            return TransientError(PROVIDER, message, status=status)
        if status == 404:
            return NotFoundError(PROVIDER, message, status=status)
        return PermanentError(PROVIDER, message, status=status)


def _check_not_in_future(sig_header: str, tolerance: int, now: float) -> None:
    """Refuse a signature timestamp more than ``tolerance`` seconds ahead of ``now``.

    The SDK bounds only the past (``timestamp < now - tolerance``); a timestamp ahead of the
    clock would otherwise stretch the replay window by however far ahead it is.
    """
    stamps = [
        part.partition("=")[2].strip()
        for part in sig_header.split(",")
        if part.strip().startswith("t=")
    ]
    try:
        stamp = int(stamps[0])
    except (IndexError, ValueError):
        raise PermanentError(PROVIDER, "webhook rejected: no signature timestamp") from None
    if stamp > now + tolerance:
        raise PermanentError(
            PROVIDER,
            f"webhook rejected: timestamp {stamp - now:.0f} s in the future, outside the "
            f"tolerance of {tolerance} s",
        )


def _scrub(text: str, secret: str) -> str:
    """Remove the API key (and anything shaped like a Stripe secret key) from ``text``."""
    register((secret,))
    return redact(text)


def _header(exc: stripe.StripeError, name: str) -> str | None:
    """Read a response header from an SDK error, case-insensitively."""
    for key, value in (exc.headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _retry_after(exc: stripe.StripeError) -> float:
    """The server's ``Retry-After`` in seconds, or a conservative default."""
    raw = _header(exc, "retry-after")
    if raw is not None:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
    return DEFAULT_RATE_LIMIT_BACKOFF


def _id_of(value: Any) -> str | None:
    """An id from a field that is either an id string or an expanded object."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return None


def _number(value: Any) -> float | None:
    """A timestamp or amount field as a number, or ``None`` when absent or not numeric."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _invoice_from(data: Mapping[str, Any]) -> Invoice:
    """Translate a Stripe invoice (as a plain dict) into the core's fact."""
    parent = data.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    if not isinstance(details, Mapping):
        details = {}
    subscription = _id_of(details.get("subscription")) or _id_of(data.get("subscription"))
    transitions = data.get("status_transitions") or {}
    created = _number(data.get("created"))
    attempt_count = data.get("attempt_count")
    return Invoice(
        id=str(data["id"]),
        customer=_id_of(data.get("customer")) or "",
        subscription=subscription,
        status=str(data.get("status") or ""),
        amount_due=int(data.get("amount_due") or 0),
        currency=str(data.get("currency") or "").lower(),
        created=created if created is not None else 0.0,
        finalized_at=_number(transitions.get("finalized_at")),
        due_date=_number(data.get("due_date")),
        hosted_invoice_url=data.get("hosted_invoice_url") or None,
        attempt_count=attempt_count if isinstance(attempt_count, int) else 0,
    )


def _subscription_from(data: Mapping[str, Any]) -> Subscription:
    """Translate a Stripe subscription (as a plain dict) into the core's fact."""
    period_end: float | None = None
    items = data.get("items")
    if isinstance(items, Mapping):
        first = (items.get("data") or [None])[0]
        if isinstance(first, Mapping):
            period_end = _number(first.get("current_period_end"))
    if period_end is None:
        period_end = _number(data.get("current_period_end"))
    return Subscription(
        id=str(data["id"]),
        customer=_id_of(data.get("customer")) or "",
        status=str(data.get("status") or ""),
        latest_invoice=_id_of(data.get("latest_invoice")),
        current_period_end=period_end,
    )


def _event_from(data: Mapping[str, Any]) -> WebhookEvent:
    """Summarise a verified event: which customer and object it concerns."""
    event_id = data["id"]
    event_type = data["type"]
    created = data["created"]
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        raise TypeError("event id and type must be strings")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise TypeError("event created must be a timestamp")
    inner = (data.get("data") or {}).get("object")
    obj: Mapping[str, Any] = inner if isinstance(inner, Mapping) else {}
    object_type = obj.get("object") if isinstance(obj.get("object"), str) else None
    object_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    customer = object_id if object_type == "customer" else _id_of(obj.get("customer"))
    return WebhookEvent(
        id=event_id,
        type=event_type,
        customer=customer,
        created=int(created),
        object_id=object_id,
        object_type=object_type,
    )
