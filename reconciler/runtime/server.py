"""The daemon's HTTP side: health, readiness, metrics, and the Git and Stripe webhooks.

Who calls it: the daemon wiring builds the app with :func:`create_app` (passing the loop's
health and readiness probes, the metrics, and the two callbacks that enqueue work) and serves it
with :class:`EndpointServer`, a uvicorn server running as a task in the daemon's own event loop
(not a thread), so handlers and the reconciler share one loop and need no locks. What it calls:
Starlette for routing, the injected callbacks, ``hmac`` for GitHub signatures, and the injected
Stripe verifier (``StripeBilling.verify_webhook``) for Stripe's.

Endpoints (docs/daemon.md has examples):

=============================  ================================================================
``GET /healthz``               200 with JSON details while the loop is alive, else 503
``GET /readyz``                200 once the lease state is known and specs are loaded, else 503
``GET /metrics``               Prometheus text format
``POST /webhooks/git``         GitHub-style push; 202 when queued (see the rules below)
``POST /webhooks/billing/stripe``  a signed Stripe event; 200 when queued
=============================  ================================================================

Rules for the webhooks:

1. Bodies are read incrementally with a cap (``max_body``); a declared or actual size over it
   is 413 without buffering the rest.
2. Git: ``X-Hub-Signature-256: sha256=<hex>`` must be the HMAC-SHA256 of the raw body under the
   Git webhook secret, compared in constant time; missing, malformed or wrong is 401 (and so is
   every request while no secret is configured). Then ``X-GitHub-Event``: ``ping`` is 200,
   anything but ``push`` is 202 ignored. ``X-GitHub-Delivery`` ids of accepted pushes are kept
   in a bounded LRU and a repeat is 409. The body must be JSON with ``ref``, ``before``,
   ``after`` and ``repository``, else 400.
3. Stripe: the ``Stripe-Signature`` header and body go to the verifier, which checks the
   signature and the timestamp tolerance both ways (the replay window; a timestamp too far in
   the future is refused too); its ``PermanentError`` is 400. Event ids of accepted events are
   kept in a bounded LRU: the same event again is answered 200 (Stripe retries anything else)
   and queues nothing.
4. Webhooks are hints. A push only tells the loop to fetch the branch (the loop reads the
   remote, not ``after``); a Stripe event only asks for one customer's billing to be re-read
   from the API. Handlers only enqueue: they return as soon as the callback has.
5. Every rejection is logged on ``reconciler.webhooks`` as one JSON object (source, reason,
   status; never a secret, a signature or the body), counted in ``webhook_requests_total``,
   and changes nothing: no callback runs.

The server that runs the app, hardened against hostile clients, is
:class:`reconciler.runtime.endpoint.EndpointServer` (re-exported here).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.errors import PermanentError
from reconciler.providers.stripe import WebhookEvent
from reconciler.redact import redact
from reconciler.runtime.endpoint import EndpointServer
from reconciler.runtime.metrics import CONTENT_TYPE, Metrics
from reconciler.settings import Secret

__all__ = [
    "DEFAULT_MAX_BODY",
    "EndpointServer",
    "GitPush",
    "HealthReport",
    "create_app",
]

DEFAULT_MAX_BODY = 1024 * 1024
"""Largest webhook body accepted, in bytes (GitHub caps payloads at 25 MB; pushes are small)."""

DEFAULT_DELIVERY_MEMORY = 10_000
"""How many Git delivery ids are remembered to refuse replays."""

logger = logging.getLogger("reconciler.webhooks")

_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_DELIVERY = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_SIGNATURE_PREFIX = "sha256="

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class GitPush:
    """A verified push notification: which ref moved, from what to what (hints only)."""

    ref: str
    before: str
    after: str
    delivery: str
    repository: str = ""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The loop's liveness: ``ok`` decides the status, ``details`` go in the JSON body."""

    ok: bool
    details: Mapping[str, Any] = field(default_factory=dict)


class _Json(JSONResponse):
    """A JSON answer whose rendered body is redacted (``reconciler/redact.py``): a probe's
    details or a verifier's message can carry provider text."""

    def render(self, content: Any) -> bytes:
        return redact(super().render(content).decode()).encode()


