"""Fault test: a slow-connection flood against a daemon with a low open-files limit.

The issue's defect: with the common 1,024 open-files limit, 1,100 slow connections made
``accept()`` fail, the log filled with error lines, the Git follower failed and the daemon
exited. Here ``reconciler run`` is a subprocess whose ``RLIMIT_NOFILE`` is 256; a thread keeps
more slow connections coming than that limit allows (each sends half a request and then
nothing). While it runs, ``/healthz`` must answer, the loop must converge the fleet, and the
log must stay small. Loopback only; bounded by the waits' limits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.daemon import GIT_SECRET, Fleet

resource = pytest.importorskip("resource")

LIMIT = 256
FLOOD = 600  # slow connections held at once, well over the daemon's descriptor limit


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Flood(threading.Thread):
    """Keeps opening slow connections; holds the newest ``FLOOD`` of them."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.opened = 0
        self.held: list[socket.socket] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for _ in range(100):
                try:
                    conn = socket.create_connection(("127.0.0.1", self.port), timeout=2.0)
                    conn.sendall(b"POST /webhooks/git HTTP/1.1\r\nHost: x\r\n")
                except OSError:
                    continue  # the backlog is full or the server dropped us: keep pushing
                self.opened += 1
                self.held.append(conn)
            while len(self.held) > FLOOD:
                self.held.pop(0).close()
            self.stop.wait(0.05)
        for conn in self.held:
            conn.close()


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@contextlib.contextmanager
def _daemon(fleet: Fleet, tmp_path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        **fleet.sandbox.settings_env(),
        "GIT_WEBHOOK_SECRET": GIT_SECRET,
        "RECONCILER_SANDBOX_CONTROL": fleet.sandbox.control_url,
    }
    log = (tmp_path / "daemon.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo-url", fleet.url,
         "--workdir", str(tmp_path / "work"), "--listen", f"127.0.0.1:{port}",
         "--interval", "2", "--log-level", "info"],
        env=env, stdout=log, stderr=log, preexec_fn=_limit_descriptors,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _healthy(port: int) -> bool:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5.0)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def _wait(predicate: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        time.sleep(0.1)


def test_a_slow_connection_flood_under_a_low_open_files_limit_stops_nothing(
    fleet: Fleet, tmp_path: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, FLOOD + 400), hard))
    port = _free_port()
    with _daemon(fleet, tmp_path, port) as process:
        _wait(lambda: _healthy(port) or process.poll() is not None, 60.0, "the endpoints")
        assert process.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
        flood = _Flood(port)
        flood.start()
        try:
            _wait(lambda: flood.opened >= 2 * LIMIT, 60.0, "the flood to pass the limit")
            for _ in range(5):
                assert _healthy(port), "healthz did not answer under the flood"
            _wait(fleet.converged, 180.0, "the loop to converge under the flood")
            assert _healthy(port)
            assert process.poll() is None, "the daemon exited under the flood"
        finally:
            flood.stop.set()
            flood.join(timeout=30)
        assert flood.opened > LIMIT  # the flood really exceeded the daemon's descriptors
    log = (tmp_path / "daemon.log").read_text(errors="replace")
    errors = [line for line in log.splitlines() if "server socket error" in line]
    assert len(log) < 1_000_000, "the log grew like the issue's 72 MB"
    assert len(errors) <= 20, errors[:3]
