"""The daemon's loop: lead, follow Git, queue what changed, sweep the rest, reconcile, report.

Called by ``reconciler run`` (``commands/run.py``), which builds the parts in ``wiring.py``
(:class:`~reconciler.wiring.DaemonWorld`) and hands them over as :class:`DaemonParts`. It calls
the Git follower (``runtime/gitfollow.py``), the work queue (``runtime/workqueue.py``), the
leader lease (``runtime/lease.py``), the same pipeline as ``plan`` and ``apply``
(:func:`~reconciler.runtime.observe.observe`, :func:`~reconciler.core.desired.derive`,
:func:`~reconciler.core.plan.build_plan`, :func:`~reconciler.runtime.execute.execute`), the
pure core's conditions (``core/conditions.py``) and deadlines (``core/deadlines.py``), the
status store, the breakers, the metrics and the HTTP endpoints (``runtime/server.py``). One
asyncio event loop runs all of it.

Rules (docs/daemon.md, "The loop", explains them for operators):

1. Leadership first. A daemon stands by until it holds the lease; only the leader follows Git,
   sweeps and reconciles. When the lease is lost (a renewal fails, or a write finds the local
   deadline passed) every worker is cancelled at once and the daemon stands by again. Every
   client that can change the world is fenced (:func:`guarded_client` with
   ``fence=lease.ensure``): a write after the lease is gone raises ``LeaseLostError``.
2. Work is keyed by resource: ``Site/<name>``, ``Tenant/<name>``, and the sweeps
   ``Sweep/all`` (everything) and ``Sweep/hostnames`` (one listing of the zone's hostnames).
   A new commit queues what its diff names in the ``change`` lane (a lowered version, or a
   tenant lock lifted in the specs, goes ``urgent``); a Stripe event queues that tenant; a
   push webhook only nudges the follower. Sweeps queue themselves on their own periods in the
   ``sweep`` lane; the billing sweep queues every tenant, spread over its period.
3. A pass for one key is observe (scoped to the key's sites) + derive + plan + execute, then
   conditions, metrics and timers. Passes of keys that share a tenant never overlap, and a
   sweep runs alone, so no action is ever run twice at once. A pass costs what its scope
   costs, not what the fleet costs: it derives once, only the key's sites and tenants
   (``derive(..., scope=...)``), and the planner, the conditions and the timers reuse it.
4. What a pass reads depends on the key: a billing-sweep tenant pass reads D1, Stripe and the
   gateway but not Cloudflare, and becomes a full pass when it finds a lock or unlock to do;
   the hostname sweep reads Cloudflare and D1 but not Stripe (so it decides nothing about
   billing). A provider not read is marked incomplete with :data:`SKIPPED_PREFIX`, and the
   planner then makes no decision that depends on it.
5. Failures are attributed to the resource that failed (``Site/<site>`` for publishes and
   hostnames, ``Tenant/<name>`` for billing), and go through :meth:`WorkQueue.failure`:
   jittered backoff that honours ``retry_after``; a permanent failure waits for the next
   change or sweep; stuck after ``max_failures``. A pass never loops on its own.
6. Breakers: a key whose essential provider's breaker is open is put back until the breaker's
   ``retry_at`` without counting a failure; a non-essential provider with an open breaker is
   simply not read (rule 4), and the tenant is looked at again when the breaker half-opens.
   Work that failed in an outage is never left to a sweep: when a breaker opens, every
   resource whose last failure was transient (stuck ones included) is queued for the breaker's
   ``retry_at``, so its pass is the probe; when the breaker closes, they are queued at once.
   Failing again, they back off as usual.
   The WhatsApp gateway's connection state is read only when a message could be sent: after
   the first plan, when a tenant in scope has a dunning step due and not logged (then the
   pass plans again with the state). An ``open`` answer is reused for ``gateway_ttl``
   seconds; any other answer is not, so a reconnected gateway is seen at the next read.
7. Deadlines found in a pass (a validation timeout, the next dunning day or lock threshold)
   become :meth:`WorkQueue.wake_at` timers: no polling.
8. Stop: :meth:`Daemon.stop` (SIGTERM/SIGINT) stops taking work; passes in flight get
   ``grace`` seconds to finish, then are cancelled (an action cut short keeps its pending
   intent in the journal, and the next leader resumes it); the lease is released. A bug (an
   exception that is not a translated provider error) stops the daemon with exit code 1.
9. Converged means converged: a commit is reported converged (log, ``converged``, the
   ``commit_to_converged_seconds`` metric, measured from the commit's committer date) only
   once every key it queued had a pass with nothing failed and nothing blocked. Every pass
   that leaves a resource ``Synced=False`` logs it at WARNING with the reason, and the
   ``blocked_resources``/``stuck_resources`` gauges count them by reason. Resources that
   left the specs and the world leave the status and the gauges.
10. Deletions over the blast-radius cap go ahead only when a followed commit approves them
   by name (``Approve-Deletion: Site/<name>`` trailer, ``runtime/approvals.py``); a new
   approval queues the hostname sweep. An invalid head commit is a condition of the source
   (``runtime/source.py``): the last good commit keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar, cast

from reconciler.core.conditions import conditions_for, gone_resources
from reconciler.core.conditions_common import (
    SKIPPED_PREFIX,
    Condition,
    ConditionUpdate,
    Coverage,
    resource_key,
    status_text,
)
from reconciler.core.deadlines import next_billing_deadline, next_validation_deadline
from reconciler.core.desired import Desired, derive
from reconciler.core.observed import Observed, Source
from reconciler.core.outcome import Report, Status
from reconciler.core.plan import ActionKind, Plan, PlanSettings, build_plan
from reconciler.core.plan_site_levers import next_publish_retry
from reconciler.errors import (
    LoadError,
    MigrationError,
    PermanentError,
    PlanError,
    ProviderError,
    SpecError,
    TransientError,
)
from reconciler.providers.http import fencing
from reconciler.providers.ratelimit import Lane
from reconciler.providers.stripe import WebhookEvent
from reconciler.runtime.approvals import ApprovalLedger
from reconciler.runtime.breaker import Breakers, BreakerState, CircuitBreaker
from reconciler.runtime.execute import DEFAULT_LIMITS, execute
from reconciler.runtime.gitfollow import ChangeSet, GitFollower
from reconciler.runtime.handler import Handler
from reconciler.runtime.journal import Journal
from reconciler.runtime.lease import LeaderLease, LeaseLostError
from reconciler.runtime.metrics import Metrics, ResourceTally
from reconciler.runtime.observe import ObserveClients, observe
from reconciler.runtime.server import EndpointServer, GitPush, HealthReport
from reconciler.runtime.source import SourceState
from reconciler.runtime.status import StatusStore
from reconciler.runtime.workqueue import QueueShutDown, WorkQueue
from reconciler.spec.load import Specs
from reconciler.spec.models import Access

__all__ = [
    "SKIPPED_PREFIX",
    "SWEEP_ALL",
    "SWEEP_HOSTNAMES",
    "Daemon",
    "DaemonParts",
    "LoopSettings",
    "PassResult",
    "Reading",
    "guarded_client",
]

SWEEP_ALL = "Sweep/all"
SWEEP_HOSTNAMES = "Sweep/hostnames"

log = logging.getLogger(__name__)

T = TypeVar("T")


class Reading(StrEnum):
    """Which providers a pass reads (module rule 4)."""

    FULL = "full"  # everything the scope needs
    NO_BILLING = "no_billing"  # Cloudflare and D1: the hostname sweep
    BILLING_ONLY = "billing_only"  # D1, Stripe and the gateway: the billing sweep


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """The loop's knobs; every period is in seconds of the injected clock.

    The defaults suit production; the chaos test and the benchmarks compress them.
    """

    interval: float = 60.0  # Git poll period (a push webhook fetches at once)
    workers: int = 4  # passes that may run at once (on different tenants)
    hostname_sweep: float = 600.0  # one listing of every custom hostname
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


@dataclass(slots=True)
class DaemonParts:
    """What the wiring builds for the loop; the clients are already guarded (rule 1, 6)."""

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
    failed: Mapping[str, BaseException]  # resource key -> error
    duration: float

    @property
    def ok(self) -> bool:
        """True when nothing failed (blocked-by-policy actions are not failures)."""
        return not self.failed and self.report is not None


# --------------------------------------------------------------------------- client guard


_UNGUARDED = frozenset({"close", "aclose"})


class _Guarded:
    """Proxy around a client: fence, breaker and metrics around every coroutine method."""

    def __init__(
        self,
        target: object,
        *,
        provider: str,
        breaker: CircuitBreaker | None,
        metrics: Metrics | None,
        fence: Callable[[], object] | None,
    ) -> None:
        self._target = target
        self._provider = provider
        self._breaker = breaker
        self._metrics = metrics
        self._fence = fence

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name in _UNGUARDED or not inspect.iscoroutinefunction(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._fence is not None:
                self._fence()  # NB: LeaseLostError before anything reaches the world
            if self._breaker is not None:
                self._breaker.check()
            try:
                with fencing(self._fence):  # and again before each request leaves
                    result = await attribute(*args, **kwargs)
            except ProviderError as exc:
                if self._breaker is not None:
                    self._breaker.record_failure(exc)
                if self._metrics is not None and not getattr(exc, "not_applied", False):
                    self._metrics.api_call(self._provider, exc.status or "error")
                    self._metrics.api_error(self._provider, exc)
                raise
            if self._breaker is not None:
                self._breaker.record_success()
            if self._metrics is not None:
                self._metrics.api_call(self._provider, "2xx")
            return result

        return call

    def __repr__(self) -> str:
        return f"guarded({self._target!r})"


def guarded_client(
    target: T,
    *,
    provider: str,
    breakers: Breakers | None = None,
    metrics: Metrics | None = None,
    fence: Callable[[], object] | None = None,
) -> T:
    """``target`` with every coroutine method guarded (module rules 1 and 6).

    Before each call: ``fence()`` (``lease.ensure`` for writers; it raises when the lease is
    lost) and the provider's breaker (``BreakerOpenError`` when it refuses). After it: the
    breaker and the API metrics learn the result. ``close``/``aclose`` pass straight through.

    Args:
        target: the adapter (a ``CloudflareClient``, a ``Database``, ...).
        provider: the breaker and metrics name (``cloudflare``, ``d1``, ``stripe``,
            ``whatsapp``).
        breakers: the shared breakers (none: no breaker).
        metrics: where calls and errors are counted (none: not counted).
        fence: called before every call; raises to refuse it.

    Returns:
        A proxy typed as ``target`` (it forwards every other attribute unchanged).
    """
    breaker = breakers[provider] if breakers is not None and provider in breakers else None
    proxy = _Guarded(target, provider=provider, breaker=breaker, metrics=metrics, fence=fence)
    return cast(T, proxy)


# --------------------------------------------------------------------------- exclusion


class _TenantLocks:
    """Passes sharing a tenant never overlap; a sweep (``None``: everything) runs alone."""

    def __init__(self) -> None:
        self._busy: dict[str, int] = {}
        self._everything = False
        self._sweep_waiting = 0
        self._changed = asyncio.Condition()

    def _free(self, tenants: frozenset[str] | None) -> bool:
        if self._everything:
            return False
        if tenants is None:
            return not self._busy
        return self._sweep_waiting == 0 and not any(t in self._busy for t in tenants)

    @contextlib.asynccontextmanager
    async def hold(self, tenants: frozenset[str] | None) -> AsyncIterator[None]:
        async with self._changed:
            if tenants is None:
                self._sweep_waiting += 1
                try:
                    await self._changed.wait_for(lambda: self._free(None))
                finally:
                    self._sweep_waiting -= 1
                self._everything = True
            else:
                await self._changed.wait_for(lambda: self._free(tenants))
                for name in tenants:
                    self._busy[name] = self._busy.get(name, 0) + 1
        try:
            yield
        finally:
            async with self._changed:
                if tenants is None:
                    self._everything = False
                else:
                    for name in tenants:
                        self._busy[name] -= 1
                        if not self._busy[name]:
                            del self._busy[name]
                self._changed.notify_all()


# --------------------------------------------------------------------------- the daemon


_ESSENTIAL: Mapping[Reading, tuple[str, ...]] = {
    Reading.FULL: ("d1", "cloudflare"),
    Reading.NO_BILLING: ("d1", "cloudflare"),
    Reading.BILLING_ONLY: ("d1",),
}
_OPTIONAL: Mapping[Reading, tuple[str, ...]] = {
    Reading.FULL: ("stripe", "whatsapp"),
    Reading.NO_BILLING: (),
    Reading.BILLING_ONLY: ("stripe", "whatsapp"),
}
_ESCALATE = frozenset({ActionKind.SOFT_LOCK, ActionKind.HARD_LOCK, ActionKind.UNLOCK})
_GATEWAY_DEFERRED = f"{SKIPPED_PREFIX}: the gateway is read only when a message is due"


class Daemon:
    """One reconciler process: standby or leader (see the module rules)."""

    def __init__(self, parts: DaemonParts, settings: LoopSettings | None = None) -> None:
        """Prepare the loop; nothing runs until :meth:`run` or :meth:`run_once`."""
        self.parts = parts
        self.settings = settings or LoopSettings()
        if self.settings.workers < 1:
            raise ValueError("workers must be at least 1")
        self.role = "starting"  # starting | standby | leader | stopping | stopped
        self.specs: Specs | None = None
        self._previous: Specs | None = None
        self.queue = self._new_queue()
        self.passes: list[PassResult] = []  # the most recent passes (bounded)
        self.last_pass_at: float | None = None
        self.crashed: BaseException | None = None
        self._stop = asyncio.Event()
        self._lease_lost = asyncio.Event()
        self._locks = _TenantLocks()
        self._full: set[str] = set()
        self._converging: dict[str, tuple[float, float, set[str]]] = {}  # seen, committed, keys
        self._drift_since: dict[str, float] = {}
        self._tally = ResourceTally()
        self._commit_order: dict[str, int] = {}
        self.source = SourceState(branch=parts.follower.branch)
        self.approvals = ApprovalLedger()
        self._tenant_sites: tuple[Specs, Mapping[str, frozenset[str]]] | None = None
        self._gateway_open_at: float | None = None  # when the gateway last answered "open"
        self._gateway_lock = asyncio.Lock()
        self._alive = False
        self.converged: dict[str, float] = {}  # commit -> seconds from seen to converged
        parts.breakers.subscribe(self._breaker_changed)

    def _breaker_changed(self, provider: str, state: BreakerState) -> None:
        """Rule 6: failed work waits for the probe when a breaker opens, runs when it closes."""
        if state is BreakerState.HALF_OPEN:
            return
        wait = 0.0
        if state is BreakerState.OPEN:
            retry_at = self.parts.breakers[provider].retry_at
            wait = 0.0 if retry_at is None else max(0.0, retry_at - self.parts.clock())
        for key in self.queue.retryable():
            self.queue.add(key, Lane.CHANGE, after=wait)

    def _new_queue(self) -> WorkQueue:
        queue = WorkQueue(
            clock=self.parts.clock,
            sleep=self.parts.sleep,
            base=self.settings.backoff_base,
            cap=max(self.settings.backoff_cap, self.settings.backoff_base),
            max_failures=self.settings.max_failures,
            observer=self.parts.metrics.workqueue,
        )
        self.parts.metrics.workqueue.watch(queue.running)
        return queue

    # ----------------------------------------------------------------- probes and webhooks

    def stop(self) -> None:
        """Ask for a graceful stop (SIGTERM/SIGINT); safe to call more than once."""
        self._stop.set()

    def health(self) -> HealthReport:
        """Liveness for ``/healthz``: the loop runs and has not crashed."""
        details: dict[str, Any] = {
            "role": self.role,
            "leader": self.parts.lease.is_leader,
            "commit": self.specs.revision if self.specs is not None else None,
            "last_pass_at": self.last_pass_at,
            "queued": len(self.queue),
            "stuck": len(self.queue.stuck_keys()),
        }
        if self.crashed is not None:
            details["error"] = type(self.crashed).__name__
        return HealthReport(ok=self._alive and self.crashed is None, details=details)

    def readiness(self) -> dict[str, Any]:
        """The details ``/readyz`` shows: role, the commit served, and the source's validity."""
        return {
            "role": self.role,
            "commit": self.specs.revision if self.specs is not None else None,
            "source": self.source.readiness(),
        }

    def ready(self) -> bool:
        """Readiness for ``/readyz``: a standby once the lease state is known; a leader once
        the specs are loaded."""
        if self.role == "standby":
            return True
        return self.role == "leader" and self.specs is not None

    async def on_git_push(self, push: GitPush) -> None:
        """A verified push: fetch now (the payload's ``after`` is only a hint)."""
        self.parts.follower.nudge()

    async def on_stripe_event(self, event: WebhookEvent) -> None:
        """A verified Stripe event: re-read that customer's tenant from the API, fully."""
        specs = self.specs
        if specs is None or event.customer is None:
            return
        for name, tenant in sorted(specs.tenants.items()):
            if tenant.spec.stripe.customer == event.customer:
                key = f"Tenant/{name}"
                self._full.add(key)
                self.queue.add(key, Lane.CHANGE)
                log.info(
                    "billing event queued a tenant",
                    extra={"tenant": name, "stripe_event": event.id, "type": event.type},
                )
                self._publish_depth()

    # ----------------------------------------------------------------- running

    async def run(self) -> int:
        """Serve until :meth:`stop`: stand by, lead, stand by again if the lease is lost.

        Returns:
            0 after a graceful stop, 1 when a bug stopped the daemon.
        """
        self._alive = True
        server = self.parts.server
        if server is not None:
            await server.start()
        try:
            while not self._stop.is_set():
                self.role = "standby"
                self.parts.metrics.set_leader(False)
                if not await self._wait_for_lease():
                    break
                lost = await self._lead()
                self.parts.metrics.set_leader(False)
                if not lost:
                    break
        finally:
            self.role = "stopping"
            await self.parts.lease.release()
            self.parts.metrics.set_leader(False)
            if server is not None:
                await server.stop()
            self._alive = False
            self.role = "stopped"
        return 1 if self.crashed is not None else 0

    async def run_once(self) -> PassResult:
        """Take the lease, fetch the branch, make one full pass, release the lease.

        Raises:
            ProviderError: the lease or the remote could not be reached.
            SpecError: the specs at the head are invalid.
            LeaseLostError: the lease was lost during the pass.
        """
        self._alive = True
        try:
            self.role = "standby"
            if not await self._wait_for_lease():
                raise LeaseLostError("stopped before the lease was acquired")
            self.role = "leader"
            # Renewed beside the pass, as in run(): a pass longer than the ttl must not find
            # its own writes fenced off by the lease's local deadline.
            maintain = asyncio.create_task(self.parts.lease.maintain(), name="lease")
            try:
                head = await self.parts.follower.fetch()
                specs = await asyncio.to_thread(self.parts.follower.specs_at, head)
                await self._approvals(None, head, specs)
                self._install(specs)
                self.queue = self._new_queue()
                return await self._pass(SWEEP_ALL, Reading.FULL)
            finally:
                await _cancel(maintain)
        finally:
            self.role = "stopping"
            await self.parts.lease.release()
            self._alive = False
            self.role = "stopped"

    async def _wait_for_lease(self) -> bool:
        """Stand by until this process leads (True) or a stop is asked (False)."""
        lease = self.parts.lease
        poll = self.settings.lease_poll if self.settings.lease_poll is not None else lease.ttl / 3
        while not self._stop.is_set():
            try:
                if await lease.try_acquire():
                    return True
            except ProviderError as exc:
                log.warning("lease acquisition failed; retrying", extra={"error": str(exc)})
            if await self._stopped_within(poll):
                return False
        return False

    async def _stopped_within(self, seconds: float) -> bool:
        stop = asyncio.ensure_future(self._stop.wait())
        timer = asyncio.ensure_future(self.parts.sleep(seconds))
        try:
            await asyncio.wait((stop, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            timer.cancel()
        return self._stop.is_set()

    async def _lead(self) -> bool:
        """One term as leader; True when it ended because the lease was lost."""
        parts = self.parts
        self.role = "leader"
        parts.metrics.set_leader(True)
        parts.status.forget()  # another leader may have written since
        self._lease_lost.clear()
        self.queue = self._new_queue()
        self._full.clear()
        log.info("leading", extra={"holder": parts.lease.holder})
        if self.specs is not None:
            self.queue.add(SWEEP_ALL, Lane.CHANGE)  # another leader may have acted meanwhile
        workers = [
            asyncio.create_task(self._worker(), name=f"worker-{index}")
            for index in range(self.settings.workers)
        ]
        since = self.specs.revision if self.specs is not None else None
        background = [
            asyncio.create_task(
                parts.follower.watch(self.settings.interval, self._on_new_commit, since=since),
                name="git-follower",
            ),
            asyncio.create_task(self._sweeps(), name="sweeps"),
        ]
        maintain = asyncio.create_task(parts.lease.maintain(), name="lease")
        stopping = asyncio.create_task(self._stop.wait())
        lost_signal = asyncio.create_task(self._lease_lost.wait())
        try:
            done, _ = await asyncio.wait(
                {maintain, stopping, lost_signal, *background},
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in background:
                if task in done and not task.cancelled() and task.exception() is not None:
                    self._crash(task.exception())
            lost = (maintain in done or lost_signal in done) and not self._stop.is_set()
            lost = lost or not parts.lease.is_leader
            if lost:
                log.warning("lease lost: stopping all work and standing by")
                await _cancel(*workers, *background)
            else:
                await _cancel(*background)
                await self._drain(workers)
            return lost and not self._stop.is_set()
        finally:
            await _cancel(maintain, stopping, lost_signal, *workers, *background)
            self.queue.shutdown()

    async def _drain(self, workers: list[asyncio.Task[None]]) -> None:
        """Stop taking work; give passes in flight ``grace`` seconds, then cancel them."""
        self.queue.shutdown()
        in_flight = sorted(self.queue.processing)
        if in_flight:
            log.info("stopping: waiting for passes in flight", extra={"keys": in_flight})
        _, pending = await asyncio.wait(workers, timeout=self.settings.grace)
        if pending:
            log.warning(
                "stopping: grace period over, cancelling passes in flight (their intents "
                "stay pending in the journal and are resumed by the next leader)",
                extra={"keys": sorted(self.queue.processing)},
            )
            await _cancel(*pending)

    def _crash(self, error: BaseException | None) -> None:
        if error is None or self.crashed is not None:
            return
        self.crashed = error
        log.error("bug: the daemon stops", exc_info=error)
        self._stop.set()

    # ----------------------------------------------------------------- triggers

    def _install(self, specs: Specs) -> None:
        self._previous, self.specs = self.specs, specs

    async def _on_new_commit(self, old: str | None, new: str) -> None:
        follower = self.parts.follower
        seen = self.parts.clock()
        committed = await asyncio.to_thread(follower.committed_at, new)
        try:
            specs = await asyncio.to_thread(follower.specs_at, new)
        except (SpecError, LoadError) as exc:
            await self._refuse(new, exc)
            return
        previous = self.specs
        changes = (
            ChangeSet(all=True)
            if previous is None or previous.revision is None
            else await asyncio.to_thread(follower.changed, previous.revision, new)
        )
        approved = await self._approvals(previous, new, specs)
        self._install(specs)
        await self._write_source(self.source.accept(new))
        keys = self._queue_changes(changes, previous, specs)
        if approved and SWEEP_ALL not in keys:
            # An approval changes what the planner may do: look at every hostname again.
            self.queue.add(SWEEP_HOSTNAMES, Lane.CHANGE)
            keys.append(SWEEP_HOSTNAMES)
        log.info(
            "new commit queued",
            extra={"commit": new, "keys": keys[:50], "all": changes.all, "count": len(keys)},
        )
        self._commit_order[new] = len(self._commit_order)
        # Measured from the commit's own time, so poll delay counts (module rule 9).
        start = committed if committed is not None and committed <= seen else seen
        if keys:
            self._converging[new] = (seen, start, set(keys))
        else:
            self._converged(new, seen, start)

    async def _approvals(self, previous: Specs | None, new: str, specs: Specs) -> list[str]:
        """Read the new commits' ``Approve-Deletion`` trailers; return the new approvals."""
        since = previous.revision if previous is not None else None
        try:
            found = await asyncio.to_thread(self.parts.follower.approvals, since, new)
        except LoadError as exc:
            log.warning("approvals not read", extra={"commit": new, "error": str(exc)})
            return []
        for value in found.ignored:
            log.warning(
                "approval ignored: name Site/<name> or Hostname/<name>", extra={"value": value}
            )
        self.approvals.prune(specs)
        added = self.approvals.add(found)
        if added:
            log.info(
                "deletions approved in Git",
                extra={"commit": new, "approved": {k: found.approved[k] for k in added}},
            )
        return added

    async def _refuse(self, commit: str, error: Exception) -> None:
        """An invalid head: a condition of the source; the last good commit stays served."""
        update = self.source.refuse(commit, error)
        log.error(
            "the specs at the new commit are invalid; still reconciling the last good commit",
            extra={
                "commit": commit,
                "serving": self.source.serving,
                "error": str(error),
                "problems": list(self.source.problems),
            },
        )
        await self._write_source(update)

    async def _write_source(self, update: ConditionUpdate) -> None:
        self.parts.metrics.set_source(valid=self.source.valid, problems=self.source.count)
        try:
            await self.parts.status.set_many([update])
        except ProviderError as exc:
            log.warning("source condition not written", extra={"error": str(exc)})

    def plan_settings(self) -> PlanSettings:
        """The planner's settings with the deletions approved in Git (module rule 10)."""
        base = self.parts.plan_settings
        if not self.approvals.approved:
            return base
        return replace(
            base, approved_deletions={**base.approved_deletions, **self.approvals.approved}
        )

    def _queue_changes(self, changes: ChangeSet, old: Specs | None, new: Specs) -> list[str]:
        if changes.all:
            self.queue.add(SWEEP_ALL, Lane.CHANGE)
            return [SWEEP_ALL]
        keys = changes.keys()
        for key in keys:
            kind, _, name = key.partition("/")
            lane = Lane.CHANGE
            if kind == "Tenant":
                self._full.add(key)
                if _lock_lifted(old, new, name):
                    lane = Lane.URGENT
            elif _version_lowered(old, new, name):
                lane = Lane.URGENT  # a revert: a rollback to an existing deployment
            self.queue.add(key, lane)
        self._publish_depth()
        return keys

    async def _sweeps(self) -> None:
        """Queue the sweeps on their periods (module rule 2); runs until cancelled."""
        settings = self.settings
        clock = self.parts.clock
        start = clock()
        due = {
            SWEEP_ALL: start + settings.full_sweep,
            SWEEP_HOSTNAMES: start + settings.hostname_sweep,
            "billing": start + settings.billing_sweep,
        }
        periods = {
            SWEEP_ALL: settings.full_sweep,
            SWEEP_HOSTNAMES: settings.hostname_sweep,
            "billing": settings.billing_sweep,
        }
        while True:
            wait = max(0.0, min(due.values()) - clock())
            await self.parts.sleep(wait)
            now = clock()
            for name, moment in sorted(due.items()):
                if now < moment:
                    continue
                due[name] = now + periods[name]
                if name == "billing":
                    self._queue_billing_sweep(periods[name])
                else:
                    self.queue.add(name, Lane.SWEEP)
            self._publish_depth()

    def _queue_billing_sweep(self, period: float) -> None:
        specs = self.specs
        if specs is None or not specs.tenants:
            return
        names = sorted(specs.tenants)
        spacing = period / len(names)
        for index, name in enumerate(names):
            self.queue.add(f"Tenant/{name}", Lane.SWEEP, after=index * spacing)

    # ----------------------------------------------------------------- workers

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            self._publish_depth()
            try:
                await self._process(key)
            except LeaseLostError as exc:
                log.warning("a write found the lease lost", extra={"key": key, "error": str(exc)})
                self._lease_lost.set()
            except Exception as exc:  # a bug: crash on bugs, retry on weather (STYLE 2.6)
                self._crash(exc)
            finally:
                self.queue.done(key)
                self._publish_depth()

    async def _process(self, key: str) -> None:
        specs = self.specs
        if specs is None:
            return
        reading = Reading.FULL
        if key.startswith("Tenant/") and key not in self._full:
            reading = Reading.BILLING_ONLY
        elif key == SWEEP_HOSTNAMES:
            reading = Reading.NO_BILLING
        self._full.discard(key)
        async with self._locks.hold(self._tenants_of(key, specs)):
            await self._pass(key, reading)

    def _tenants_of(self, key: str, specs: Specs) -> frozenset[str] | None:
        kind, _, name = key.partition("/")
        if kind == "Tenant":
            return frozenset({name})
        if kind == "Site":
            for known in (specs, self._previous):
                if known is not None and name in known.sites:
                    return frozenset({known.sites[name].spec.tenant})
        return None  # a sweep, or a site nobody knows: run alone

    # ----------------------------------------------------------------- one pass

    async def _pass(self, key: str, reading: Reading) -> PassResult:
        """Observe, derive, plan, execute, then conditions, metrics and timers."""
        parts = self.parts
        specs = self.specs
        assert specs is not None
        started = parts.clock()
        lane = Lane.SWEEP if key.startswith("Sweep/") else Lane.CHANGE
        blocked_until = self._essential_breaker_wait(reading)
        if blocked_until is not None:
            provider, wait = blocked_until
            log.info(
                "pass put back: breaker open",
                extra={"key": key, "provider": provider, "retry_in_s": round(wait, 3)},
            )
            self.queue.add(key, lane, after=wait)
            return self._record(PassResult(key, reading, None, {}, parts.clock() - started))
        try:
            observed, desired, plan, reading = await self._plan(key, specs, reading)
            report = await execute(
                plan,
                handlers=parts.handlers,
                journal=parts.journal,
                limits=parts.limits,
                now=parts.clock,
            )
        except MigrationError as exc:
            failed: dict[str, BaseException] = {key: PermanentError("d1", str(exc))}
            self._fail(key, failed)
            parts.metrics.pass_finished(parts.clock() - started, ok=False)
            log.error("pass failed", extra={"key": key, "error": str(exc)})
            return self._record(PassResult(key, reading, None, failed, parts.clock() - started))
        except PlanError as exc:
            failed = {key: PermanentError("plan", str(exc))}
            self._fail(key, failed)
            parts.metrics.pass_finished(parts.clock() - started, ok=False)
            log.error("pass failed", extra={"key": key, "error": str(exc)})
            return self._record(PassResult(key, reading, None, failed, parts.clock() - started))
        now = parts.clock()
        failed = self._failures(key, observed, report)
        self._fail(key, failed)
        self._succeed(key, specs, observed, report, failed)
        await self._write_conditions(key, specs, desired, observed, report, reading, now)
        self._set_timers(key, specs, desired, observed, reading, now)
        self._track_drift(key, plan, failed, now)
        duration = parts.clock() - started
        parts.metrics.pass_finished(duration, ok=not failed)
        counts = report.counts()
        log.info(
            "pass finished",
            extra={
                "key": key,
                "reading": reading.value,
                "commit": plan.revision,
                "actions": len(plan.actions),
                "applied": counts["applied"],
                "failed": sorted(failed),
                "blocked": len(plan.blocked),
                "duration_s": round(duration, 3),
            },
        )
        result = self._record(PassResult(key, reading, report, failed, duration))
        self._note_convergence(key, failed, plan)
        return result

    def _record(self, result: PassResult) -> PassResult:
        self.passes.append(result)
        del self.passes[:-200]
        self.last_pass_at = self.parts.clock()
        return result

    def _essential_breaker_wait(self, reading: Reading) -> tuple[str, float] | None:
        breakers = self.parts.breakers
        now = self.parts.clock()
        for provider in _ESSENTIAL[reading]:
            if provider not in breakers:
                continue
            breaker = breakers[provider]
            if breaker.state is BreakerState.OPEN and breaker.retry_at is not None:
                return provider, max(0.0, breaker.retry_at - now)
        return None

    def _clients(self, reading: Reading) -> ObserveClients:
        """The observe clients for ``reading``, minus what is skipped or breaker-open."""
        clients = self.parts.observe_clients
        skipped: dict[Source, str] = {}
        if reading is Reading.NO_BILLING:
            skipped[Source.STRIPE] = f"{SKIPPED_PREFIX}: the hostname sweep reads no billing"
            skipped[Source.WHATSAPP] = f"{SKIPPED_PREFIX}: the hostname sweep sends nothing"
        if reading is Reading.BILLING_ONLY:
            reason = f"{SKIPPED_PREFIX}: the billing sweep reads no Cloudflare"
            skipped[Source.PAGES] = reason
            skipped[Source.HOSTNAMES] = reason
            skipped[Source.ROUTES] = reason
        breakers = self.parts.breakers
        for provider, sources in (("stripe", (Source.STRIPE,)), ("whatsapp", (Source.WHATSAPP,))):
            if (
                provider in _OPTIONAL[reading]
                and provider in breakers
                and breakers[provider].state is BreakerState.OPEN
            ):
                for source in sources:
                    skipped.setdefault(
                        source, f"{SKIPPED_PREFIX}: the {provider} circuit breaker is open"
                    )
        if clients.evolution is not None:
            # Read later, and only when a message could be sent (module rule 6).
            skipped.setdefault(Source.WHATSAPP, _GATEWAY_DEFERRED)
        return replace(
            clients,
            cloudflare=None if Source.HOSTNAMES in skipped else clients.cloudflare,
            kv=None if Source.HOSTNAMES in skipped else clients.kv,  # the table with them
            workers=None if Source.HOSTNAMES in skipped else clients.workers,
            stripe=None if Source.STRIPE in skipped else clients.stripe,
            evolution=None,
            unconfigured={**clients.unconfigured, **skipped},
        )

    async def _plan(
        self, key: str, specs: Specs, reading: Reading
    ) -> tuple[Observed, Desired, Plan, Reading]:
        """Observe, derive (once, the key's scope only) and plan (module rules 3, 4 and 6)."""
        scope, hostnames = self._scope(key, specs)
        now = self.parts.clock()
        observed = await observe(
            specs, clients=self._clients(reading), now=now, scope=scope, hostnames=hostnames
        )
        kind, _, name = key.partition("/")

        def think() -> tuple[Desired, Plan]:
            desired = derive(
                specs,
                observed.billing,
                now=now,
                scope=scope,
                tenants=(name,) if kind == "Tenant" else (),
            )
            return desired, build_plan(desired, observed, self.plan_settings())

        if scope is None:
            # A whole-fleet derive + plan takes seconds of CPU on a large fleet: run it off the
            # event loop so lease renewals, webhooks and health checks keep being served.
            desired, plan = await asyncio.to_thread(think)
        else:
            desired, plan = think()  # milliseconds: proportional to the scope
        if reading is Reading.BILLING_ONLY and any(a.kind in _ESCALATE for a in plan.actions):
            # A lock or unlock re-points hostnames too: do it all in one full pass.
            return await self._plan(key, specs, Reading.FULL)
        if observed.incomplete.get(Source.WHATSAPP) == _GATEWAY_DEFERRED and _sends_due(
            desired, observed
        ):
            gap = await self._gateway_gap()
            incomplete: dict[Source, str] = {
                s: r for s, r in observed.incomplete.items() if s is not Source.WHATSAPP
            }
            if gap is not None:
                incomplete[Source.WHATSAPP] = gap
            observed = replace(observed, incomplete=dict(sorted(incomplete.items())))
            plan = build_plan(desired, observed, self.plan_settings())
        return observed, desired, plan, reading

    async def _gateway_gap(self) -> str | None:
        """Why no message can go out now (None: the gateway is open; module rule 6).

        An ``open`` answer is reused for ``gateway_ttl`` seconds: a gateway that drops within
        that window refuses the send with "Connection Closed", which the dunning handler
        defers (the step stays pending), exactly as when it drops between a read and a send.
        Any other answer, a failure or a timeout, is not reused.
        """
        gateway = self.parts.observe_clients.evolution
        if gateway is None:
            return "the WhatsApp gateway is not configured"
        async with self._gateway_lock:
            started = self.parts.clock()
            opened = self._gateway_open_at
            if opened is not None and 0 <= started - opened < self.settings.gateway_ttl:
                return None
            self._gateway_open_at = None
            try:
                async with asyncio.timeout(self.settings.gateway_timeout):
                    state = await gateway.connection_state()
            except ProviderError as exc:
                return str(exc)
            except TimeoutError:
                return f"no answer within {self.settings.gateway_timeout:g} s"
            text = str(getattr(state, "value", "close"))
            if text != "open":
                return f"instance {gateway.instance} is {text}"
            self._gateway_open_at = started
            return None

    def _scope(self, key: str, specs: Specs) -> tuple[frozenset[str] | None, frozenset[str]]:
        kind, _, name = key.partition("/")
        if kind == "Site":
            removed: frozenset[str] = frozenset()
            previous = self._previous
            if previous is not None and name in previous.sites:
                old = {d.canonical for d in previous.sites[name].spec.domains}
                new = (
                    {d.canonical for d in specs.sites[name].spec.domains}
                    if name in specs.sites
                    else set()
                )
                removed = frozenset(old - new)
            return frozenset({name}), removed
        if kind == "Tenant":
            return self._sites_of(specs, name), frozenset()
        return None, frozenset()

    def _sites_of(self, specs: Specs, tenant: str) -> frozenset[str]:
        """The tenant's sites, from an index built once per specs (not a walk per pass)."""
        cached = self._tenant_sites
        if cached is None or cached[0] is not specs:
            index: dict[str, set[str]] = defaultdict(set)
            for site_name, site in specs.sites.items():
                index[site.spec.tenant].add(site_name)
            cached = (specs, {t: frozenset(names) for t, names in index.items()})
            self._tenant_sites = cached
        return cached[1].get(tenant, frozenset())

    def _coverage(self, key: str, specs: Specs, reading: Reading) -> tuple[set[str], set[str]]:
        kind, _, name = key.partition("/")
        if kind == "Site":
            tenant = specs.sites[name].spec.tenant if name in specs.sites else None
            tenants = (
                {tenant} if tenant is not None and reading is not Reading.NO_BILLING else set()
            )
            return {name} if name in specs.sites else set(), tenants
        if kind == "Tenant":
            sites = set(self._sites_of(specs, name))
            return (sites if reading is not Reading.BILLING_ONLY else set()), {name}
        tenants = set(specs.tenants) if reading is not Reading.NO_BILLING else set()
        return set(specs.sites), tenants

    # ----------------------------------------------------------------- after a pass

    def _failures(self, key: str, observed: Observed, report: Report) -> dict[str, BaseException]:
        """Failed resources of this pass and why (module rule 5)."""
        failed: dict[str, BaseException] = {}
        by_id = {action.id: action for action in report.plan.actions}
        for outcome in report.outcomes:
            if outcome.status not in (
                Status.FAILED_TRANSIENT,
                Status.FAILED_PERMANENT,
                Status.STUCK,
            ):
                continue
            action = by_id[outcome.action_id]
            owner = _owner(action.target, action.site, action.tenant)
            provider = self.parts.handlers[action.kind].provider
            message = f"{action.kind.value} {action.target}: {outcome.message}"
            error: ProviderError
            if outcome.status is Status.FAILED_TRANSIENT:
                error = TransientError(provider, message, retry_after=outcome.retry_after)
            else:
                error = PermanentError(provider, message)
            previous = failed.get(owner)
            if previous is None or (
                isinstance(error, TransientError)
                and isinstance(previous, TransientError)
                and (error.retry_after or 0) > (previous.retry_after or 0)
            ):
                failed[owner] = error
        unread = {
            source: reason
            for source, reason in observed.incomplete.items()
            if not reason.startswith(SKIPPED_PREFIX) and not reason.startswith("not configured")
        }
        essential = {Source.D1, Source.PAGES, Source.HOSTNAMES}
        if key.startswith(("Site/", "Tenant/")) and any(s in essential for s in unread):
            reason = "; ".join(f"{s.value}: {r}" for s, r in sorted(unread.items()))
            failed.setdefault(key, TransientError("observe", f"reading failed: {reason}"))
        billing = {Source.STRIPE, Source.WHATSAPP} & set(unread)
        if billing:
            # Not the key's failure: look at the tenants again a little later (module rule 5).
            reason = "; ".join(f"{s.value}: {unread[s]}" for s in sorted(billing))
            log.warning("billing reading failed", extra={"key": key, "error": reason})
            specs = self.specs
            if specs is not None:
                for tenant in self._coverage(key, specs, Reading.FULL)[1]:
                    self.queue.add(f"Tenant/{tenant}", Lane.CHANGE, after=self._reread_delay())
        return failed

    def _reread_delay(self) -> float:
        delay = self.settings.reread_after
        for provider in ("stripe", "whatsapp"):
            if provider in self.parts.breakers:
                retry_at = self.parts.breakers[provider].retry_at
                if retry_at is not None:
                    delay = max(delay, retry_at - self.parts.clock())
        return delay

    def _fail(self, key: str, failed: Mapping[str, BaseException]) -> None:
        for owner, error in sorted(failed.items()):
            retry = self.queue.failure(owner, error)
            stuck = self.queue.stuck(owner) is not None
            log.warning(
                "resource failed",
                extra={
                    "key": owner,
                    "pass": key,
                    "error": str(error),
                    "retry_in_s": None if retry is None else round(retry, 3),
                    "failures": self.queue.failures(owner),
                    "stuck": stuck,
                },
            )

    def _succeed(
        self,
        key: str,
        specs: Specs,
        observed: Observed,
        report: Report,
        failed: Mapping[str, BaseException],
    ) -> None:
        if key not in failed and key.startswith(("Site/", "Tenant/")):
            self.queue.success(key)
        # A resource whose actions all succeeded in this pass (a sweep included) is released.
        owners = {
            _owner(a.target, a.site, a.tenant)
            for a, o in zip(report.plan.actions, report.outcomes, strict=True)
            if o.succeeded
        }
        for owner in owners - set(failed):
            self.queue.success(owner)

    async def _write_conditions(
        self,
        key: str,
        specs: Specs,
        desired: Desired,
        observed: Observed,
        report: Report,
        reading: Reading,
        now: float,
    ) -> None:
        sites, tenants = self._coverage(key, specs, reading)
        stuck: dict[str, str] = {}
        for name in sites:
            error = self.queue.stuck(f"Site/{name}")
            if error is not None:
                stuck[f"Site/{name}"] = str(error)
        for name in tenants:
            error = self.queue.stuck(f"Tenant/{name}")
            if error is not None:
                stuck[f"Tenant/{name}"] = str(error)
        coverage = Coverage(sites=frozenset(sites), tenants=frozenset(tenants), stuck=stuck)

        def compute() -> list[ConditionUpdate]:
            return conditions_for(
                desired=desired, observed=observed, report=report, coverage=coverage, now=now
            )

        # A sweep's conditions cover the whole fleet (seconds of CPU at 10,000 sites): off the
        # event loop, so lease renewals and webhooks are served meanwhile.
        updates = await asyncio.to_thread(compute) if len(sites) > 100 else compute()
        try:
            await self.parts.status.set_many(updates)
            gone = await self._gone(key, specs, desired, report)
        except ProviderError as exc:
            log.warning("conditions not written", extra={"key": key, "error": str(exc)})
            gone = set()
        tally = self._tally
        for update in updates:
            tally.record(
                update.resource, update.condition, status_text(update.status), update.reason
            )
        tally.drop(gone)
        self.parts.metrics.set_tally(tally)
        _warn_unsynced(key, updates)

    async def _gone(self, key: str, specs: Specs, desired: Desired, report: Report) -> set[str]:
        """Resources that left the specs and the world: their rows go (core rule 5)."""
        kind, _, name = key.partition("/")
        removed = {name} if kind == "Site" and name not in specs.sites else set()
        stored = await self.parts.status.resources() if key == SWEEP_ALL else None
        gone = gone_resources(desired=desired, report=report, removed_sites=removed, stored=stored)
        if gone:
            await self.parts.status.remove(gone)
            log.info("resources left the status", extra={"key": key, "resources": sorted(gone)})
        return gone

    def _set_timers(
        self,
        key: str,
        specs: Specs,
        desired: Desired,
        observed: Observed,
        reading: Reading,
        now: float,
    ) -> None:
        sites, tenants = self._coverage(key, specs, reading)
        if observed.is_complete(Source.HOSTNAMES):
            for name in sites:
                site = desired.sites.get(name)
                if site is None:
                    continue
                moment = next_validation_deadline(site.hostnames, observed, now)
                if moment is not None:
                    self.queue.wake_at(f"Site/{name}", moment)
        if observed.is_complete(Source.D1):
            for name in sites:  # a publish stuck on Cloudflare's side retries after a cool-down
                retry = next_publish_retry(
                    observed.ledger.get(name), settings=self.parts.plan_settings, now=now
                )
                if retry is not None:
                    self.queue.wake_at(f"Site/{name}", retry)
        if observed.is_complete(Source.STRIPE):
            for name in tenants:
                tenant = specs.tenants.get(name)
                if tenant is None:
                    continue
                facts = observed.billing.get(tenant.spec.stripe.customer)
                if facts is None:
                    continue
                policy = specs.policies[tenant.spec.policy].spec
                moment = next_billing_deadline(policy, facts.open_invoices, now)
                if moment is not None:
                    self.queue.wake_at(f"Tenant/{name}", moment)

    def _track_drift(
        self, key: str, plan: Plan, failed: Mapping[str, BaseException], now: float
    ) -> None:
        pending = {_owner(a.target, a.site, a.tenant) for a in plan.actions} & set(failed)
        for owner in pending:
            self._drift_since.setdefault(owner, now)
        for owner in list(self._drift_since):
            covered = key == owner or key.startswith("Sweep/")
            if covered and owner not in pending:
                del self._drift_since[owner]
        oldest = min(self._drift_since.values(), default=now)
        self.parts.metrics.set_drift_age(now - oldest)

    def _note_convergence(self, key: str, failed: Mapping[str, BaseException], plan: Plan) -> None:
        """A commit converges once every key it queued has had a pass with nothing failed and
        nothing blocked (module rule 9); a newer commit converging supersedes older ones."""
        if failed or plan.blocked:
            return
        for commit, (seen, start, outstanding) in list(self._converging.items()):
            outstanding.discard(key)
            if key == SWEEP_ALL:
                outstanding.clear()
            if not outstanding:
                del self._converging[commit]
                self._converged(commit, seen, start)
                self._supersede(commit)

    def _supersede(self, commit: str) -> None:
        """Stop waiting for commits older than ``commit``: its specs replaced theirs."""
        order = list(self._converging)
        for older in order:
            if self._commit_order.get(older, 0) < self._commit_order.get(commit, 0):
                del self._converging[older]

    def _converged(self, commit: str, seen: float, committed: float) -> None:
        """Report ``commit`` converged: ``converged`` keeps the seconds since it was seen, the
        metric the seconds since its committer date (poll delay included, rule 9)."""
        now = self.parts.clock()
        seconds = max(0.0, now - seen)
        self.converged[commit] = seconds
        since_commit = max(0.0, now - committed)
        self.parts.metrics.observe_converged(since_commit)
        log.info(
            "commit converged",
            extra={
                "commit": commit,
                "seconds": round(seconds, 3),
                "since_commit_s": round(since_commit, 3),
            },
        )

    def _publish_depth(self) -> None:
        for lane in Lane:
            self.parts.metrics.set_queue_depth(lane.name.lower(), self.queue.depth(lane))


def _warn_unsynced(key: str, updates: list[ConditionUpdate]) -> None:
    """One WARNING per pass that leaves resources not Synced, with each one's reason."""
    unsynced = [
        update
        for update in updates
        if update.condition == Condition.SYNCED.value and update.status is False
    ]
    if not unsynced:
        return
    log.warning(
        "resources not synced",
        extra={
            "key": key,
            "count": len(unsynced),
            "resources": {u.resource: f"{u.reason}: {u.message}" for u in unsynced[:20]},
        },
    )


def _sends_due(desired: Desired, observed: Observed) -> bool:
    """A derived tenant has a dunning step due whose log row does not say it went out."""
    for tenant in desired.tenants.values():
        for due in tenant.dunning:
            record = observed.dunning.get((due.invoice_id, due.step_code))
            if record is None or record.status == "pending":
                return True
    return False


def _owner(target: str, site: str | None, tenant: str | None) -> str:
    """The queue key a failed action is charged to (module rule 5)."""
    if site is not None:
        return f"Site/{site}"
    if tenant is not None:
        return f"Tenant/{tenant}"
    return resource_key(target)


def _version_lowered(old: Specs | None, new: Specs, site: str) -> bool:
    if old is None or site not in old.sites or site not in new.sites:
        return False
    return new.sites[site].spec.production.version < old.sites[site].spec.production.version


def _lock_lifted(old: Specs | None, new: Specs, tenant: str) -> bool:
    if old is None or tenant not in old.tenants or tenant not in new.tenants:
        return False
    locked = (Access.SOFT_LOCKED, Access.HARD_LOCKED)
    return old.tenants[tenant].spec.access in locked and (
        new.tenants[tenant].spec.access not in locked
    )


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` and wait for them to end (their exceptions are not re-raised)."""
    for task in tasks:
        task.cancel()
    pending = [task for task in tasks if not task.done() or not task.cancelled()]
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
