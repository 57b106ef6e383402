"""The daemon's loop: lead, follow Git, queue what changed, sweep the rest, hand keys to workers.

Called by ``reconciler run`` (``commands/run.py``), which builds the parts in ``wiring``
(:class:`~reconciler.wiring.DaemonWorld`) and hands them over as :class:`DaemonParts`. It calls
the Git follower (``runtime/gitfollow.py``) and what its commits bring
(``runtime/commits.py``), the work queue (``runtime/workqueue.py``), the
leader lease (``runtime/lease.py``), the pass of one key (``runtime/daemon_pass.py``: the same
pipeline as ``plan`` and ``apply``, then the schedule, the conditions and the timers), what a
key covers (``runtime/scope.py``), the status store, the breakers, the metrics and the HTTP
endpoints (``runtime/server.py``). One asyncio event loop runs all of it.

Rules (docs/daemon.md, "The loop", explains them for operators; the pass's own rules are in
``runtime/daemon_pass.py`` and the modules it calls):

1. Leadership first. A daemon stands by until it holds the lease; only the leader follows Git,
   sweeps and reconciles. When the lease is lost (a renewal fails, or a write finds the local
   deadline passed) every worker is cancelled at once and the daemon stands by again. Every
   client that can change the world is fenced (``runtime/guard.py``).
2. Work is keyed by resource (``runtime/scope.py``). A new commit queues what its diff names
   in the ``change`` lane (a lowered version, or a tenant lock lifted in the specs, goes
   ``urgent``); a Stripe event queues that tenant; a push webhook only nudges the follower.
   Sweeps queue themselves on their own periods in the ``sweep`` lane; the billing sweep
   queues every tenant, spread over its period. The hostnames that can still move are swept
   often, the whole zone rarely, within a share of the Cloudflare budget
   (``runtime/daemon_sweep.py``).
3. Passes of keys that share a tenant never overlap, and a sweep runs alone, so no action is
   ever run twice at once.
4. Work that failed in an outage is never left to a sweep: when a breaker opens, every
   resource whose last failure was transient (stuck ones included) is queued for the breaker's
   ``retry_at``, so its pass is the probe; when the breaker closes, they are queued at once.
   Failing again, they back off as usual.
5. Stop: :meth:`Daemon.stop` (SIGTERM/SIGINT) stops taking work; passes in flight get
   ``grace`` seconds to finish, then are cancelled (an action cut short keeps its pending
   intent in the journal, and the next leader resumes it); the lease is released. A bug (an
   exception that is not a translated provider error) stops the daemon with exit code 1.
6. A commit's convergence is counted from the keys it queued (``runtime/convergence.py``).
7. A new commit is read by ``runtime/commits.py``: an invalid head is a condition of the
   source (the last good commit keeps being served); deletions its trailers approve reach the
   planner's settings, and a new approval queues the hostname sweep.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from reconciler.core.lane import Lane
from reconciler.errors import ProviderError
from reconciler.providers.stripe import WebhookEvent
from reconciler.runtime.breaker import BreakerState
from reconciler.runtime.collector import settle
from reconciler.runtime.commits import CommitIntake, lanes
from reconciler.runtime.convergence import Convergence
from reconciler.runtime.daemon_parts import DaemonParts, LoopSettings, PassResult
from reconciler.runtime.daemon_pass import DaemonPass, PassContext
from reconciler.runtime.guard import guarded_client
from reconciler.runtime.lease import LeaseLostError
from reconciler.runtime.scope import (
    SWEEP_ALL,
    SWEEP_HOSTNAMES,
    SWEEP_MOVING,
    KeyScope,
    Reading,
    TenantLocks,
)
from reconciler.runtime.server import GitPush, HealthReport
from reconciler.runtime.workqueue import QueueShutDown, WorkQueue
from reconciler.spec.load import Specs

__all__ = [
    "SWEEP_ALL",
    "SWEEP_HOSTNAMES",
    "SWEEP_MOVING",
    "Daemon",
    "DaemonParts",
    "LoopSettings",
    "PassResult",
    "Reading",
    "guarded_client",
]

log = logging.getLogger(__name__)


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
        # The most recent passes (bounded); a whole-fleet sweep's without its report, whose
        # plan keeps the fleet's observation alive until its digest is read (_history).
        self.passes: list[PassResult] = []
        self.last_pass_at: float | None = None
        self.crashed: BaseException | None = None
        self._stop = asyncio.Event()
        self._lease_lost = asyncio.Event()
        self._locks = TenantLocks()
        self._full: set[str] = set()
        self._scope = KeyScope()
        self.convergence = Convergence(clock=parts.clock, metrics=parts.metrics)
        self.converged = self.convergence.converged  # commit -> seconds from seen to converged
        self._passes = DaemonPass(
            parts, self.settings, scope=self._scope, convergence=self.convergence
        )
        self.gateway = self._passes.gateway
        self.sweep = self._passes.sweep  # the hostname sweeps (runtime/daemon_sweep.py)
        self._commits = CommitIntake(parts)
        self._alive = False
        parts.breakers.subscribe(self._breaker_changed)

    def _breaker_changed(self, provider: str, state: BreakerState) -> None:
        """Rule 4: failed work waits for the probe when a breaker opens, runs when it closes."""
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
            "source": self._commits.source.readiness(),
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
                await self._commits.read_approvals(None, head, specs)
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
        self.sweep.forget()
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
        settle()  # the specs: millions of long-lived objects no collection should walk

    async def _on_new_commit(self, old: str | None, new: str) -> None:
        previous = self.specs
        commit = await self._commits.read(new, previous)
        if commit is None:
            return
        self._install(commit.specs)
        await self._commits.accept(new)
        keys = []
        for key, lane in lanes(commit.changes, previous, commit.specs):
            if key.startswith("Tenant/"):
                self._full.add(key)
            self.queue.add(key, lane)
            keys.append(key)
        if commit.approved and SWEEP_ALL not in keys:
            # An approval changes what the planner may do: look at every hostname again.
            self.queue.add(SWEEP_HOSTNAMES, Lane.CHANGE)
            keys.append(SWEEP_HOSTNAMES)
        self._publish_depth()
        log.info(
            "new commit queued",
            extra={"commit": new, "keys": keys[:50], "all": commit.changes.all, "count": len(keys)},
        )
        self.convergence.queued(new, keys, seen=commit.seen, start=commit.start)

    async def _sweeps(self) -> None:
        """Queue the sweeps on their periods (rule 2); runs until cancelled.

        The hostname sweeps' periods come from the budget check (``runtime/daemon_sweep.py``),
        made again before each wait; a full sweep lists every hostname, so queueing one
        postpones the full hostname sweep by its period.
        """
        clock = self.parts.clock
        start = clock()
        last = dict.fromkeys((SWEEP_ALL, SWEEP_HOSTNAMES, SWEEP_MOVING, "billing"), start)
        while True:
            periods = self._periods()
            due = {name: last[name] + periods[name] for name in last}
            await self.parts.sleep(max(0.0, min(due.values()) - clock()))
            now = clock()
            for name in sorted(last):  # Sweep/all first: it may postpone Sweep/hostnames
                if now < last[name] + periods[name]:
                    continue
                last[name] = now
                if name == "billing":
                    self._queue_billing_sweep(periods[name])
                    continue
                if name == SWEEP_ALL:
                    last[SWEEP_HOSTNAMES] = now
                self.queue.add(name, Lane.SWEEP)
            self._publish_depth()

    def _periods(self) -> dict[str, float]:
        """Every sweep's period; the hostname sweeps' after the budget check."""
        settings = self.settings
        fit = self.sweep.periods(settings, self.specs)
        return {
            SWEEP_ALL: settings.full_sweep,
            SWEEP_HOSTNAMES: fit.full,
            SWEEP_MOVING: fit.moving,
            "billing": settings.billing_sweep,
        }

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
        reading = Reading.of(key, full=key in self._full)
        self._full.discard(key)
        async with self._locks.hold(KeyScope.tenants_of(key, specs, self._previous)):
            await self._pass(key, reading)

    # ----------------------------------------------------------------- one pass

    async def _pass(self, key: str, reading: Reading) -> PassResult:
        """One pass of ``key`` (``runtime/daemon_pass.py``), recorded."""
        specs = self.specs
        assert specs is not None
        context = PassContext(
            queue=self.queue,
            specs=specs,
            previous=self._previous,
            plan_settings=self._commits.plan_settings,
        )
        result = await self._passes.run(key, reading, context)
        self.passes.append(_history(result))
        del self.passes[:-200]
        self.last_pass_at = self.parts.clock()
        return result

    def _publish_depth(self) -> None:
        for lane in Lane:
            self.parts.metrics.set_queue_depth(lane.name.lower(), self.queue.depth(lane))


_WHOLE_FLEET = frozenset({SWEEP_ALL, SWEEP_HOSTNAMES})


def _history(result: PassResult) -> PassResult:
    """What the pass history keeps of ``result``: all of it, but a whole-fleet sweep's report
    (its plan's digest holds the fleet's whole observation, unhashed: seconds of CPU to hash
    at 100,000 sites) is dropped, so no fleet-sized observation outlives its pass."""
    if result.key not in _WHOLE_FLEET or result.report is None:
        return result
    return replace(result, report=None)


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` and wait for them to end (their exceptions are not re-raised)."""
    for task in tasks:
        task.cancel()
    pending = [task for task in tasks if not task.done() or not task.cancelled()]
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
