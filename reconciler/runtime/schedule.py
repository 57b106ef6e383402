"""What a daemon pass's outcomes mean for the work queue: retries, releases, timers.

Called by the daemon's pass (``runtime/daemon_pass.py``) after every pass. It calls the work
queue (``runtime/workqueue.py``), the breakers' ``retry_at`` and the pure core's deadlines
(``core/deadlines.py``, ``core/plan_site_levers.py``).

The outcomes of a pass (``core/outcome.py``, made once by ``runtime/execute.py``) become one
:class:`Result` per resource, and :func:`schedule` is the one switch that hands them to the
queue, as controller-runtime's ``reconcileHandler`` does: terminal (counted, not retried),
error (counted, rate-limited retry), requeue-after (looked at again later, nothing counted),
success (forgotten). No outcome is turned back into an exception.

Rules (docs/daemon.md, "The loop"):

1. Failures are charged to the resource that failed (``Site/<site>`` for publishes and
   hostnames, ``Tenant/<name>`` for billing), and go through :meth:`WorkQueue.failure`:
   jittered backoff that honours ``retry_after``; a permanent failure waits for the next
   change or sweep; stuck after ``max_failures``. A pass never loops on its own.
2. An essential reading (D1, Pages, hostnames) that failed is the key's failure; a billing
   reading (Stripe, the gateway) that failed is not: its tenants are looked at again after
   ``reread_after`` (or when the breaker lets a probe through, if later).
3. A resource whose actions all succeeded in a pass (a sweep included) is released.
4. Deadlines found in a pass (a validation timeout, a publish retry cool-down, the next
   dunning day or lock threshold) become :meth:`WorkQueue.wake_at` timers: no polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.core.conditions_common import Coverage, resource_key
from reconciler.core.deadlines import next_billing_deadline, next_validation_deadline
from reconciler.core.desired import Desired
from reconciler.core.lane import Lane
from reconciler.core.observed import Observed, Source
from reconciler.core.outcome import Report, Status
from reconciler.core.plan import Action
from reconciler.core.plan_site_levers import next_publish_retry
from reconciler.redact import redact
from reconciler.runtime.daemon_parts import DaemonParts, LoopSettings
from reconciler.runtime.scope import KeyScope, Reading
from reconciler.runtime.workqueue import Failure, WorkQueue
from reconciler.spec.load import Specs

__all__ = ["Result", "Scheduler", "Verdict", "owner_of", "schedule"]

log = logging.getLogger("reconciler.runtime.loop")  # NB: the daemon's lines share one logger

_ESSENTIAL_SOURCES = frozenset({Source.D1, Source.PAGES, Source.HOSTNAMES})
_BILLING_SOURCES = frozenset({Source.STRIPE, Source.WHATSAPP})


class Verdict(StrEnum):
    """What a pass means for one resource (controller-runtime's ``reconcileHandler``)."""

    TERMINAL = "terminal"  # counted; not retried until a change or a sweep
    ERROR = "error"  # counted; retried after a jittered backoff that honours the hint
    REQUEUE_AFTER = "requeue_after"  # looked at again after ``after``; nothing counted
    SUCCESS = "success"  # every failure forgotten


@dataclass(frozen=True, slots=True)
class Result:
    """One resource's verdict from one pass."""

    resource: str
    verdict: Verdict
    reason: str = ""
    after: float | None = None  # ERROR: the server's hint; REQUEUE_AFTER: the delay
    lane: Lane = Lane.CHANGE  # REQUEUE_AFTER only

    @property
    def failed(self) -> bool:
        """True for a counted failure (terminal or error)."""
        return self.verdict in (Verdict.TERMINAL, Verdict.ERROR)


_FAILED = {
    Status.FAILED_TRANSIENT: Verdict.ERROR,
    Status.FAILED_PERMANENT: Verdict.TERMINAL,
    Status.STUCK: Verdict.TERMINAL,
}


def schedule(queue: WorkQueue, key: str, results: Sequence[Result]) -> None:
    """The one switch from a pass's results to the work queue (rules 1 to 3)."""
    for result in results:
        match result.verdict:
            case Verdict.REQUEUE_AFTER:
                queue.add(result.resource, result.lane, after=result.after or 0.0)
            case Verdict.TERMINAL | Verdict.ERROR:
                failure = Failure(
                    result.reason,
                    terminal=result.verdict is Verdict.TERMINAL,
                    retry_after=result.after,
                )
                _log_failure(queue, key, result.resource, failure)
            case Verdict.SUCCESS:
                queue.success(result.resource)


def _log_failure(queue: WorkQueue, key: str, resource: str, failure: Failure) -> None:
    retry = queue.failure(resource, failure)
    log.warning(
        "resource failed",
        extra={
            "key": resource,
            "pass": key,
            "error": str(failure),
            "retry_in_s": None if retry is None else round(retry, 3),
            "failures": queue.failures(resource),
            "stuck": queue.stuck(resource) is not None,
        },
    )


class Scheduler:
    """Turns a pass's outcomes into per-resource results."""

    def __init__(self, parts: DaemonParts, settings: LoopSettings, scope: KeyScope) -> None:
        """Schedule with ``settings``' re-read delay and the breakers of ``parts``."""
        self._parts = parts
        self._settings = settings
        self._scope = scope

    def results(self, key: str, specs: Specs, observed: Observed, report: Report) -> list[Result]:
        """Every resource's verdict from this pass, in the order the queue hears them."""
        failed = self._failed_actions(report)
        unread = {source: observed.incomplete[source].detail for source in observed.failed()}
        if key.startswith(("Site/", "Tenant/")) and any(s in _ESSENTIAL_SOURCES for s in unread):
            reason = "; ".join(f"{s.value}: {r}" for s, r in sorted(unread.items()))
            failed.setdefault(
                key, Result(key, Verdict.ERROR, redact(f"observe: reading failed: {reason}"))
            )
        results = self._rereads(key, specs, unread)
        results.extend(failed[owner] for owner in sorted(failed))
        if key not in failed and key.startswith(("Site/", "Tenant/")):
            results.append(Result(key, Verdict.SUCCESS))
        owners = {
            owner_of(a)
            for a, o in zip(report.plan.actions, report.outcomes, strict=True)
            if o.succeeded
        }
        results.extend(Result(owner, Verdict.SUCCESS) for owner in sorted(owners - set(failed)))
        return results

    def _failed_actions(self, report: Report) -> dict[str, Result]:
        """The failed actions charged to their owners (rule 1); the longest hint wins."""
        failed: dict[str, Result] = {}
        by_id = {action.id: action for action in report.plan.actions}
        for outcome in report.outcomes:
            verdict = _FAILED.get(outcome.status)
            if verdict is None:
                continue
            action = by_id[outcome.action_id]
            owner = owner_of(action)
            provider = self._parts.handlers[action.kind].provider
            reason = redact(f"{provider}: {action.kind.value} {action.target}: {outcome.message}")
            after = outcome.retry_after if verdict is Verdict.ERROR else None
            result = Result(owner, verdict, reason, after)
            previous = failed.get(owner)
            if previous is None or (
                verdict is Verdict.ERROR
                and previous.verdict is Verdict.ERROR
                and (after or 0) > (previous.after or 0)
            ):
                failed[owner] = result
        return failed

    def _rereads(self, key: str, specs: Specs, unread: Mapping[Source, str]) -> list[Result]:
        """A failed billing reading is not the key's failure: its tenants are looked at
        again a little later (rule 2)."""
        billing = _BILLING_SOURCES & set(unread)
        if not billing:
            return []
        reason = "; ".join(f"{s.value}: {unread[s]}" for s in sorted(billing))
        log.warning("billing reading failed", extra={"key": key, "error": reason})
        delay = self._reread_delay()
        tenants = self._scope.coverage(key, specs, Reading.FULL)[1]
        return [Result(f"Tenant/{t}", Verdict.REQUEUE_AFTER, reason, delay) for t in tenants]

    def _reread_delay(self) -> float:
        delay = self._settings.reread_after
        for provider in ("stripe", "whatsapp"):
            if provider in self._parts.breakers:
                retry_at = self._parts.breakers[provider].retry_at
                if retry_at is not None:
                    delay = max(delay, retry_at - self._parts.clock())
        return delay

    def coverage(
        self,
        queue: WorkQueue,
        key: str,
        specs: Specs,
        reading: Reading,
        sites: frozenset[str] | None = None,
    ) -> Coverage:
        """What a pass of ``key`` reports on (``sites``: the moving sweep's), with the
        resources the queue gave up on (asked of the queue's stuck set, not per resource)."""
        covered, tenants = self._scope.coverage(key, specs, reading, sites)
        stuck: dict[str, str] = {}
        for resource in queue.stuck_keys():
            kind, _, name = resource.partition("/")
            if (kind == "Site" and name in covered) or (kind == "Tenant" and name in tenants):
                error = queue.stuck(resource)
                if error is not None:
                    stuck[resource] = str(error)
        return Coverage(sites=frozenset(covered), tenants=frozenset(tenants), stuck=stuck)

    async def set_timers(
        self,
        queue: WorkQueue,
        *,
        coverage: Coverage,
        specs: Specs,
        desired: Desired,
        observed: Observed,
        now: float,
    ) -> None:
        """The deadlines of what the pass covered, as timers (rule 4); a whole fleet's are
        set ``chunk`` sites at a time, yielding to the event loop in between."""
        hostnames = observed.is_complete(Source.HOSTNAMES)
        ledger = observed.is_complete(Source.D1)
        for index, name in enumerate(sorted(coverage.sites)):
            if index and not index % self._settings.chunk:
                await asyncio.sleep(0)
            self._site_timers(queue, name, desired, observed, now, hostnames=hostnames, d1=ledger)
        if observed.is_complete(Source.STRIPE):
            for name in coverage.tenants:
                tenant = specs.tenants.get(name)
                if tenant is None:
                    continue
                facts = observed.billing.get(tenant.spec.stripe.customer)
                if facts is None:
                    continue
                policy = specs.policies[tenant.spec.policy].spec
                moment = next_billing_deadline(policy, facts.open_invoices, now)
                if moment is not None:
                    queue.wake_at(f"Tenant/{name}", moment)

    def _site_timers(
        self,
        queue: WorkQueue,
        name: str,
        desired: Desired,
        observed: Observed,
        now: float,
        *,
        hostnames: bool,
        d1: bool,
    ) -> None:
        """A site's validation deadline and its publish cool-down, as timers (rule 4)."""
        site = desired.sites.get(name)
        if hostnames and site is not None:
            moment = next_validation_deadline(site.hostnames, observed, now)
            if moment is not None:
                queue.wake_at(f"Site/{name}", moment)
        if d1:  # a publish stuck on Cloudflare's side: a cool-down
            retry = next_publish_retry(
                observed.ledger.get(name), settings=self._parts.plan_settings, now=now
            )
            if retry is not None:
                queue.wake_at(f"Site/{name}", retry)


def owner_of(action: Action) -> str:
    """The queue key a failed action is charged to (rule 1)."""
    if action.site is not None:
        return f"Site/{action.site}"
    if action.tenant is not None:
        return f"Tenant/{action.tenant}"
    return resource_key(action.target)
