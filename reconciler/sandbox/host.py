"""Serve an ASGI app on loopback in a background thread: the sandbox simulators' HTTP server.

Used by :mod:`reconciler.sandbox.world` (the whole sandbox), the ``cloudflare_sim`` test fixture
and anything else that wants a simulator reachable over real HTTP. It runs uvicorn with its own
event loop in a daemon thread, bound to ``127.0.0.1`` on a free port (port 0, read back from the
socket), with access logs off and uvicorn's own logs at ``critical``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from reconciler.sandbox.running import LOOPBACK, Listening


class ServerHost(Listening):
    """One uvicorn server for one app; a context manager (``start`` on enter, ``stop`` on exit)."""

    def __init__(self, app: Any, *, port: int = 0, name: str = "sandbox") -> None:
        """Prepare to serve ``app`` on ``127.0.0.1:port`` (0 = any free port)."""
        self._app = app
        self._wanted_port = port
        self._name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    def start(self, *, timeout: float = 30.0) -> ServerHost:
        """Start serving; return once the server accepts connections.

        Raises:
            RuntimeError: when the server did not come up within ``timeout`` seconds.
        """
        if self._thread is not None:
            return self
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets whose
        # proto is IPPROTO_TCP, and without it Nagle + delayed ACK add ~40 ms to every response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, self._wanted_port))
        self.port = int(sock.getsockname()[1])
        self._socket = sock
        config = uvicorn.Config(
            self._app,
            log_level="critical",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            log_config=None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"{self._name} server failed to start") from self._error
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self._name} server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported to start()/stop() callers
            self._error = exc
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop serving and wait for the thread to end (forcing exit after ``timeout``)."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout / 2)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout / 2)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None
