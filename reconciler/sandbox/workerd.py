"""The sandbox's edge in Cloudflare's own runtime: a launcher for ``workerd_host.mjs``.

Used by :mod:`reconciler.sandbox.world` (``Sandbox(with_workers=True)``: ``reconciler sandbox
up`` and the demo) and the Worker tests. :class:`WorkerdHost` starts
``node reconciler/sandbox/workerd_host.mjs --sim <simulator> --pages-origin <sites>`` as a
separate process, waits for its ``LISTENING <port>`` line, and stops it again (``stop()``, the
context manager, and an ``atexit`` hook as a last resort). The host runs, in workerd through
Miniflare (npm packages pinned in ``package-lock.json``, installed by ``make install``), the
Worker the simulated zone routes to, exactly as uploaded through the Workers API, with its KV
bindings copied from the simulator's KV (see the ``.mjs`` file's header).

A visitor request is plain HTTP to :attr:`WorkerdHost.base_url` with the customer's hostname
in ``Host`` (:meth:`WorkerdHost.visit`). :func:`unavailable_reason` says why the runtime cannot
run here (no ``node``, or ``node_modules`` not installed), for tests to skip with.
"""

from __future__ import annotations

import atexit
import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from reconciler.sandbox.peer import terminate
from reconciler.sandbox.running import Listening

ROOT = Path(__file__).resolve().parents[2]
HOST_SCRIPT = Path(__file__).with_name("workerd_host.mjs")
DISPATCH_WORKER = ROOT / "workers" / "dispatch" / "index.js"
"""The dispatch Worker's source, as the repository ships it."""

MINIFLARE = ROOT / "node_modules" / "miniflare" / "package.json"


class WorkerdError(RuntimeError):
    """The Worker host could not be started, or stopped answering."""


def unavailable_reason() -> str | None:
    """Why workerd cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed: the Worker runtime (miniflare/workerd) cannot run"
    if not MINIFLARE.is_file():
        return "node_modules/miniflare is missing: run `make install` (npm ci)"
    return None


class WorkerdHost(Listening):
    """One Worker host process; a context manager (``start`` on enter, ``stop`` on exit)."""

    def __init__(self, *, simulator_url: str, pages_origin: str | None = None) -> None:
        """Prepare a host that asks the simulator at ``simulator_url`` (its root, no path).

        ``pages_origin`` overrides the Worker's ``PAGES_ORIGIN`` binding (``{project}`` in
        place of the project name), e.g. the simulator's ``/__pages/{project}``.
        """
        self._simulator_url = simulator_url.rstrip("/")
        self._pages_origin = pages_origin
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60.0) -> WorkerdHost:
        """Start the host and wait until it listens.

        Raises:
            WorkerdError: node or the npm packages are missing, or the host did not come up.
        """
        if self._process is not None:
            return self
        reason = unavailable_reason()
        if reason is not None:
            raise WorkerdError(reason)
        command = ["node", str(HOST_SCRIPT), "--sim", self._simulator_url, "--port", "0"]
        if self._pages_origin:
            command += ["--pages-origin", self._pages_origin]
        self._process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        atexit.register(self.stop)
        try:
            self.port = self._await_port(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _await_port(self, timeout: float) -> int:
        assert self._process is not None and self._process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(deadline - time.monotonic(), 0.01)):
                continue
            line = self._process.stdout.readline().decode("utf-8", "replace").strip()
            if line.startswith("LISTENING "):
                return int(line.split()[1])
            if not line and self._process.poll() is not None:
                break
            seen.append(line)
        raise WorkerdError("the Worker host did not start: " + " | ".join(seen[-5:]))

    def stop(self) -> None:
        """Stop the host process (safe to call twice)."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None:
            terminate(process, process.stdout, grace=10.0)

    def visit(self, hostname: str, path: str = "/", *, timeout: float = 30.0) -> httpx.Response:
        """A visitor's GET of ``https://<hostname><path>``, through the Worker host."""
        return httpx.get(self.base_url + path, headers={"Host": hostname}, timeout=timeout)
