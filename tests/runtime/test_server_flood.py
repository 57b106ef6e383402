"""The HTTP server against hostile clients (runtime/endpoint.py), in process, loopback.

Slow connections send part of a request and then nothing. The server must evict or time them
out, keep its connection count under the cap, and answer ``/healthz`` all along.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from reconciler.runtime.endpoint import EndpointServer, _QuietLoopErrors
from reconciler.runtime.metrics import Metrics
from reconciler.runtime.server import HealthReport, create_app
from reconciler.settings import Secret

SECRET = "git-secret-for-the-flood-test"


async def _never(_: object) -> None:
    return None


def _refuse(payload: bytes, signature: str) -> object:
    raise AssertionError("no stripe event here")


def app(body_timeout: float = 10.0) -> Starlette:
    return create_app(
        body_timeout=body_timeout,
        metrics=Metrics(),
        health=lambda: HealthReport(ok=True, details={"loop": "alive"}),
        ready=lambda: True,
        on_git_push=_never,
        on_stripe_event=_never,
        git_secret=Secret(SECRET),
        stripe_verifier=_refuse,  # type: ignore[arg-type]
    )


@pytest.fixture
async def server() -> AsyncIterator[EndpointServer]:
    serving = EndpointServer(app(), max_connections=8, header_timeout=0.3)
    await serving.start()
    try:
        yield serving
    finally:
        await serving.stop()


async def slow(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ...and the headers never end
    await writer.drain()
    return reader, writer


async def test_healthz_answers_under_a_flood_of_slow_connections(server: EndpointServer) -> None:
    flood = [await slow(server.port) for _ in range(60)]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        for _ in range(5):
            answer = await http.get("/healthz", timeout=5.0)
            assert answer.status_code == 200
            assert answer.json()["status"] == "ok"
            flood.append(await slow(server.port))
    await asyncio.sleep(0.5)  # the deferred eviction runs (runtime/endpoint.py, _Guard)
    assert len(server.guard.open) <= server.guard.max_connections
    assert server.guard.evicted >= 60 - server.guard.max_connections
    for _, writer in flood:
        writer.close()


async def test_a_connection_that_never_finishes_its_headers_is_closed(
    server: EndpointServer,
) -> None:
    reader, writer = await slow(server.port)
    assert await asyncio.wait_for(reader.read(), timeout=10.0) == b""  # closed by the server
    writer.close()


async def test_a_webhook_body_that_never_arrives_is_answered_408() -> None:
    serving = EndpointServer(app(body_timeout=0.2), max_connections=8, header_timeout=5.0)
    await serving.start()
    try:
        body = b'{"ref": "refs/heads/main"}'
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
        writer.write(
            b"POST /webhooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            b"X-GitHub-Event: push\r\nX-Hub-Signature-256: " + signature.encode() + b"\r\n\r\n"
            b"{"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.read(200), timeout=30.0)
        assert head.startswith(b"HTTP/1.1 408"), head
        writer.close()
    finally:
        await serving.stop()


def test_socket_errors_are_logged_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        quiet = _QuietLoopErrors(loop, interval=3600.0)
        caplog.set_level(logging.ERROR, logger="reconciler.server")
        for _ in range(10_000):
            quiet(loop, {"message": "socket.accept() out of system resource"})
        assert len(caplog.records) == 1
        assert quiet.suppressed == 9_999
    finally:
        loop.close()
