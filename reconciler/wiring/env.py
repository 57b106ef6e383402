"""The environment readers: settings, the clock, crash points, handler sleep, DNS resolver.

The only module that reads ``os.environ`` (through :func:`load_settings` and the two test-and-
sandbox knobs, see :mod:`reconciler.wiring`) and the only real clock the runtime sees.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx

from reconciler.errors import TransientError
from reconciler.providers.dns import Resolver, SandboxResolver, SystemResolver
from reconciler.redact import register
from reconciler.runtime.checkpoints import CRASH_ENV, checkpoints_from_spec
from reconciler.runtime.handler import Checkpoints
from reconciler.settings import SANDBOX_CONTROL_ENV, Settings

Sleep = Callable[[float], Awaitable[None]]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env``, or from the process environment when None.

    Every credential in them is registered for redaction (``reconciler/redact.py``), so no
    output can show it.

    Raises:
        ValueError: a malformed setting (the message names the variable).
    """
    settings = Settings.from_env(os.environ if env is None else env)
    register(secret.reveal() for secret in settings.secrets())
    return settings


def wall_clock() -> float:
    """The real time, epoch seconds: the default ``now`` of commands."""
    return time.time()


def load_checkpoints(env: Mapping[str, str] | None = None) -> Checkpoints:
    """The crash points of ``RECONCILER_CRASH_AT`` (tests only); no-ops when unset.

    Raises:
        ValueError: the variable is set but malformed.
    """
    source = os.environ if env is None else env
    return checkpoints_from_spec(source.get(CRASH_ENV))


def load_sleep(env: Mapping[str, str] | None = None) -> Sleep:
    """How handlers wait: :func:`asyncio.sleep`, or the sandbox's virtual clock when
    ``RECONCILER_SANDBOX_CONTROL`` names a sandbox control root."""
    source = os.environ if env is None else env
    control = source.get(SANDBOX_CONTROL_ENV, "").rstrip("/")
    if not control:
        return asyncio.sleep
    return _VirtualSleep(control)


def load_resolver(settings: Settings) -> Resolver | None:
    """The DNS resolver the observers ask about stuck hostnames (``DNS_RESOLVER``).

    Returns:
        A :class:`SystemResolver` (``system``), a :class:`SandboxResolver` on the sandbox's
        control root (``sandbox``), or None (``off``: no DNS check).
    """
    dns = settings.dns
    if dns.resolver == "off":
        return None
    if dns.resolver == "sandbox":
        return SandboxResolver(dns.sandbox_control)
    return SystemResolver(timeout=dns.timeout)


class _VirtualSleep:
    """Waits that move the sandbox's virtual clock forward instead of passing real time."""

    def __init__(self, control: str) -> None:
        self.control = control

    async def __call__(self, seconds: float) -> None:
        if seconds > 0:
            try:
                async with httpx.AsyncClient(timeout=10.0) as http:
                    answer = await http.post(f"{self.control}/clock", json={"seconds": seconds})
            except httpx.TransportError as exc:
                raise TransientError("sandbox", f"clock control unreachable: {exc}") from exc
            if answer.status_code != 200:
                raise TransientError("sandbox", f"clock control answered HTTP {answer.status_code}")
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"VirtualSleep({self.control!r})"
