"""The daemon's knobs, the parts the wiring hands it, and what one pass did.

Built by ``wiring`` (:class:`DaemonParts`) and ``commands/run.py`` (:class:`LoopSettings`);
read by the daemon loop (``runtime/loop.py``) and its pass (``runtime/daemon_pass.py``), which
returns a :class:`PassResult`. Values only: nothing here runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from reconciler.core.outcome import Report
from reconciler.core.plan import ActionKind, PlanSettings
from reconciler.runtime.breaker import Breakers
from reconciler.runtime.execute import DEFAULT_LIMITS
from reconciler.runtime.gitfollow import GitFollower
from reconciler.runtime.handler import Handler
from reconciler.runtime.journal import Journal
from reconciler.runtime.lease import LeaderLease
from reconciler.runtime.metrics import Metrics
from reconciler.runtime.observe import ObserveClients
from reconciler.runtime.scope import Reading
from reconciler.runtime.server import EndpointServer
from reconciler.runtime.status import StatusStore

__all__ = ["DaemonParts", "LoopSettings", "PassResult"]


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """The loop's knobs; every period is in seconds of the injected clock.

    The defaults suit production; the chaos test and the benchmarks compress them.
    """

    interval: float = 60.0  # Git poll period (a push webhook fetches at once)
    workers: int = 4  # passes that may run at once (on different tenants)
    hostname_sweep: float = 600.0  # the hostnames that can still move (runtime/daemon_sweep.py)
    hostname_full_sweep: float = 21_600.0  # every custom hostname (a full sweep lists them too)
    billing_sweep: float = 3_600.0  # every tenant's Stripe billing re-read, spread out
    full_sweep: float = 21_600.0  # everything observed and planned
    grace: float = 20.0  # how long a stop lets passes in flight finish
    backoff_base: float = 5.0  # first retry window after a failed pass
    backoff_cap: float = 300.0  # largest retry window
    max_failures: int = 8  # consecutive failures before a resource is stuck
    reread_after: float = 60.0  # when to look again at a tenant whose billing was unreadable
    gateway_ttl: float = 60.0  # how long an "open" WhatsApp connection state is believed
    gateway_timeout: float = 30.0  # one read of the WhatsApp connection state, at most
    lease_poll: float | None = None  # standby poll period (default: the lease's ttl / 3)
    cloudflare_budget: float = 14_400.0  # Cloudflare requests per hour (1,200 per 300 s)
    sweep_budget_share: float = 0.2  # of it, what the hostname sweeps' listings may project
    chunk: int = 2_000  # sites handled between two yields to the event loop in a full pass


@dataclass(slots=True)
class DaemonParts:
    """What the wiring builds for the loop; its clients come guarded (``runtime/guard.py``)."""

    follower: GitFollower
    lease: LeaderLease
    status: StatusStore
    metrics: Metrics
    breakers: Breakers
    observe_clients: ObserveClients
    handlers: Mapping[ActionKind, Handler]
    journal: Journal
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    plan_settings: PlanSettings = field(default_factory=PlanSettings)
    server: EndpointServer | None = None


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did, for logs, tests and ``--once``."""

    key: str
    reading: Reading
    report: Report | None  # None when the pass was put back before observing
    failed: Mapping[str, str]  # resource key -> why it failed (runtime/schedule.py)
    duration: float

    @property
    def ok(self) -> bool:
        """True when nothing failed (blocked-by-policy actions are not failures)."""
        return not self.failed and self.report is not None
