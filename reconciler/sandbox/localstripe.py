"""localstripe as the sandbox's Stripe: a launcher for the process, and seeding helpers.

Used by ``tests/support/stripe.py`` (a session fixture), the scenario tests, ``reconciler
sandbox up`` and the demo. :class:`LocalStripe` starts ``python -m localstripe --port <free>
--from-scratch`` from the running interpreter's environment as a separate process (localstripe
is GPL and only ever run, never imported), waits until it answers, flushes its store between
tests (``DELETE /_config/data``) and always stops it again (``stop()``, the context managers,
and an ``atexit`` hook as a last resort).

The seeding helpers call the Stripe SDK directly: this is sandbox code, not the reconciler.
They follow what localstripe supports (``../shared/contracts/stripe/NOTES.md``): Plans rather
than Prices, one item per subscription, the card charged is the customer's
``invoice_settings.default_payment_method``, ``pm_card_visa`` pays and
``pm_card_chargeCustomerFail`` attaches fine but declines every charge. localstripe has no
clock; :meth:`LocalStripe.backdate_invoice` is the test-only way to age an invoice.
"""

from __future__ import annotations

import asyncio
import atexit
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import httpx
import stripe

from reconciler.providers.closing import AsyncClosing
from reconciler.sandbox.peer import LoggedPeer, free_port, spawn_logged
from reconciler.settings import Secret, StripeSettings

TEST_API_KEY = "sk_test_localstripe"
"""localstripe accepts any key that starts with ``sk_``; this one is used unless told otherwise."""

Interval = Literal["day", "week", "month", "year"]

GOOD_CARD = "pm_card_visa"
FAILING_CARD = "pm_card_chargeCustomerFail"


class LocalStripeError(RuntimeError):
    """localstripe could not be started, or stopped answering."""


@dataclass(frozen=True, slots=True)
class SeededSubscription:
    """What a seeding helper created: the subscription and its latest invoice."""

    id: str
    customer: str
    status: str
    invoice: str | None
    invoice_status: str | None


def _id_of(value: str | stripe.StripeObject | None) -> str:
    """An id from a field that is an id or an expanded object."""
    if isinstance(value, str):
        return value
    if value is None:
        raise LocalStripeError("localstripe returned an object without the expected reference")
    return str(value["id"])