class _Rejected(Exception):
    """A webhook request refused; carries the HTTP status and a machine reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class _DeliveryLog:
    """The most recent accepted delivery ids, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def claim(self, delivery: str) -> bool:
        """Record ``delivery``; false when it was already recorded (a replay)."""
        if delivery in self._ids:
            self._ids.move_to_end(delivery)
            return False
        self._ids[delivery] = None
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True

    def forget(self, delivery: str) -> None:
        """Drop ``delivery`` so a retry of a request that failed on our side is accepted."""
        self._ids.pop(delivery, None)


# --------------------------------------------------------------------------- the app


def create_app(
    *,
    metrics: Metrics,
    health: Callable[[], HealthReport],
    ready: Callable[[], bool],
    on_git_push: Callable[[GitPush], Awaitable[None]],
    on_stripe_event: Callable[[WebhookEvent], Awaitable[None]],
    git_secret: Secret,
    stripe_verifier: Callable[[bytes, str], WebhookEvent],
    max_body: int = DEFAULT_MAX_BODY,
    delivery_memory: int = DEFAULT_DELIVERY_MEMORY,
    clock: Callable[[], float] = time.time,
    body_timeout: float = 10.0,
    before_metrics: Callable[[], object] | None = None,
    readiness: Callable[[], Mapping[str, Any]] | None = None,
) -> Starlette:
    """Build the daemon's ASGI app.

    Args:
        metrics: where webhook results are counted and ``/metrics`` reads from.
        health: the loop's liveness probe (must not block).
        ready: whether the daemon is ready (lease state known, specs loaded).
        on_git_push: enqueues a fetch of the followed branch; called once per accepted push.
        on_stripe_event: enqueues a re-read of the event's customer; called once per event.
        git_secret: the HMAC secret shared with the Git host.
        stripe_verifier: ``(raw body, Stripe-Signature) -> WebhookEvent``, raising
            ``PermanentError`` for a bad signature, a stale timestamp or a malformed event
            (``StripeBilling.verify_webhook``).
        max_body: largest webhook body accepted, in bytes.
        delivery_memory: how many Git delivery ids to remember against replays.
        clock: epoch seconds, stamped on webhook log records.
        body_timeout: seconds a webhook body may take to arrive (408 after; endpoint.py rule 1).
        before_metrics: called before each ``/metrics`` answer (the wiring refreshes the
            breakers there, so the gauge shows an open breaker's half-open turn on time).
        readiness: details for ``/readyz``'s body (the commit served, an invalid head's
            problems); none when omitted.

    Returns:
        The Starlette application.
    """
    if max_body < 1 or delivery_memory < 1:
        raise ValueError("max_body and delivery_memory must be positive")
    probes = _Probes(health, ready, readiness, before_metrics)
    git = _Hook(on_git_push, _DeliveryLog(delivery_memory))
    stripe = _Hook(on_stripe_event, _DeliveryLog(delivery_memory))
    body = _Body(max_body, body_timeout)
    app = _App(metrics, clock, probes, body, git, stripe, git_secret, stripe_verifier)
    return Starlette(
        routes=[
            Route("/healthz", app.healthz, methods=["GET"]),
            Route("/readyz", app.readyz, methods=["GET"]),
            Route("/metrics", app.metrics_endpoint, methods=["GET"]),
            Route("/webhooks/git", app.git_webhook, methods=["POST"]),
            Route("/webhooks/billing/stripe", app.stripe_webhook, methods=["POST"]),
        ]
    )


@dataclass(frozen=True, slots=True)
class _Probes:
    """What ``/healthz``, ``/readyz`` and ``/metrics`` ask the daemon."""

    health: Callable[[], HealthReport]
    ready: Callable[[], bool]
    readiness: Callable[[], Mapping[str, Any]] | None
    before_metrics: Callable[[], object] | None


@dataclass(frozen=True, slots=True)
class _Body:
    """How large a webhook body may be (bytes) and how long it may take to arrive (seconds)."""

    limit: int
    within: float


@dataclass(frozen=True, slots=True)
class _Hook(Generic[E]):
    """One webhook's callback and the ids it accepted (a repeat is a replay)."""

    enqueue: Callable[[E], Awaitable[None]]
    seen: _DeliveryLog


