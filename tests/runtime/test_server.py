"""The daemon's endpoints: probes, metrics, and webhooks that refuse bad input and change nothing.

Requests go through ``httpx.ASGITransport`` (no sockets), except one test that serves the app
with uvicorn on a free loopback port inside the test's own event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import stripe
from starlette.applications import Starlette

from reconciler.providers.stripe import StripeBilling, WebhookEvent
from reconciler.runtime.metrics import Metrics
from reconciler.runtime.server import (
    DEFAULT_MAX_BODY,
    EndpointServer,
    GitPush,
    HealthReport,
    create_app,
)
from reconciler.settings import Secret, StripeSettings

GIT_SECRET = "git-" + secrets.token_hex(12)
STRIPE_SECRET = "whsec_daemon_" + secrets.token_hex(8)
SHA_A = "a" * 40
SHA_B = "b" * 40


@dataclass
class Daemon:
    """What the app is wired to: probe answers and the work the webhooks enqueued."""

    healthy: bool = True
    ready: bool = False
    pushes: list[GitPush] = field(default_factory=list)
    events: list[WebhookEvent] = field(default_factory=list)
    fail_callbacks: bool = False

    def health(self) -> HealthReport:
        return HealthReport(self.healthy, {"last_pass_at": 1000.0, "leader": True})

    def is_ready(self) -> bool:
        return self.ready

    async def on_git_push(self, push: GitPush) -> None:
        if self.fail_callbacks:
            raise RuntimeError("queue closed")
        self.pushes.append(push)

    async def on_stripe_event(self, event: WebhookEvent) -> None:
        if self.fail_callbacks:
            raise RuntimeError("queue closed")
        self.events.append(event)


@dataclass
class Harness:
    daemon: Daemon
    metrics: Metrics
    client: httpx.AsyncClient


@pytest.fixture
async def billing() -> AsyncIterator[StripeBilling]:
    """The real adapter, used only for its webhook verification (it sends no request)."""
    settings = StripeSettings(base_url="http://127.0.0.1:9", webhook_secret=Secret(STRIPE_SECRET))
    async with StripeBilling(settings) as adapter:
        yield adapter


def build_app(
    daemon: Daemon,
    metrics: Metrics,
    billing: StripeBilling,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    delivery_memory: int = 10_000,
) -> Starlette:
    return create_app(
        metrics=metrics,
        health=daemon.health,
        ready=daemon.is_ready,
        on_git_push=daemon.on_git_push,
        on_stripe_event=daemon.on_stripe_event,
        git_secret=Secret(GIT_SECRET),
        stripe_verifier=billing.verify_webhook,
        max_body=max_body,
        delivery_memory=delivery_memory,
    )


@pytest.fixture
async def harness(billing: StripeBilling) -> AsyncIterator[Harness]:
    daemon, metrics = Daemon(), Metrics()
    app = build_app(daemon, metrics, billing, max_body=4096)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        yield Harness(daemon, metrics, client)


@pytest.fixture
def webhook_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="reconciler.webhooks")
    yield caplog


# --------------------------------------------------------------------------- helpers


def push_body(**overrides: object) -> bytes:
    payload: dict[str, object] = {
        "ref": "refs/heads/main",
        "before": SHA_A,
        "after": SHA_B,
        "repository": {"full_name": "acme/fleet"},
        "pusher": {"name": "dev"},
    }
    payload.update(overrides)
    return json.dumps(payload).encode()


def sign(body: bytes, secret: str = GIT_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def git_headers(
    body: bytes,
    *,
    event: str = "push",
    delivery: str = "d-1",
    signature: str | bytes | None = None,
) -> dict[str, str | bytes]:
    headers: dict[str, str | bytes] = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    headers["X-Hub-Signature-256"] = sign(body) if signature is None else signature
    if not headers["X-Hub-Signature-256"]:
        del headers["X-Hub-Signature-256"]
    return headers


def stripe_payload(created: int | None = None, customer: str = "cus_42") -> str:
    return json.dumps(
        {
            "id": "evt_daemon_1",
            "object": "event",
            "type": "invoice.paid",
            "created": created if created is not None else int(time.time()),
            "livemode": False,
            "data": {"object": {"id": "in_7", "object": "invoice", "customer": customer}},
        }
    )


def stripe_headers(
    payload: str, *, timestamp: int | None = None, secret: str = STRIPE_SECRET
) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=timestamp if timestamp is not None else int(time.time())
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def webhook_count(metrics: Metrics, source: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "reconciler_webhook_requests_total", {"source": source, "result": result}
    )
    return value or 0.0


def rejections(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    found = []
    for record in caplog.records:
        if record.name == "reconciler.webhooks" and record.levelno == logging.WARNING:
            entry = dict(record.webhook)  # type: ignore[attr-defined]
            assert record.getMessage() == f"webhook {entry['source']} rejected"
            if entry["event"] == "webhook.rejected":
                found.append(entry)
    return found


# --------------------------------------------------------------------------- probes


async def test_healthz_is_200_with_details_while_the_loop_is_alive(harness: Harness) -> None:
    response = await harness.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "details": {"last_pass_at": 1000.0, "leader": True},
    }


async def test_healthz_is_503_when_the_loop_is_not_alive(harness: Harness) -> None:
    harness.daemon.healthy = False
    response = await harness.client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"


async def test_healthz_is_503_when_the_probe_itself_fails(billing: StripeBilling) -> None:
    def broken() -> HealthReport:
        raise RuntimeError("loop state unreadable")

    daemon = Daemon()
    app = create_app(
        metrics=Metrics(),
        health=broken,
        ready=daemon.is_ready,
        on_git_push=daemon.on_git_push,
        on_stripe_event=daemon.on_stripe_event,
        git_secret=Secret(GIT_SECRET),
        stripe_verifier=billing.verify_webhook,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://daemon"
    ) as client:
        response = await client.get("/healthz")
    assert response.status_code == 503


async def test_readyz_follows_the_readiness_probe(harness: Harness) -> None:
    assert (await harness.client.get("/readyz")).status_code == 503
    harness.daemon.ready = True
    response = await harness.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_metrics_serves_prometheus_text_with_the_updated_metrics(harness: Harness) -> None:
    harness.metrics.pass_finished(0.5)
    harness.metrics.set_leader(True)
    harness.metrics.api_call("cloudflare", 429)
    response = await harness.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "reconciler_passes_total" in text
    assert "reconciler_leader 1.0" in text
    assert 'reconciler_rate_limited_total{provider="cloudflare"} 1.0' in text


async def test_probes_refuse_other_methods(harness: Harness) -> None:
    assert (await harness.client.post("/healthz")).status_code == 405
    assert (await harness.client.get("/webhooks/git")).status_code == 405


# --------------------------------------------------------------------------- git webhook


async def test_a_signed_push_is_queued_as_a_git_push(harness: Harness) -> None:
    body = push_body()
    response = await harness.client.post(
        "/webhooks/git", content=body, headers=git_headers(body, delivery="abc-1")
    )
    assert response.status_code == 202
    assert harness.daemon.pushes == [
        GitPush(
            ref="refs/heads/main",
            before=SHA_A,
            after=SHA_B,
            delivery="abc-1",
            repository="acme/fleet",
        )
    ]
    assert webhook_count(harness.metrics, "git", "accepted") == 1


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("", "missing_signature"),
        ("sha1=0123", "bad_signature"),
        ("sha256=" + "0" * 64, "bad_signature"),
        ("sha256=not-hex-at-all", "bad_signature"),
        ("sha256=ünïcödé".encode("latin-1"), "bad_signature"),
    ],
)
async def test_a_push_without_a_valid_signature_is_401_and_changes_nothing(
    harness: Harness,
    webhook_logs: pytest.LogCaptureFixture,
    signature: str | bytes,
    reason: str,
) -> None:
    body = push_body()
    response = await harness.client.post(
        "/webhooks/git", content=body, headers=git_headers(body, signature=signature)
    )
    assert response.status_code == 401
    assert response.json()["error"] == reason
    assert harness.daemon.pushes == []
    assert webhook_count(harness.metrics, "git", reason) == 1
    [entry] = rejections(webhook_logs)
    assert entry["reason"] == reason and entry["status"] == 401 and entry["source"] == "git"


async def test_a_push_signed_with_another_secret_is_401(harness: Harness) -> None:
    body = push_body()
    headers = git_headers(body, signature=sign(body, "someone-elses-secret"))
    response = await harness.client.post("/webhooks/git", content=body, headers=headers)
    assert response.status_code == 401
    assert harness.daemon.pushes == []


async def test_a_body_changed_after_signing_is_401(harness: Harness) -> None:
    signed = push_body()
    tampered = push_body(after="c" * 40)
    response = await harness.client.post(
        "/webhooks/git", content=tampered, headers=git_headers(tampered, signature=sign(signed))
    )
    assert response.status_code == 401
    assert harness.daemon.pushes == []


async def test_every_push_is_refused_while_no_secret_is_configured(billing: StripeBilling) -> None:
    daemon = Daemon()
    app = create_app(
        metrics=Metrics(),
        health=daemon.health,
        ready=daemon.is_ready,
        on_git_push=daemon.on_git_push,
        on_stripe_event=daemon.on_stripe_event,
        git_secret=Secret(""),
        stripe_verifier=billing.verify_webhook,
    )
    body = push_body()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://daemon"
    ) as client:
        signed_with_empty = "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest()
        response = await client.post(
            "/webhooks/git", content=body, headers=git_headers(body, signature=signed_with_empty)
        )
    assert response.status_code == 401
    assert response.json()["error"] == "not_configured"
    assert daemon.pushes == []


async def test_a_replayed_delivery_id_is_409_and_queues_nothing_more(
    harness: Harness, webhook_logs: pytest.LogCaptureFixture
) -> None:
    body = push_body()
    headers = git_headers(body, delivery="same-id")
    first = await harness.client.post("/webhooks/git", content=body, headers=headers)
    again = await harness.client.post("/webhooks/git", content=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 409)
    assert len(harness.daemon.pushes) == 1
    assert [entry["reason"] for entry in rejections(webhook_logs)] == ["replayed_delivery"]


async def test_the_delivery_memory_is_bounded(billing: StripeBilling) -> None:
    daemon = Daemon()
    app = build_app(daemon, Metrics(), billing, delivery_memory=2)
    body = push_body()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://daemon"
    ) as client:
        for delivery in ("d1", "d2", "d3", "d1"):
            response = await client.post(
                "/webhooks/git", content=body, headers=git_headers(body, delivery=delivery)
            )
            assert response.status_code == 202, delivery
    assert [push.delivery for push in daemon.pushes] == ["d1", "d2", "d3", "d1"]


async def test_a_delivery_whose_handler_failed_may_be_redelivered(harness: Harness) -> None:
    body = push_body()
    headers = git_headers(body, delivery="retry-me")
    harness.daemon.fail_callbacks = True
    failed = await harness.client.post("/webhooks/git", content=body, headers=headers)
    harness.daemon.fail_callbacks = False
    retried = await harness.client.post("/webhooks/git", content=body, headers=headers)
    assert (failed.status_code, retried.status_code) == (500, 202)
    assert len(harness.daemon.pushes) == 1


async def test_ping_is_answered_with_pong(harness: Harness) -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    response = await harness.client.post(
        "/webhooks/git", content=body, headers=git_headers(body, event="ping")
    )
    assert response.status_code == 200
    assert response.json() == {"status": "pong"}
    assert harness.daemon.pushes == []


async def test_other_git_events_are_accepted_and_ignored(harness: Harness) -> None:
    body = json.dumps({"action": "opened"}).encode()
    response = await harness.client.post(
        "/webhooks/git", content=body, headers=git_headers(body, event="pull_request")
    )
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert harness.daemon.pushes == []
    assert webhook_count(harness.metrics, "git", "ignored") == 1


async def test_an_unsigned_ping_is_still_401(harness: Harness) -> None:
    body = b"{}"
    response = await harness.client.post(
        "/webhooks/git", content=body, headers=git_headers(body, event="ping", signature="")
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00", "malformed_json"),
        (b"[1, 2]", "malformed_payload"),
        (push_body(ref=None), "malformed_payload"),
        (push_body(ref="main"), "malformed_payload"),
        (push_body(after="HEAD"), "malformed_payload"),
        (push_body(before=7), "malformed_payload"),
        (push_body(repository="acme/fleet"), "malformed_payload"),
    ],
)
async def test_a_signed_but_malformed_push_is_400_and_changes_nothing(
    harness: Harness, webhook_logs: pytest.LogCaptureFixture, body: bytes, reason: str
) -> None:
    response = await harness.client.post("/webhooks/git", content=body, headers=git_headers(body))
    assert response.status_code == 400
    assert response.json()["error"] == reason
    assert harness.daemon.pushes == []
    assert webhook_count(harness.metrics, "git", reason) == 1
    assert [entry["reason"] for entry in rejections(webhook_logs)] == [reason]


async def test_a_malformed_push_does_not_use_up_its_delivery_id(harness: Harness) -> None:
    bad, good = b"{oops", push_body()
    first = await harness.client.post(
        "/webhooks/git", content=bad, headers=git_headers(bad, delivery="d-x")
    )
    second = await harness.client.post(
        "/webhooks/git", content=good, headers=git_headers(good, delivery="d-x")
    )
    assert (first.status_code, second.status_code) == (400, 202)


async def test_a_push_without_a_delivery_id_is_400(harness: Harness) -> None:
    body = push_body()
    headers = git_headers(body)
    del headers["X-GitHub-Delivery"]
    response = await harness.client.post("/webhooks/git", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "missing_delivery"
    assert harness.daemon.pushes == []


async def test_a_push_without_an_event_header_is_400(harness: Harness) -> None:
    body = push_body()
    headers = git_headers(body)
    del headers["X-GitHub-Event"]
    response = await harness.client.post("/webhooks/git", content=body, headers=headers)
    assert response.status_code == 400
    assert harness.daemon.pushes == []


async def test_an_oversized_push_is_413_by_its_declared_length(
    harness: Harness, webhook_logs: pytest.LogCaptureFixture
) -> None:
    body = push_body(padding="x" * 5000)
    response = await harness.client.post("/webhooks/git", content=body, headers=git_headers(body))
    assert response.status_code == 413
    assert harness.daemon.pushes == []
    assert [entry["reason"] for entry in rejections(webhook_logs)] == ["too_large"]


async def test_an_oversized_chunked_push_is_413_without_reading_it_all(harness: Harness) -> None:
    body = push_body(padding="x" * 20_000)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            sent.append(start)
            yield body[start : start + 1000]

    response = await harness.client.post(
        "/webhooks/git", content=chunks(), headers=git_headers(body)
    )
    assert response.status_code == 413
    assert harness.daemon.pushes == []
    assert len(sent) < len(body) // 1000, "the server stopped reading at the limit"


async def test_rejection_logs_carry_no_secret_signature_or_body(
    harness: Harness, webhook_logs: pytest.LogCaptureFixture
) -> None:
    body = push_body(after="d" * 40, marker="BODY-MARKER-7")
    wrong = sign(body, "wrong-secret")
    await harness.client.post(
        "/webhooks/git", content=body, headers=git_headers(body, signature=wrong)
    )
    payload = stripe_payload()
    await harness.client.post(
        "/webhooks/billing/stripe",
        content=payload,
        headers=stripe_headers(payload, secret="whsec_wrong"),
    )
    text = "\n".join(
        f"{record.getMessage()} {getattr(record, 'webhook', '')}" for record in webhook_logs.records
    )
    assert len(rejections(webhook_logs)) == 2
    for forbidden in (GIT_SECRET, STRIPE_SECRET, wrong[7:], "BODY-MARKER-7", "evt_daemon_1"):
        assert forbidden not in text


# --------------------------------------------------------------------------- stripe webhook


async def test_a_signed_stripe_event_only_asks_for_a_re_read_of_its_customer(
    harness: Harness,
) -> None:
    payload = stripe_payload(customer="cus_42")
    response = await harness.client.post(
        "/webhooks/billing/stripe", content=payload, headers=stripe_headers(payload)
    )
    assert response.status_code == 200
    [event] = harness.daemon.events
    assert (event.id, event.type, event.customer) == ("evt_daemon_1", "invoice.paid", "cus_42")
    assert webhook_count(harness.metrics, "stripe", "accepted") == 1


async def test_a_stripe_event_with_a_stale_timestamp_is_400_and_changes_nothing(
    harness: Harness, webhook_logs: pytest.LogCaptureFixture
) -> None:
    old = int(time.time()) - 3600
    payload = stripe_payload(created=old)
    response = await harness.client.post(
        "/webhooks/billing/stripe", content=payload, headers=stripe_headers(payload, timestamp=old)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "stale_timestamp"
    assert harness.daemon.events == []
    assert webhook_count(harness.metrics, "stripe", "stale_timestamp") == 1
    [entry] = rejections(webhook_logs)
    assert entry["source"] == "stripe" and entry["status"] == 400


async def test_a_stripe_event_signed_with_another_secret_is_400(harness: Harness) -> None:
    payload = stripe_payload()
    response = await harness.client.post(
        "/webhooks/billing/stripe",
        content=payload,
        headers=stripe_headers(payload, secret="whsec_other"),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_signature"
    assert harness.daemon.events == []


async def test_a_stripe_event_without_a_signature_header_is_400(harness: Harness) -> None:
    response = await harness.client.post("/webhooks/billing/stripe", content=stripe_payload())
    assert response.status_code == 400
    assert response.json()["error"] == "missing_signature"
    assert harness.daemon.events == []


async def test_a_signed_stripe_body_that_is_not_an_event_is_400(harness: Harness) -> None:
    payload = "this is not json"
    response = await harness.client.post(
        "/webhooks/billing/stripe", content=payload, headers=stripe_headers(payload)
    )
    assert response.status_code == 400
    assert harness.daemon.events == []


async def test_an_oversized_stripe_body_is_413(harness: Harness) -> None:
    payload = json.dumps({"padding": "x" * 5000})
    response = await harness.client.post(
        "/webhooks/billing/stripe", content=payload, headers=stripe_headers(payload)
    )
    assert response.status_code == 413
    assert harness.daemon.events == []


async def test_a_failing_stripe_handler_is_500_so_stripe_retries(harness: Harness) -> None:
    harness.daemon.fail_callbacks = True
    payload = stripe_payload()
    response = await harness.client.post(
        "/webhooks/billing/stripe", content=payload, headers=stripe_headers(payload)
    )
    assert response.status_code == 500
    assert webhook_count(harness.metrics, "stripe", "error") == 1


# --------------------------------------------------------------------------- real server


async def test_the_server_runs_in_the_current_loop_on_a_free_port(billing: StripeBilling) -> None:
    daemon = Daemon()
    server = EndpointServer(build_app(daemon, Metrics(), billing), host="127.0.0.1", port=0)
    port = await server.start()
    try:
        assert port > 0 and server.started.is_set()
        async with httpx.AsyncClient(timeout=30.0) as client:
            response = await client.get(f"http://127.0.0.1:{port}/healthz")
            body = push_body()
            pushed = await client.post(
                f"http://127.0.0.1:{port}/webhooks/git", content=body, headers=git_headers(body)
            )
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert pushed.status_code == 202
        assert len(daemon.pushes) == 1, "the callback ran in this loop"
    finally:
        await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=30.0) as client:
            await client.get(f"http://127.0.0.1:{port}/healthz")


async def test_starting_on_a_port_in_use_raises_instead_of_hanging(billing: StripeBilling) -> None:
    app = build_app(Daemon(), Metrics(), billing)
    first = EndpointServer(app, port=0)
    port = await first.start()
    try:
        second = EndpointServer(app, port=port)
        with pytest.raises(OSError):
            await second.start()
    finally:
        await first.stop()


async def test_stopping_a_server_that_never_started_returns_at_once(
    billing: StripeBilling,
) -> None:
    server = EndpointServer(build_app(Daemon(), Metrics(), billing))
    await server.stop()
    assert not server.started.is_set()


async def test_the_same_signed_stripe_event_500_times_queues_one_re_read(harness: Harness) -> None:
    """The issue: one signed event sent 500 times in its window triggered 22 passes."""
    payload = stripe_payload(customer="cus_42")
    for _ in range(500):
        response = await harness.client.post(
            "/webhooks/billing/stripe", content=payload, headers=stripe_headers(payload)
        )
        assert response.status_code == 200  # Stripe retries anything else
    assert len(harness.daemon.events) == 1
    assert webhook_count(harness.metrics, "stripe", "accepted") == 1
    assert webhook_count(harness.metrics, "stripe", "duplicate") == 499


async def test_a_stripe_event_stamped_in_the_future_is_400(harness: Harness) -> None:
    ahead = int(time.time()) + 3600
    payload = stripe_payload(created=ahead)
    response = await harness.client.post(
        "/webhooks/billing/stripe",
        content=payload,
        headers=stripe_headers(payload, timestamp=ahead),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "stale_timestamp"
    assert harness.daemon.events == []