class LocalStripe(LoggedPeer, AsyncClosing):
    """A localstripe process on a loopback port, with seeding helpers.

    Example::

        with LocalStripe() as local:
            customer = local.create_customer(metadata={"tenant": "acme"})
            local.subscribe_failing(customer)
            settings = local.settings()
    """

    _failure = LocalStripeError
    _what = "localstripe"

    def __init__(
        self,
        *,
        port: int | None = None,
        api_key: str = TEST_API_KEY,
        startup_timeout: float = 20.0,
        host: str = "127.0.0.1",
    ) -> None:
        """Configure, without starting anything.

        Args:
            port: the port to use; a free one is picked when ``None``.
            api_key: the key the seeding client sends; must start with ``sk_``.
            startup_timeout: seconds to wait for the first answer before giving up.
            host: the loopback address clients use to reach it.
        """
        if not api_key.startswith("sk_"):
            raise ValueError("localstripe only accepts secret keys (sk_...)")
        self._requested_port = port
        self._api_key = api_key
        super().__init__(host=host, startup_timeout=startup_timeout)
        self._client: stripe.StripeClient | None = None
        self._http_client: stripe.RequestsClient | None = None
        self._plans: dict[tuple[int, str, str], str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root to give the SDK, e.g. ``http://127.0.0.1:41234``."""
        return self._root()

    @property
    def api_key(self) -> str:
        """The test key seeding uses (any ``sk_`` key works against localstripe)."""
        return self._api_key

    def settings(self, webhook_secret: str = "") -> StripeSettings:
        """Settings that point the reconciler's Stripe adapter at this instance."""
        return StripeSettings(
            base_url=self.base_url,
            api_key=Secret(self._api_key),
            webhook_secret=Secret(webhook_secret),
        )

    def start(self) -> LocalStripe:
        """Start the process and wait until it answers (idempotent).

        Raises:
            LocalStripeError: it exited or did not answer within ``startup_timeout``; the
                message carries the tail of its output.
        """
        if self.running:
            return self
        wanted = self._requested_port
        if wanted is not None:
            self._launch(lambda: wanted, 1)
        else:
            self._launch(lambda: free_port(self._host), 3)
        return self

    def stop(self) -> None:
        """Terminate the process, reap it and release files (idempotent, never raises)."""
        atexit.unregister(self.stop)
        if self._http_client is not None:
            self._http_client.close()  # type: ignore[no-untyped-call]  # SDK leaves it untyped
            self._http_client = None
            self._client = None
        self._reap()

    async def __aenter__(self) -> Self:
        """Start without blocking the event loop (leaving the block calls :meth:`aclose`)."""
        await asyncio.to_thread(self.start)
        return self

    async def aclose(self) -> None:
        """Stop without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    def _spawn(self, port: int) -> None:
        self._port = port
        self._plans.clear()
        self._process, self._log = spawn_logged(
            "localstripe", ["--port", str(port), "--from-scratch"], log_prefix="localstripe-"
        )

    def _wait_ready(self) -> None:
        # localstripe binds [::] dual-stack; where net.ipv6.bindv6only=1 only [::1] answers.
        hosts = [self._host, "[::1]"] if self._host == "127.0.0.1" else [self._host]
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(timeout=2.0, auth=(self._api_key, "")) as http:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    code = None if process is None else process.returncode
                    raise LocalStripeError(
                        f"localstripe exited with code {code} before answering on port "
                        f"{self._port}; its output ends with:\n{self.output_tail()}"
                    )
                for host in hosts:
                    try:
                        answer = http.get(
                            f"http://{host}:{self._port}/v1/customers", params={"limit": 1}
                        )
                    except httpx.TransportError:
                        continue
                    if answer.status_code == 200:
                        self._host = host
                        return
                if time.monotonic() >= deadline:
                    raise LocalStripeError(
                        f"localstripe did not answer on port {self._port} of "
                        f"{' or '.join(hosts)} within {self._startup_timeout:.0f}s; "
                        f"its output ends with:\n{self.output_tail()}"
                    )
                time.sleep(0.05)

    # -- localstripe's own routes ----------------------------------------------------------

    def _config(self, method: str, path: str, data: Mapping[str, Any] | None = None) -> None:
        """Call one of localstripe's ``/_config`` routes (no auth) and check the answer."""
        try:
            answer = httpx.request(method, f"{self.base_url}{path}", data=data, timeout=10.0)
        except httpx.TransportError as exc:
            raise LocalStripeError(f"localstripe unreachable at {self.base_url}: {exc}") from exc
        if answer.status_code != 200:
            raise LocalStripeError(f"{method} {path}: HTTP {answer.status_code} {answer.text}")

    def flush(self) -> None:
        """Delete every object in the store (webhook registrations survive)."""
        self._config("DELETE", "/_config/data")
        self._plans.clear()

    def register_webhook(
        self,
        url: str,
        secret: str,
        *,
        hook_id: str = "sandbox",
        events: Sequence[str] = (),
    ) -> None:
        """Have localstripe POST signed events to ``url`` (about a second after each change).

        Re-registering ``hook_id`` replaces it; registrations last until the process stops.
        Delivery is attempted once, never retried.

        Args:
            url: the receiver, e.g. ``http://127.0.0.1:8080/webhooks/billing/stripe``.
            secret: the signing secret (``whsec_…``), the receiver's ``STRIPE_WEBHOOK_SECRET``.
            hook_id: the registration's name.
            events: event types to deliver; all when empty.
        """
        form: dict[str, Any] = {"url": url, "secret": secret}
        if events:
            form["events[]"] = list(events)
        self._config("POST", f"/_config/webhooks/{hook_id}", form)

    # -- seeding ---------------------------------------------------------------------------

    def client(self) -> stripe.StripeClient:
        """A synchronous SDK client for seeding (created once per start)."""
        if self._client is None:
            # Not HTTPXClient: its sync POSTs pass raw bytes as ``data=``, which httpx deprecates.
            self._http_client = stripe.RequestsClient(timeout=10)
            self._client = stripe.StripeClient(
                self._api_key,
                base_addresses={"api": self.base_url},
                max_network_retries=0,
                http_client=self._http_client,
            )
        return self._client

    def create_plan(
        self,
        *,
        amount: int = 2900,
        currency: str = "usd",
        interval: Interval = "month",
    ) -> str:
        """A product and a plan (localstripe has no Prices); reused until the next flush."""
        key = (amount, currency, interval)
        if key not in self._plans:
            client = self.client()
            product = client.v1.products.create({"name": "Site builder"})
            plan = client.v1.plans.create(
                {
                    "product": product.id,
                    "amount": amount,
                    "currency": currency,
                    "interval": interval,
                }
            )
            self._plans[key] = plan.id
        return self._plans[key]

    def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Create a customer and return its id."""
        params: dict[str, Any] = {"metadata": dict(metadata or {})}
        if email is not None:
            params["email"] = email
        if name is not None:
            params["name"] = name
        return self.client().v1.customers.create(params).id  # type: ignore[arg-type]

    def set_card(self, customer: str, card: str = GOOD_CARD) -> str:
        """Attach a test payment method and make it the one invoices charge; return its id."""
        client = self.client()
        method = client.v1.payment_methods.attach(card, {"customer": customer})
        client.v1.customers.update(
            customer, {"invoice_settings": {"default_payment_method": method.id}}
        )
        return method.id

    def subscribe(
        self,
        customer: str,
        *,
        card: str = GOOD_CARD,
        plan: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> SeededSubscription:
        """Subscribe ``customer`` to a monthly plan, charging ``card`` for the first invoice.

        With the good card the subscription is ``active`` and its invoice ``paid``; with
        :data:`FAILING_CARD` it is ``incomplete`` and its invoice stays ``open``.
        """
        self.set_card(customer, card)
        client = self.client()
        created = client.v1.subscriptions.create(
            {
                "customer": customer,
                "items": [{"plan": plan or self.create_plan()}],
                "metadata": dict(metadata or {}),
            }
        )
        return self._seeded(created.id)

    def subscribe_failing(
        self,
        customer: str,
        *,
        plan: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> SeededSubscription:
        """A subscription whose first payment is declined: ``incomplete``, invoice ``open``."""
        return self.subscribe(customer, card=FAILING_CARD, plan=plan, metadata=metadata)

    def make_past_due(self, subscription: str) -> SeededSubscription:
        """Turn an ``active`` subscription ``past_due`` with a new ``open`` invoice.

        localstripe never renews, so this switches the customer to a declining card and moves
        the subscription to a yearly plan, which invoices at once (the only way it bills an
        existing subscription).
        """
        client = self.client()
        current = client.v1.subscriptions.retrieve(subscription)
        customer = _id_of(current.customer)
        self.set_card(customer, FAILING_CARD)
        item = current["items"].data[0]
        plan = item["plan"]
        yearly = self.create_plan(amount=int(plan["amount"]) * 10, interval="year")
        client.v1.subscriptions.update(subscription, {"items": [{"id": item.id, "plan": yearly}]})
        return self._seeded(subscription)

    def pay_invoice(self, invoice: str) -> str:
        """Fix the customer's card and pay ``invoice``; return the invoice's status after.

        The subscription it belongs to becomes ``active`` again.
        """
        client = self.client()
        found = client.v1.invoices.retrieve(invoice)
        customer = _id_of(found.customer)
        self.set_card(customer, GOOD_CARD)
        paid = client.v1.invoices.pay(invoice)
        return str(paid.status)

    def backdate_invoice(self, invoice: str, when: float, *, attempt_count: int = 1) -> None:
        """Make ``invoice`` look created and finalized at ``when`` (epoch seconds).

        A localstripe-only hack (its generic update sets any existing attribute from a JSON
        body); real Stripe refuses it. Used to age an open invoice in the demo.
        """
        stamp = int(when)
        body = {
            "created": stamp,
            "status_transitions": {"finalized_at": stamp, "paid_at": None, "voided_at": None},
            "attempt_count": attempt_count,
        }
        try:
            answer = httpx.post(
                f"{self.base_url}/v1/invoices/{invoice}",
                json=body,
                auth=(self._api_key, ""),
                timeout=10.0,
            )
        except httpx.TransportError as exc:
            raise LocalStripeError(f"localstripe unreachable at {self.base_url}: {exc}") from exc
        if answer.status_code != 200:
            raise LocalStripeError(
                f"backdating {invoice}: HTTP {answer.status_code} {answer.text[:200]}"
            )

    def _seeded(self, subscription: str) -> SeededSubscription:
        found = self.client().v1.subscriptions.retrieve(
            subscription, {"expand": ["latest_invoice"]}
        )
        latest = found.latest_invoice
        invoice_id: str | None = None
        invoice_status: str | None = None
        if isinstance(latest, str):
            invoice_id = latest
        elif latest is not None:
            invoice_id, invoice_status = latest.id, latest.status
        customer = _id_of(found.customer)
        return SeededSubscription(
            id=found.id,
            customer=customer,
            status=str(found.status),
            invoice=invoice_id,
            invoice_status=invoice_status,
        )
