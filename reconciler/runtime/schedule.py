"""What a daemon pass's results mean for the work queue: retries, releases, timers.

Called by the daemon's pass (``runtime/daemon_pass.py``) after every pass. It calls the work
queue (``runtime/workqueue.py``), the breakers' ``retry_at`` and the pure core's deadlines
(``core/deadlines.py``, ``core/plan_site_levers.py``).

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

import logging
from collections.abc import Mapping

from reconciler.core.conditions_common import SKIPPED_PREFIX, Coverage, resource_key
from reconciler.core.deadlines import next_billing_deadline, next_validation_deadline
from reconciler.core.desired import Desired
from reconciler.core.observed import Observed, Source
from reconciler.core.outcome import Report, Status
from reconciler.core.plan import Action
from reconciler.core.plan_site_levers import next_publish_retry
from reconciler.errors import PermanentError, ProviderError, TransientError
from reconciler.providers.ratelimit import Lane
from reconciler.runtime.daemon_parts import DaemonParts, LoopSettings
from reconciler.runtime.scope import KeyScope, Reading
from reconciler.runtime.workqueue import WorkQueue
from reconciler.spec.load import Specs

__all__ = ["Scheduler", "owner_of"]

log = logging.getLogger("reconciler.runtime.loop")  # NB: the daemon's lines share one logger

_ESSENTIAL_SOURCES = frozenset({Source.D1, Source.PAGES, Source.HOSTNAMES})
_BILLING_SOURCES = frozenset({Source.STRIPE, Source.WHATSAPP})


class Scheduler:
    """Turns a pass's outcomes into work-queue calls."""

    def __init__(self, parts: DaemonParts, settings: LoopSettings, scope: KeyScope) -> None:
        """Schedule with ``settings``' re-read delay and the breakers of ``parts``."""
        self._parts = parts
        self._settings = settings
        self._scope = scope

    def failures(
        self, queue: WorkQueue, key: str, specs: Specs, observed: Observed, report: Report
    ) -> dict[str, BaseException]:
        """Failed resources of this pass and why (rules 1 and 2)."""
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
            owner = owner_of(action)
            provider = self._parts.handlers[action.kind].provider
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
        if key.startswith(("Site/", "Tenant/")) and any(s in _ESSENTIAL_SOURCES for s in unread):
            reason = "; ".join(f"{s.value}: {r}" for s, r in sorted(unread.items()))
            failed.setdefault(key, TransientError("observe", f"reading failed: {reason}"))
        billing = _BILLING_SOURCES & set(unread)
        if billing:
            # Not the key's failure: look at the tenants again a little later (rule 2).
            reason = "; ".join(f"{s.value}: {unread[s]}" for s in sorted(billing))
            log.warning("billing reading failed", extra={"key": key, "error": reason})
            for tenant in self._scope.coverage(key, specs, Reading.FULL)[1]:
                queue.add(f"Tenant/{tenant}", Lane.CHANGE, after=self._reread_delay())
        return failed

    def _reread_delay(self) -> float:
        delay = self._settings.reread_after
        for provider in ("stripe", "whatsapp"):
            if provider in self._parts.breakers:
                retry_at = self._parts.breakers[provider].retry_at
                if retry_at is not None:
                    delay = max(delay, retry_at - self._parts.clock())
        return delay

    @staticmethod
    def fail(queue: WorkQueue, key: str, failed: Mapping[str, BaseException]) -> None:
        """Charge each failure to its resource (rule 1)."""
        for owner, error in sorted(failed.items()):
            retry = queue.failure(owner, error)
            stuck = queue.stuck(owner) is not None
            log.warning(
                "resource failed",
                extra={
                    "key": owner,
                    "pass": key,
                    "error": str(error),
                    "retry_in_s": None if retry is None else round(retry, 3),
                    "failures": queue.failures(owner),
                    "stuck": stuck,
                },
            )

    @staticmethod
    def succeed(
        queue: WorkQueue, key: str, report: Report, failed: Mapping[str, BaseException]
    ) -> None:
        """Release the key and every resource whose actions all succeeded (rule 3)."""
        if key not in failed and key.startswith(("Site/", "Tenant/")):
            queue.success(key)
        owners = {
            owner_of(a)
            for a, o in zip(report.plan.actions, report.outcomes, strict=True)
            if o.succeeded
        }
        for owner in owners - set(failed):
            queue.success(owner)

    def coverage(self, queue: WorkQueue, key: str, specs: Specs, reading: Reading) -> Coverage:
        """What a pass of ``key`` reports on, with the resources the queue gave up on."""
        sites, tenants = self._scope.coverage(key, specs, reading)
        stuck: dict[str, str] = {}
        for resource in [f"Site/{n}" for n in sites] + [f"Tenant/{n}" for n in tenants]:
            error = queue.stuck(resource)
            if error is not None:
                stuck[resource] = str(error)
        return Coverage(sites=frozenset(sites), tenants=frozenset(tenants), stuck=stuck)

    def set_timers(
        self,
        queue: WorkQueue,
        *,
        coverage: Coverage,
        specs: Specs,
        desired: Desired,
        observed: Observed,
        now: float,
    ) -> None:
        """The deadlines of what the pass covered, as timers (rule 4)."""
        if observed.is_complete(Source.HOSTNAMES):
            for name in coverage.sites:
                site = desired.sites.get(name)
                if site is None:
                    continue
                moment = next_validation_deadline(site.hostnames, observed, now)
                if moment is not None:
                    queue.wake_at(f"Site/{name}", moment)
        if observed.is_complete(Source.D1):
            for name in coverage.sites:  # a publish stuck on Cloudflare's side: a cool-down
                retry = next_publish_retry(
                    observed.ledger.get(name), settings=self._parts.plan_settings, now=now
                )
                if retry is not None:
                    queue.wake_at(f"Site/{name}", retry)
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


def owner_of(action: Action) -> str:
    """The queue key a failed action is charged to (rule 1)."""
    if action.site is not None:
        return f"Site/{action.site}"
    if action.tenant is not None:
        return f"Tenant/{action.tenant}"
    return resource_key(action.target)
