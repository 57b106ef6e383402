"""Child-process peers of the sandbox (localstripe, moto as R2): a free port, a log, a clean end.

The launchers in :mod:`reconciler.sandbox.localstripe` and :mod:`reconciler.sandbox.r2` start
a Python module as a child process on a loopback port, keep its output in a temporary file for
error messages, and end it with terminate, then kill. These are those steps, once, and
:class:`LoggedPeer`, the part both launchers share (start on a free port with retries, the
output's tail, the clean end).
"""

from __future__ import annotations

import abc
import atexit
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import IO

from reconciler.sandbox.running import Running

__all__ = ["LoggedPeer", "free_port", "log_tail", "spawn_logged", "terminate"]


def free_port(host: str) -> int:
    """A port that is free on ``host`` now (it can still be taken before the child binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def spawn_logged(
    module: str, args: Sequence[str], *, log_prefix: str
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """Start ``python -m module *args`` with its stdout and stderr in a new temporary file."""
    log = tempfile.TemporaryFile(prefix=log_prefix, suffix=".log")  # noqa: SIM115  # closed by terminate
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, log


def log_tail(log: IO[bytes] | None, lines: int = 20) -> str:
    """The last ``lines`` lines written to ``log`` (empty when there is none)."""
    if log is None:
        return ""
    log.flush()
    log.seek(0)
    return "\n".join(log.read().decode("utf-8", errors="replace").splitlines()[-lines:])


def terminate(
    process: subprocess.Popen[bytes] | None, log: IO[bytes] | None, *, grace: float = 5.0
) -> None:
    """End ``process`` (terminate, then kill after ``grace`` s) and close its ``log``."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)
    if log is not None:
        log.close()


class LoggedPeer(Running):
    """A child process on a loopback port, its output kept in a log for error messages.

    Subclasses call ``__init__`` (nothing runs yet) and say how to spawn the process on a port
    (:meth:`_spawn`) and how to tell it answers (:meth:`_wait_ready`).
    """

    _failure: type[Exception] = RuntimeError
    """The part's error (start-up failures, use before start)."""
    _what = "the peer"
    """How messages name the part."""

    def __init__(self, *, host: str, startup_timeout: float) -> None:
        """Remember where the process will listen and how long it may take to answer."""
        self._host = host
        self._startup_timeout = startup_timeout
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        """Address, the subclass's details and state; never a key."""
        where = self._root() if self._port is not None else "-"
        state = "running" if self.running else "stopped"
        return f"{type(self).__name__}({', '.join((where, *self._details(), state))})"

    def _details(self) -> tuple[str, ...]:
        """What :meth:`__repr__` shows between the address and the state (nothing here)."""
        return ()

    def _root(self) -> str:
        """``http://<host>:<port>``; the part's error before the process is started."""
        if self._port is None:
            raise self._failure(f"{self._what} is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def output_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the process wrote (its log and errors)."""
        return log_tail(self._log, lines)

    @abc.abstractmethod
    def _spawn(self, port: int) -> None:
        """Start the process on ``port`` (``spawn_logged``)."""

    @abc.abstractmethod
    def _wait_ready(self) -> None:
        """Return once the process answers; raise the part's error if it never does."""

    def _launch(self, port: Callable[[], int], attempts: int) -> None:
        """Spawn on ``port()`` until the process answers, at most ``attempts`` times.

        A start that fails with the part's error is reaped and tried again (a free port can
        be taken between the probe and the bind); the last such failure is raised.
        """
        last: Exception | None = None
        for _ in range(attempts):
            try:
                self._spawn(port())
                self._wait_ready()
            except self._failure as exc:
                last = exc
                self._reap()
                continue
            atexit.register(self.stop)
            return
        assert last is not None
        raise last

    def _reap(self) -> None:
        process, self._process = self._process, None
        log, self._log = self._log, None
        terminate(process, log)