@dataclass(frozen=True, slots=True)
class _App:
    """The endpoints' handlers and what they share (``create_app``'s arguments)."""

    metrics: Metrics
    clock: Callable[[], float]
    probes: _Probes
    body: _Body
    git: _Hook[GitPush]
    stripe: _Hook[WebhookEvent]
    git_secret: Secret
    stripe_verifier: Callable[[bytes, str], WebhookEvent]

    def log(self, level: int, source: str, outcome: str, **fields: Any) -> None:
        """One ``reconciler.webhooks`` record: plain message, the fields as one JSON object."""
        entry = {"at": round(self.clock(), 3), "event": f"webhook.{outcome}", "source": source}
        entry.update(fields)
        # The message is plain text; the fields travel as one JSON object, never as JSON
        # inside the message (one encoding per line).
        logger.log(level, f"webhook {source} {outcome}", extra={"webhook": entry})

    def reject(self, source: str, request: Request, rejected: _Rejected, **fields: Any) -> Response:
        """Count, log and answer a refused webhook request (module rule 5)."""
        self.metrics.webhook(source, rejected.reason)
        self.log(
            logging.WARNING,
            source,
            "rejected",
            reason=rejected.reason,
            status=rejected.status,
            message=rejected.message,
            remote=request.client.host if request.client else "",
            **fields,
        )
        return _Json(
            {"error": rejected.reason, "message": rejected.message}, status_code=rejected.status
        )

    def accepted(self, source: str, **fields: Any) -> None:
        """Count and log a webhook whose callback ran."""
        self.metrics.webhook(source, "accepted")
        self.log(logging.INFO, source, "accepted", **fields)

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``: 200 while the loop is alive, else 503."""
        try:
            report = self.probes.health()
        except Exception as exc:  # a broken probe means an unhealthy daemon, not a 500
            logger.exception("health probe failed")
            return _Json({"status": "unhealthy", "error": type(exc).__name__}, status_code=503)
        body = {"status": "ok" if report.ok else "unhealthy", "details": dict(report.details)}
        return _Json(body, status_code=200 if report.ok else 503)

    async def readyz(self, request: Request) -> Response:
        """``GET /readyz``: 200 once ready, else 503; the details when the wiring gives them."""
        try:
            is_ready = self.probes.ready()
        except Exception:
            logger.exception("readiness probe failed")
            is_ready = False
        body: dict[str, Any] = {"status": "ready" if is_ready else "not ready"}
        if self.probes.readiness is not None:
            try:
                body["details"] = dict(self.probes.readiness())
            except Exception:
                logger.exception("readiness details failed")
        return _Json(body, status_code=200 if is_ready else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        """``GET /metrics``: the Prometheus text, redacted."""
        if self.probes.before_metrics is not None:
            self.probes.before_metrics()
        text = redact(self.metrics.render().decode())
        return Response(text.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def git_webhook(self, request: Request) -> Response:
        """``POST /webhooks/git`` (module rule 2): a verified push queues a fetch."""
        delivery = request.headers.get("x-github-delivery", "")
        safe_delivery = delivery if _DELIVERY.match(delivery) else ""
        try:
            push = await self._git_push(request, safe_delivery)
        except _Rejected as rejected:
            return self.reject("git", request, rejected, delivery=safe_delivery)
        if isinstance(push, Response):
            return push
        try:
            await self.git.enqueue(push)
        except Exception:
            self.git.seen.forget(safe_delivery)
            self.metrics.webhook("git", "error")
            logger.exception("git push handler failed", extra={"delivery": safe_delivery})
            return _Json({"error": "internal"}, status_code=500)
        self.accepted("git", delivery=safe_delivery, ref=push.ref[:200])
        return _Json({"status": "queued"}, status_code=202)

    async def _git_push(self, request: Request, delivery: str) -> GitPush | Response:
        """The verified, first-seen push; the answer itself for a ping or another event."""
        body = await _read_body(request, self.body.limit, self.body.within)
        _verify_github_signature(self.git_secret, body, request.headers.get("x-hub-signature-256"))
        event = request.headers.get("x-github-event", "")
        if not event:
            raise _Rejected(400, "missing_event", "X-GitHub-Event header is required")
        if event == "ping":
            self.metrics.webhook("git", "ping")
            self.log(logging.INFO, "git", "ping", delivery=delivery)
            return _Json({"status": "pong"})
        if event != "push":
            self.metrics.webhook("git", "ignored")
            self.log(logging.INFO, "git", "ignored", delivery=delivery, type=event[:50])
            return _Json({"status": "ignored", "event": event[:50]}, status_code=202)
        if not delivery:
            raise _Rejected(400, "missing_delivery", "X-GitHub-Delivery header is required")
        push = _parse_push(body, delivery)
        if not self.git.seen.claim(delivery):
            raise _Rejected(409, "replayed_delivery", "this delivery was already accepted")
        return push

    async def stripe_webhook(self, request: Request) -> Response:
        """``POST /webhooks/billing/stripe`` (module rule 3): a verified event queues a re-read."""
        try:
            event = await self._stripe_event(request)
        except _Rejected as rejected:
            return self.reject("stripe", request, rejected)
        if not self.stripe.seen.claim(event.id):
            # Stripe retries until it gets a 2xx: answer one, and do nothing again (rule 3).
            self.metrics.webhook("stripe", "duplicate")
            self.log(logging.INFO, "stripe", "duplicate", id=event.id, type=event.type)
            return _Json({"received": True, "duplicate": True})
        try:
            await self.stripe.enqueue(event)
        except Exception:
            self.stripe.seen.forget(event.id)
            self.metrics.webhook("stripe", "error")
            logger.exception("stripe event handler failed", extra={"stripe_event": event.id})
            return _Json({"error": "internal"}, status_code=500)
        self.accepted("stripe", id=event.id, type=event.type)
        return _Json({"received": True})

    async def _stripe_event(self, request: Request) -> WebhookEvent:
        """The event the verifier accepts (signature and timestamp checked)."""
        body = await _read_body(request, self.body.limit, self.body.within)
        header = request.headers.get("stripe-signature", "")
        if not header:
            raise _Rejected(400, "missing_signature", "Stripe-Signature header is required")
        try:
            return self.stripe_verifier(body, header)
        except PermanentError as exc:
            raise _Rejected(400, _stripe_reason(str(exc)), str(exc)[:300]) from exc


async def _read_body(request: Request, limit: int, within: float) -> bytes:
    """Read the body, refusing (413) as soon as it is known to exceed ``limit`` bytes, and
    (408) when it takes longer than ``within`` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Rejected(400, "bad_content_length", "Content-Length is not a number")
        if int(declared) > limit:
            raise _Rejected(413, "too_large", f"body over {limit} bytes")
    received = bytearray()
    try:
        async with asyncio.timeout(within):
            async for chunk in request.stream():
                received += chunk
                if len(received) > limit:
                    raise _Rejected(413, "too_large", f"body over {limit} bytes")
    except TimeoutError:
        raise _Rejected(408, "slow_body", f"body not received within {within:g} s") from None
    return bytes(received)


