"""One daemon pass for one work-queue key: observe, derive, plan, execute, then account for it.

Called by the daemon loop's workers (``runtime/loop.py``) for each key they take. It calls the
observation (``runtime/observe.py``), the pure core (``derive``, ``build_plan``), the executor
(``runtime/execute.py``), the gateway gate (``runtime/gateway.py``), and after the pass the
scheduler (``runtime/schedule.py``), the status publisher (``runtime/status_publisher.py``)
and the convergence tracker (``runtime/convergence.py``).

Rules (docs/daemon.md, "The loop"):

1. A pass for one key is observe (scoped to the key's sites) + derive + plan + execute, then
   conditions, metrics and timers. It derives once, only the key's sites and tenants
   (``derive(..., scope=...)``), and the planner, the conditions and the timers reuse it.
2. A provider not read is marked incomplete with a ``SKIPPED`` gap (the key's reading
   skips it, or its breaker is open), and the planner then makes no decision that depends on
   it. A billing-sweep pass that finds a lock or unlock to do becomes a full pass.
3. Breakers: a key whose essential provider's breaker is open is put back until the breaker's
   ``retry_at`` without counting a failure; a non-essential provider with an open breaker is
   simply not read (rule 2).
4. A migration or plan error fails the key permanently; anything else that is not a
   translated provider error is a bug and propagates.
5. A sweep's pass (the whole fleet's values) runs with automatic garbage collection paused
   and freezes what survives it (``runtime/collector.py``): a full collection holds the
   event loop, however the pass's work is spread over threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from reconciler.core.conditions_common import SKIPPED_PREFIX
from reconciler.core.lane import Lane
from reconciler.core.observed import Gap, GapReason, Source
from reconciler.core.outcome import Report
from reconciler.core.plan import ActionKind, PlanSettings
from reconciler.errors import MigrationError, PlanError, ProviderError
from reconciler.redact import redact
from reconciler.runtime.breaker import BreakerState
from reconciler.runtime.collector import paused_collector
from reconciler.runtime.convergence import Convergence
from reconciler.runtime.daemon_parts import DaemonParts, LoopSettings, PassResult
from reconciler.runtime.daemon_sweep import HostnameSweep, MovingHostnames, Prelisted
from reconciler.runtime.execute import execute
from reconciler.runtime.gateway import GATEWAY_DEFERRED, GatewayGate, sends_due
from reconciler.runtime.observe import ObserveClients
from reconciler.runtime.pipeline import Pass, plan_pass, replan
from reconciler.runtime.schedule import Result, Scheduler, Verdict, owner_of, schedule
from reconciler.runtime.scope import SWEEP_MOVING, KeyScope, Reading
from reconciler.runtime.status_publisher import StatusPublisher
from reconciler.runtime.workqueue import WorkQueue
from reconciler.spec.load import Specs

__all__ = ["DaemonPass", "PassContext"]

log = logging.getLogger("reconciler.runtime.loop")  # NB: the daemon's lines share one logger

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


def _skipped(why: str) -> Gap:
    """A provider this pass chose not to read, and why (module rule 2)."""
    return Gap(GapReason.SKIPPED, f"{SKIPPED_PREFIX}: {why}")


@dataclass(frozen=True, slots=True)
class PassContext:
    """What a pass runs against: the queue of this term and the specs served (and before)."""

    queue: WorkQueue
    specs: Specs
    previous: Specs | None
    plan_settings: Callable[[], PlanSettings]  # read at each plan: approvals may arrive


class DaemonPass:
    """Runs passes; holds the collaborators that outlive one (the gate, the publisher, ...)."""

    def __init__(
        self,
        parts: DaemonParts,
        settings: LoopSettings,
        *,
        scope: KeyScope,
        convergence: Convergence,
    ) -> None:
        """Run with ``parts``; charge, publish and converge through the given helpers."""
        self._parts = parts
        self._scope = scope
        self._convergence = convergence
        self.gateway = GatewayGate(
            parts.observe_clients,
            clock=parts.clock,
            ttl=settings.gateway_ttl,
            timeout=settings.gateway_timeout,
        )
        self._scheduler = Scheduler(parts, settings, scope)
        self.sweep = HostnameSweep(scope)
        self._publisher = StatusPublisher(status=parts.status, metrics=parts.metrics)

    async def run(self, key: str, reading: Reading, context: PassContext) -> PassResult:
        """Observe, derive, plan, execute, then conditions, metrics and timers (rule 1); a
        sweep's pass with the garbage collector paused (rule 5)."""
        if not key.startswith("Sweep/"):
            return await self._run(key, reading, context)
        with paused_collector():
            return await self._run(key, reading, context)

    async def _run(self, key: str, reading: Reading, context: PassContext) -> PassResult:
        parts = self._parts
        queue = context.queue
        started = parts.clock()
        lane = Lane.SWEEP if key.startswith("Sweep/") else Lane.CHANGE
        blocked_until = self._essential_breaker_wait(reading)
        if blocked_until is not None:
            provider, wait = blocked_until
            log.info(
                "pass put back: breaker open",
                extra={"key": key, "provider": provider, "retry_in_s": round(wait, 3)},
            )
            schedule(queue, key, [Result(key, Verdict.REQUEUE_AFTER, after=wait, lane=lane)])
            return PassResult(key, reading, None, {}, parts.clock() - started)
        try:
            moving = await self._moving(key, context)
            made, reading = await self._plan(key, context, reading, moving)
            report = await execute(
                made.plan,
                handlers=parts.handlers,
                journal=parts.journal,
                limits=parts.limits,
                now=parts.clock,
            )
        except (MigrationError, PlanError) as exc:
            source = "d1" if isinstance(exc, MigrationError) else "plan"
            return self._failed(key, reading, queue, Verdict.TERMINAL, f"{source}: {exc}", started)
        except ProviderError as exc:  # only the moving sweep's listing raises it here
            return self._failed(key, reading, queue, Verdict.ERROR, f"listing: {exc}", started)
        return await self._account(key, reading, context, made, report, moving, started)

    def _failed(
        self,
        key: str,
        reading: Reading,
        queue: WorkQueue,
        verdict: Verdict,
        why: str,
        started: float,
    ) -> PassResult:
        """A pass that failed before it could plan: the key is charged (rule 4)."""
        parts = self._parts
        failure = Result(key, verdict, redact(why))
        schedule(queue, key, [failure])
        parts.metrics.pass_finished(parts.clock() - started, ok=False)
        log.error("pass failed", extra={"key": key, "error": failure.reason})
        return PassResult(key, reading, None, {key: failure.reason}, parts.clock() - started)

    async def _account(
        self,
        key: str,
        reading: Reading,
        context: PassContext,
        made: Pass,
        report: Report,
        moving: MovingHostnames | None,
        started: float,
    ) -> PassResult:
        """After the plan ran: results, conditions, timers, convergence and the log line."""
        parts = self._parts
        queue, specs = context.queue, context.specs
        observed, desired, plan = made.observed, made.desired, made.plan
        now = parts.clock()
        results = self._scheduler.results(key, specs, observed, report)
        schedule(queue, key, results)
        failed = {r.resource: r.reason for r in results if r.failed}
        coverage = self._scheduler.coverage(
            queue, key, specs, reading, None if moving is None else moving.sites
        )
        await self._publisher.publish(
            key,
            specs=specs,
            desired=desired,
            observed=observed,
            report=report,
            coverage=coverage,
            now=now,
        )
        await self._scheduler.set_timers(
            queue, coverage=coverage, specs=specs, desired=desired, observed=observed, now=now
        )
        pending = {owner_of(a) for a in plan.actions} & set(failed)
        self._convergence.track_drift(key, pending, now, None if moving is None else moving.sites)
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
        self._convergence.note(key, failed, plan)
        return PassResult(key, reading, report, failed, duration)

    async def _moving(self, key: str, context: PassContext) -> MovingHostnames | None:
        """The moving sweep's filtered listings (``runtime/daemon_sweep.py``); None for others."""
        reader = self._parts.observe_clients.cloudflare
        if key != SWEEP_MOVING or reader is None:
            return None
        return await self.sweep.read(reader, context.specs)

    def _essential_breaker_wait(self, reading: Reading) -> tuple[str, float] | None:
        breakers = self._parts.breakers
        now = self._parts.clock()
        for provider in _ESSENTIAL[reading]:
            if provider not in breakers:
                continue
            breaker = breakers[provider]
            if breaker.state is BreakerState.OPEN and breaker.retry_at is not None:
                return provider, max(0.0, breaker.retry_at - now)
        return None

    def _clients(self, reading: Reading) -> ObserveClients:
        """The observe clients for ``reading``, minus what is skipped or breaker-open."""
        clients = self._parts.observe_clients
        skipped: dict[Source, Gap] = {}
        if reading is Reading.NO_BILLING:
            skipped[Source.STRIPE] = _skipped("the hostname sweep reads no billing")
            skipped[Source.WHATSAPP] = _skipped("the hostname sweep sends nothing")
        if reading is Reading.BILLING_ONLY:
            reason = _skipped("the billing sweep reads no Cloudflare")
            skipped[Source.PAGES] = reason
            skipped[Source.HOSTNAMES] = reason
            skipped[Source.ROUTES] = reason
        breakers = self._parts.breakers
        for provider, sources in (("stripe", (Source.STRIPE,)), ("whatsapp", (Source.WHATSAPP,))):
            if (
                provider in _OPTIONAL[reading]
                and provider in breakers
                and breakers[provider].state is BreakerState.OPEN
            ):
                for source in sources:
                    skipped.setdefault(source, _skipped(f"the {provider} circuit breaker is open"))
        if clients.evolution is not None:
            # Read later, and only when a message could be sent (runtime/gateway.py).
            skipped.setdefault(Source.WHATSAPP, GATEWAY_DEFERRED)
        return replace(
            clients,
            cloudflare=None if Source.HOSTNAMES in skipped else clients.cloudflare,
            kv=None if Source.HOSTNAMES in skipped else clients.kv,  # the table with them
            workers=None if Source.HOSTNAMES in skipped else clients.workers,
            stripe=None if Source.STRIPE in skipped else clients.stripe,
            evolution=None,
            gaps={**clients.gaps, **skipped},
        )

    async def _plan(
        self,
        key: str,
        context: PassContext,
        reading: Reading,
        moving: MovingHostnames | None = None,
    ) -> tuple[Pass, Reading]:
        """Observe, derive (once, the key's scope only) and plan (rules 1 to 3); the moving
        sweep observes the sites it found, answering their hostnames from its listing."""
        specs = context.specs
        # A tenant's sites come from an index of the fleet built once per specs: off the loop.
        scope, hostnames = await asyncio.to_thread(self._scope.scope, key, specs, context.previous)
        clients = self._clients(reading)
        if moving is not None:
            scope = moving.sites
            if clients.cloudflare is not None:
                clients = replace(clients, cloudflare=Prelisted(clients.cloudflare, moving.listed))
        kind, _, name = key.partition("/")
        made = await plan_pass(
            specs,
            clients=clients,
            now=self._parts.clock(),
            settings=context.plan_settings,
            scope=scope,
            hostnames=hostnames,
            derive_scope=scope,
            tenants=(name,) if kind == "Tenant" else (),
        )
        if reading is Reading.BILLING_ONLY and any(a.kind in _ESCALATE for a in made.plan.actions):
            # A lock or unlock re-points hostnames too: do it all in one full pass.
            return await self._plan(key, context, Reading.FULL, moving)
        observed = made.observed
        if observed.incomplete.get(Source.WHATSAPP) == GATEWAY_DEFERRED and sends_due(
            made.desired, observed
        ):
            gap = await self.gateway.gap()
            incomplete: dict[Source, Gap] = {
                s: r for s, r in observed.incomplete.items() if s is not Source.WHATSAPP
            }
            if gap is not None:
                incomplete[Source.WHATSAPP] = gap
            observed = replace(observed, incomplete=dict(sorted(incomplete.items())))
            made = await replan(made, observed, context.plan_settings())
        return made, reading
