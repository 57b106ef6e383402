"""Deadlines: the next moment the planner would decide differently with nothing changed.

Part of the pure core; the daemon loop turns them into work-queue timers
(``WorkQueue.wake_at``) so that nothing polls: a pending hostname's validation timeout (and a
validated one's ``ssl_timeout``), and the next dunning day or lock threshold of a tenant's
owed invoices (``core.policy.invoice_owed``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from reconciler.core.desired import DesiredHostname
from reconciler.core.facts import Invoice
from reconciler.core.hostname_state import hostname_pending
from reconciler.core.observed import Observed
from reconciler.core.policy import billing_moments
from reconciler.core.spec_view import BillingPolicySpec

__all__ = ["next_billing_deadline", "next_validation_deadline"]


def next_validation_deadline(
    hostnames: Iterable[DesiredHostname], observed: Observed, now: float
) -> float | None:
    """The earliest future validation or certificate (``ssl_timeout``) timeout of ``hostnames``."""
    moments: list[float] = []
    for want in hostnames:
        have = observed.hostnames.get(want.hostname)
        if have is None:
            continue
        if hostname_pending(have):
            moment = have.status_since + want.validation_timeout
            if moment > now:
                moments.append(moment)
        if have.recorded_status == "pending_ssl":  # the planner's ssl_timeout clock
            moment = have.status_since + want.ssl_timeout
            if moment > now:
                moments.append(moment)
    return min(moments) if moments else None


def next_billing_deadline(
    policy: BillingPolicySpec, open_invoices: Collection[Invoice], now: float
) -> float | None:
    """The next dunning day or lock threshold after ``now`` of any invoice still owed.

    Like :func:`reconciler.core.policy.next_dunning_at`, but only future moments: a timer
    for a moment already past would fire at once and re-plan what the pass just planned.
    """
    moments = billing_moments(policy, tuple(open_invoices))
    future = [moment for moment in moments if moment > now]
    return min(future) if future else None