def _verify_github_signature(secret: Secret, body: bytes, header: str | None) -> None:
    if not secret:
        raise _Rejected(401, "not_configured", "no Git webhook secret is configured")
    if not header:
        raise _Rejected(401, "missing_signature", "X-Hub-Signature-256 header is required")
    if not header.startswith(_SIGNATURE_PREFIX):
        raise _Rejected(401, "bad_signature", "signature must look like sha256=<hex>")
    given = header[len(_SIGNATURE_PREFIX) :].strip().lower().encode("latin-1", "replace")
    expected = hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, given):
        raise _Rejected(401, "bad_signature", "signature does not match the body")


def _parse_push(body: bytes, delivery: str) -> GitPush:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Rejected(400, "malformed_json", "body is not JSON") from exc
    if not isinstance(payload, dict):
        raise _Rejected(400, "malformed_payload", "body must be a JSON object")
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise _Rejected(400, "malformed_payload", "ref must be a string like refs/heads/main")
    shas = {name: payload.get(name) for name in ("before", "after")}
    for name, value in shas.items():
        if not isinstance(value, str) or not _SHA.match(value):
            raise _Rejected(400, "malformed_payload", f"{name} must be a hex commit id")
    repository = payload.get("repository")
    if not isinstance(repository, dict):
        raise _Rejected(400, "malformed_payload", "repository must be an object")
    full_name = repository.get("full_name")
    return GitPush(
        ref=ref,
        before=str(shas["before"]),
        after=str(shas["after"]),
        delivery=delivery,
        repository=full_name if isinstance(full_name, str) else "",
    )


def _stripe_reason(message: str) -> str:
    lowered = message.lower()
    if "tolerance" in lowered or "timestamp" in lowered:
        return "stale_timestamp"
    if "no webhook secret" in lowered:
        return "not_configured"
    if "not a stripe event" in lowered or "lacks" in lowered:
        return "malformed_event"
    return "bad_signature"
