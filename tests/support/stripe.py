"""Fixtures for the Stripe tier: one localstripe per session, flushed before every test.

``local`` gives a running, empty :class:`LocalStripe`; ``billing`` a :class:`StripeBilling`
pointed at it (with :data:`WEBHOOK_SECRET`); ``stub_stripe`` a loopback HTTP server answering
every request with a canned status, for error-mapping tests localstripe cannot produce;
``webhook_receiver`` a loopback HTTP server collecting what localstripe delivers;
``webhook_secret`` and ``api_key`` the credentials in use.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.providers.stripe import StripeBilling
from reconciler.sandbox.localstripe import LocalStripe, LocalStripeError

WEBHOOK_SECRET = "whsec_" + secrets.token_hex(16)
API_KEY = "sk_test_" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[LocalStripe]:
    """Start localstripe once for the session and always stop it afterwards."""
    server = LocalStripe(api_key=API_KEY, startup_timeout=30.0)
    try:
        server.start()
    except LocalStripeError as exc:
        pytest.fail(f"localstripe could not be started: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local(localstripe_server: LocalStripe) -> LocalStripe:
    """The session's localstripe with an empty store."""
    localstripe_server.flush()
    return localstripe_server


@pytest.fixture
async def billing(local: LocalStripe) -> AsyncIterator[StripeBilling]:
    """The adapter under test, pointed at localstripe."""
    async with StripeBilling(local.settings(webhook_secret=WEBHOOK_SECRET)) as adapter:
        yield adapter


@dataclass
class StubReply:
    """What the stub server answers to every request."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def stub_stripe() -> Iterator[tuple[str, StubReply]]:
    """A loopback HTTP server that answers every request with ``StubReply``; yields its URL."""
    reply = StubReply()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reply.paths.append(self.path)
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", reply
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def webhook_secret() -> str:
    """The signing secret the ``billing`` adapter verifies with."""
    return WEBHOOK_SECRET


@pytest.fixture
def api_key() -> str:
    """The (random) test key ``local`` and ``billing`` use; must never show up in output."""
    return API_KEY


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, queue.Queue[tuple[bytes, str]]]]:
    """A loopback HTTP server recording (body, Stripe-Signature) per delivery; yields its URL."""
    deliveries: queue.Queue[tuple[bytes, str]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            deliveries.put((body, self.headers.get("Stripe-Signature", "")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", deliveries
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
