"""Child-process peers of the sandbox (localstripe, moto as R2): a free port, a log, a clean end.

The launchers in :mod:`reconciler.sandbox.localstripe` and :mod:`reconciler.sandbox.r2` start
a Python module as a child process on a loopback port, keep its output in a temporary file for
error messages, and end it with terminate, then kill. These are those steps, once.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import IO

__all__ = ["free_port", "log_tail", "spawn_logged", "terminate"]


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


def terminate(process: subprocess.Popen[bytes] | None, log: IO[bytes] | None) -> None:
    """End ``process`` (terminate, then kill after 5 s) and close its ``log``; never raises."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if log is not None:
        log.close()
