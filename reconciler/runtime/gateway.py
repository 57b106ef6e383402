"""When a daemon pass reads the WhatsApp gateway's connection state, and what it makes of it.

Called by the daemon's pass (``runtime/daemon_pass.py``) after its first plan. It calls the
gateway adapter (``providers/evolution.py``) through the observe clients, with the injected
clock.

Rules (docs/daemon.md, "The loop"):

1. The connection state is read only when a message could be sent: when a tenant in scope has
   a dunning step due and not logged (:func:`sends_due`). Until then the observation names the
   gateway incomplete with :data:`GATEWAY_DEFERRED`.
2. An ``open`` answer is reused for ``ttl`` seconds; any other answer, a failure or a timeout,
   is not, so a reconnected gateway is seen at the next read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reconciler.core.conditions_common import SKIPPED_PREFIX
from reconciler.core.desired import Desired
from reconciler.core.observed import Observed
from reconciler.errors import ProviderError
from reconciler.runtime.observe import ObserveClients

__all__ = ["GATEWAY_DEFERRED", "GatewayGate", "sends_due"]

GATEWAY_DEFERRED = f"{SKIPPED_PREFIX}: the gateway is read only when a message is due"


class GatewayGate:
    """The gateway's connection state, read on demand and an ``open`` answer cached (rule 2)."""

    def __init__(
        self,
        clients: ObserveClients,
        *,
        clock: Callable[[], float],
        ttl: float,
        timeout: float,
    ) -> None:
        """Read through ``clients.evolution``; believe ``open`` for ``ttl`` seconds."""
        self._clients = clients
        self._clock = clock
        self._ttl = ttl
        self._timeout = timeout
        self._open_at: float | None = None  # when the gateway last answered "open"
        self._lock = asyncio.Lock()

    async def gap(self) -> str | None:
        """Why no message can go out now (None: the gateway is open).

        An ``open`` answer is reused for ``ttl`` seconds: a gateway that drops within that
        window refuses the send with "Connection Closed", which the dunning handler defers
        (the step stays pending), exactly as when it drops between a read and a send. Any
        other answer, a failure or a timeout, is not reused.
        """
        gateway = self._clients.evolution
        if gateway is None:
            return "the WhatsApp gateway is not configured"
        async with self._lock:
            started = self._clock()
            opened = self._open_at
            if opened is not None and 0 <= started - opened < self._ttl:
                return None
            self._open_at = None
            try:
                async with asyncio.timeout(self._timeout):
                    state = await gateway.connection_state()
            except ProviderError as exc:
                return str(exc)
            except TimeoutError:
                return f"no answer within {self._timeout:g} s"
            text = str(getattr(state, "value", "close"))
            if text != "open":
                return f"instance {gateway.instance} is {text}"
            self._open_at = started
            return None


def sends_due(desired: Desired, observed: Observed) -> bool:
    """A derived tenant has a dunning step due whose log row does not say it went out."""
    for tenant in desired.tenants.values():
        for due in tenant.dunning:
            record = observed.dunning.get((due.invoice_id, due.step_code))
            if record is None or record.status == "pending":
                return True
    return False
