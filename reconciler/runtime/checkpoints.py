"""Test-only fault injection: checkpoints that kill the process at a named point.

Production runs use :func:`reconciler.runtime.handler.no_checkpoints`. ``wiring`` builds a
:class:`CrashingCheckpoints` only when the environment variable ``RECONCILER_CRASH_AT`` is set
(:func:`checkpoints_from_spec`); the crash tests set it on an ``apply`` subprocess, let it die,
then run ``apply`` again and check that the world converges without duplicates. Never set it
in production: the process exits without cleanup, as a power cut or ``kill -9`` would.

The executor and the handlers call ``ctx.checkpoint(name)`` at named points around each side
effect (``execute.after-intent``, ``execute.before-finish``, ``publish.after-upload``, ...).

Spec grammar (``RECONCILER_CRASH_AT``)::

    spec  := point ("," point)*
    point := name ":" hit          e.g. "publish.after-upload:1"
    name  := a checkpoint name, or "*" for any checkpoint

``publish.after-upload:2`` kills the process the 2nd time that point is reached in this
process; ``*:17`` kills it at the 17th checkpoint of any name (random kill points in tests).
The process exits with :data:`CRASH_EXIT_CODE` (137, what a shell reports for SIGKILL) through
``os._exit``: no ``finally`` blocks, no ``atexit`` handlers, no buffered writes beyond the
standard streams, which are flushed so the test can read what happened before.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Callable

from reconciler.runtime.handler import Checkpoints, no_checkpoints

__all__ = ["CRASH_ENV", "CRASH_EXIT_CODE", "CrashingCheckpoints", "checkpoints_from_spec"]

CRASH_ENV = "RECONCILER_CRASH_AT"
CRASH_EXIT_CODE = 137
ANY = "*"


def _die(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


class CrashingCheckpoints:
    """Checkpoints that end the process at the configured hit of a named point."""

    def __init__(self, spec: str, *, kill: Callable[[int], None] = _die) -> None:
        """Parse the spec.

        Args:
            spec: ``name:hit[,name:hit...]``, see the module docstring.
            kill: what ends the process (tests of this class pass a recorder).

        Raises:
            ValueError: the spec is malformed (a missing ``:``, a hit that is not a positive
                integer, an empty name).
        """
        self._targets: dict[str, int] = {}
        for point in spec.split(","):
            name, sep, hit = point.strip().rpartition(":")
            if not sep or not name or not hit.isdigit() or int(hit) < 1:
                raise ValueError(
                    f"{CRASH_ENV}={spec!r}: each point must look like 'name:N' with N >= 1 "
                    "(for example 'publish.after-upload:1' or '*:7')"
                )
            self._targets[name] = int(hit)
        self._hits: Counter[str] = Counter()
        self._kill = kill
        self.reached: list[str] = []  # every checkpoint passed so far, in order

    def __call__(self, name: str) -> None:
        """Count this hit of ``name``; end the process when it is the configured one."""
        self.reached.append(name)
        self._hits[name] += 1
        self._hits[ANY] += 1
        for key in (name, ANY):
            if self._targets.get(key) == self._hits[key]:
                print(
                    f"fault injection: killed at checkpoint {name} "
                    f"({CRASH_ENV}={key}:{self._targets[key]})",
                    file=sys.stderr,
                )
                self._kill(CRASH_EXIT_CODE)
                return


def checkpoints_from_spec(spec: str | None) -> Checkpoints:
    """The checkpoints for a ``RECONCILER_CRASH_AT`` value: no-ops when unset or empty.

    Args:
        spec: the environment variable's value, read by ``wiring``.

    Returns:
        :func:`no_checkpoints`, or a :class:`CrashingCheckpoints`.
    """
    if spec is None or not spec.strip():
        return no_checkpoints
    return CrashingCheckpoints(spec)
