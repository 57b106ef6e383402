"""The daemon's HTTP server: uvicorn in the daemon's own event loop, hardened so that nothing a
client does can stop the daemon.

Who calls it: the daemon wiring (``wiring``) builds one :class:`EndpointServer` around the
app of ``runtime/server.py``; the loop (``runtime/loop.py``) starts and stops it. What it
calls: uvicorn (its h11 protocol, subclassed here), the event loop's exception handler, and
``resource`` for the open-files limit.

Rules:

1. A connection must deliver its request's headers within ``header_timeout`` seconds (10) of
   connecting or of its previous response, and a webhook body within ``body_timeout`` seconds
   (10, answered 408); else it is closed. Idle keep-alive connections close after 5 s.
2. At most ``max_connections`` connections are open at once (128, and never more than a
   quarter of the process's open-files limit, so the loop, D1, Git and the provider clients
   always have descriptors). Connections over the cap evict the oldest connections that have
   not sent a complete request, once the newcomers' first bytes are read; over twice the cap,
   at once. A flood of slow connections therefore never starves ``/healthz``: a probe sends
   its request at once and is busy, never idle, when the flood is cut back.
3. ``accept()`` failures (out of descriptors) and the event loop's other socket errors are
   logged at most once per ``log_interval`` seconds (10), with the count of those suppressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["EndpointServer", "connection_cap"]

logger = logging.getLogger("reconciler.server")


@dataclass
class _Guard:
    """The server's connection bookkeeping (rules 1 and 2), shared by its protocol instances.

    Over ``max_connections``, the oldest idle connections are evicted a moment later
    (:data:`_ENFORCE_DELAY`), once the newcomers' first bytes have been read, so a prompt
    client (a probe) is already busy, not idle, when the flood is cut back. Over twice the cap
    they are evicted at once, which bounds the descriptors a flood can hold.
    """

    max_connections: int
    header_timeout: float
    open: set[_GuardedH11] = field(default_factory=set)
    idle: dict[_GuardedH11, None] = field(default_factory=dict)  # insertion order: oldest first
    evicted: int = 0
    _pending: asyncio.TimerHandle | None = None

    def admit(self, newcomer: _GuardedH11, loop: asyncio.AbstractEventLoop) -> None:
        """Count ``newcomer`` in, and cut the idle connections back to the cap."""
        self.open.add(newcomer)
        if len(self.open) > 2 * self.max_connections:
            self.enforce(self.max_connections * 2)
        if len(self.open) > self.max_connections and self._pending is None:
            self._pending = loop.call_later(_ENFORCE_DELAY, self.enforce)

    def enforce(self, limit: int | None = None) -> None:
        """Evict the oldest idle connections until at most ``limit`` (the cap) are open."""
        if limit is None:
            self._pending = None
            limit = self.max_connections
        while len(self.open) > limit and self.idle:
            victim = next(iter(self.idle))
            self.evicted += 1
            victim.close_slow()


_ENFORCE_DELAY = 0.05
"""Seconds between a connection over the cap and the eviction it causes (see :class:`_Guard`)."""


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and the connection cap (rules 1, 2)."""

    guard: _Guard  # set on the subclass :meth:`EndpointServer.serve` makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._wait_for_request()
        self.guard.admit(self, self.loop)

    def _wait_for_request(self) -> None:
        self.guard.idle[self] = None
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.guard.header_timeout, self.close_slow)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        started = self.cycle is not None and not self.cycle.response_complete
        if started and self in self.guard.idle:  # its headers are complete: no longer idle
            del self.guard.idle[self]
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._wait_for_request()

    def close_slow(self) -> None:
        """Drop this connection now (too slow, or evicted by a newer one)."""
        self._forget()
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def _forget(self) -> None:
        self.guard.open.discard(self)
        self.guard.idle.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class _QuietLoopErrors:
    """The event loop's exception handler for the server's lifetime: socket errors (accept()
    out of descriptors, above all) at most once per ``interval`` seconds (rule 3)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop = loop
        self._interval = interval
        self._previous = loop.get_exception_handler()
        self._last = -math.inf
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if "socket" not in message and "accept" not in message:
            self._forward(context)
            return
        now = time.monotonic()
        if now - self._last < self._interval:
            self.suppressed += 1
            return
        self._last = now
        logger.error(
            "server socket error (%s); %d similar errors suppressed since the last one",
            message,
            self.suppressed,
            extra={"error": repr(context.get("exception")), "suppressed": self.suppressed},
        )
        self.suppressed = 0

    def _forward(self, context: dict[str, Any]) -> None:
        if self._previous is not None:
            self._previous(self._loop, context)
        else:
            self._loop.default_exception_handler(context)

    def restore(self) -> None:
        self._loop.set_exception_handler(self._previous)


def connection_cap(requested: int) -> int:
    """``requested``, but at most a quarter of the soft open-files limit (rule 2), at least 4."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return requested
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return requested
    return max(4, min(requested, soft // 4))


class _LoopServer(uvicorn.Server):
    """uvicorn that leaves signals to the daemon and announces when it listens."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The daemon owns SIGTERM/SIGINT (graceful stop); uvicorn must not take them.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._started_event.set()


class EndpointServer:
    """Serve an ASGI app with uvicorn as a task of the current event loop.

    Usage::

        server = EndpointServer(app, host="0.0.0.0", port=8080)
        port = await server.start()     # returns once the socket accepts connections
        ...
        await server.stop()              # finishes in-flight requests, then closes
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        graceful_timeout: float = 5.0,
        max_connections: int = 128,
        header_timeout: float = 10.0,
        log_interval: float = 10.0,
    ) -> None:
        """Prepare to serve ``app`` on ``host:port`` (port 0 picks a free port).

        Args:
            app: the ASGI app (from :func:`create_app`).
            host: address to bind (``0.0.0.0`` or ``::`` for every interface).
            port: TCP port; 0 for any free one (read :attr:`port` after :meth:`start`).
            graceful_timeout: seconds :meth:`stop` lets in-flight requests finish.
            max_connections: connections open at once (rule 7; lowered to a quarter of the
                open-files limit).
            header_timeout: seconds a connection may take to send its request headers.
            log_interval: least seconds between two logged socket errors (rule 3).
        """
        self._app = app
        self.host = host
        self.port = port
        self._graceful_timeout = graceful_timeout
        self.guard = _Guard(connection_cap(max_connections), header_timeout)
        self._log_interval = log_interval
        self.started = asyncio.Event()
        self._server: _LoopServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        """Bind, serve until :meth:`stop`, then close; sets :attr:`started` once listening.

        Raises:
            OSError: the address could not be bound.
        """
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections.
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            self.port = int(sock.getsockname()[1])
            protocol = type("GuardedH11", (_GuardedH11,), {"guard": self.guard})
            config = uvicorn.Config(
                self._app,
                http=protocol,
                lifespan="off",
                access_log=False,
                log_config=None,
                server_header=False,
                timeout_keep_alive=5,
                backlog=64,  # accept() takes at most this many per loop turn
                timeout_graceful_shutdown=int(max(1, self._graceful_timeout)),
            )
            self._server = _LoopServer(config, self.started)
            loop = asyncio.get_running_loop()
            quiet = _QuietLoopErrors(loop, self._log_interval)
            loop.set_exception_handler(quiet)
            try:
                await self._server.serve(sockets=[sock])
            finally:
                quiet.restore()
        finally:
            sock.close()

    async def start(self, *, startup_timeout: float = 30.0) -> int:
        """Run :meth:`serve` as a task and wait until it listens.

        Args:
            startup_timeout: seconds to wait for the socket to accept connections.

        Returns:
            The bound port.

        Raises:
            OSError: the address could not be bound.
            TimeoutError: the server did not start within ``startup_timeout`` seconds.
        """
        if self._task is None:
            self._task = asyncio.create_task(self.serve(), name="http-endpoints")
        waiter = asyncio.create_task(self.started.wait())
        try:
            await asyncio.wait(
                {self._task, waiter}, timeout=startup_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if self._task.done():
            self._task.result()  # raises the bind error, if that is what ended it
            raise RuntimeError("the HTTP server stopped before it started")
        if not self.started.is_set():
            raise TimeoutError(f"the HTTP server did not start within {startup_timeout} s")
        return self.port

    async def stop(self) -> None:
        """Stop accepting connections, let in-flight requests finish, and wait for the end."""
        if self._task is None:
            return
        task, self._task = self._task, None
        if self._server is None:
            # The task has not run yet (it sets _server before its first await): cancel it.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        self._server.should_exit = True
        await task
