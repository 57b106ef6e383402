"""Condition values and the plan's verdicts per resource: the vocabulary every condition uses.

Part of the pure core (no I/O, no clock): :mod:`reconciler.core.conditions` computes each
resource's conditions with it, ``core/conditions_sites.py`` the site and hostname ones, and
``runtime/status.py`` stores the :class:`ConditionUpdate` values in D1. docs/status.md lists
the conditions and their reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.core.outcome import Outcome, Report, Status
from reconciler.core.plan import Action, ActionKind, Blocked

__all__ = [
    "GATE_REASONS",
    "SKIPPED_PREFIX",
    "Condition",
    "ConditionUpdate",
    "Coverage",
    "Subject",
    "Verdicts",
    "parse_condition",
    "resource_key",
    "status_text",
    "stuck",
    "synced",
    "verdicts_of",
]


class Condition(StrEnum):
    """Condition types; values are Kubernetes-style CamelCase because users read them as is."""

    SYNCED = "Synced"  # the world matches the specs at observed_commit
    READY = "Ready"  # serving: deployed, reachable, not suspended
    DNS_CONFIGURED = "DNSConfigured"  # a hostname's ownership validation passed
    CERTIFICATE_ISSUED = "CertificateIssued"  # a hostname's certificate is active
    PAYMENT_CURRENT = "PaymentCurrent"  # a tenant has no invoice past due
    WITHIN_BUDGET = "WithinBudget"  # a site's build fits its performance budget
    STUCK = "Stuck"  # retries gave up; a human must act (last_error says why)
    SPECS_VALID = "SpecsValid"  # the followed branch's head has valid specs (Source/<branch>)


def parse_condition(name: str) -> str:
    """The canonical spelling of a condition name typed in any case; unknown names unchanged."""
    for condition in Condition:
        if condition.value.lower() == name.lower():
            return condition.value
    return name


def status_text(status: bool | None) -> str:
    """``True``, ``False`` or ``Unknown``, as stored."""
    if status is None:
        return "Unknown"
    return "True" if status else "False"


@dataclass(frozen=True, slots=True)
class ConditionUpdate:
    """One condition of one resource, as the loop derived it."""

    resource: str  # Site/acme-home, Hostname/www.acme.com, Tenant/acme
    condition: str  # a Condition value
    status: bool | None  # None is Unknown
    reason: str  # CamelCase machine reason: Published, ValidationPending, PastDue
    message: str  # a sentence for people
    last_error: str | None = None
    commit: str | None = None  # specs commit the condition reflects
    tenant: str | None = None
    site: str | None = None


_FAILED_OUTCOMES = (Status.FAILED_TRANSIENT, Status.FAILED_PERMANENT, Status.STUCK)
GATE_REASONS: Mapping[str, str] = {
    "hard_locked": "HardLocked",
    "budget": "OverBudget",
    "build": "BuildFailed",
    "missing_version": "MissingVersion",
    "missing_project": "MissingProject",
    "stuck": "RetriesExhausted",
    "conflict": "Conflict",
    "blast_radius": "BlastRadius",
    "incomplete": "WaitingForReading",
    "missing_worker": "MissingWorker",
    "missing_worker_version": "MissingWorkerVersion",
    "health": "RolledBack",  # the health gate returned traffic to the last good version
}
FAILURE_REASONS: Mapping[ActionKind, str] = {
    ActionKind.PUBLISH: "PublishFailed",
    ActionKind.RETRY_PUBLISH: "PublishFailed",
    ActionKind.ROLLBACK: "RollbackFailed",
    ActionKind.SYNC_BILLING: "BillingSyncFailed",
    ActionKind.SEND_DUNNING: "DunningFailed",
    ActionKind.SOFT_LOCK: "LockFailed",
    ActionKind.HARD_LOCK: "LockFailed",
    ActionKind.UNLOCK: "UnlockFailed",
    ActionKind.RECORD_PUBLISH_FAILURE: "PublishFailed",
    ActionKind.DEPLOY_WORKER_VERSION: "WorkerDeployFailed",
    ActionKind.ROLLBACK_WORKER_VERSION: "WorkerRollbackFailed",
    ActionKind.PURGE_CACHE: "PurgeFailed",
}


def resource_key(target: str) -> str:
    """The resource an action target belongs to: ``Site/a:production`` -> ``Site/a``."""
    if target.startswith("Site/"):
        return target.split(":", 1)[0]
    return target


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which resources a pass may report on (module rule 1).

    ``sites`` and ``tenants`` are names; ``stuck`` maps a resource key (``Site/a``,
    ``Tenant/t``) to the last error of a key the work queue gave up on.
    """

    sites: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    stuck: Mapping[str, str] = field(default_factory=dict)
    # False when no work queue stands behind the pass (``reconciler apply``): ``Stuck`` is then
    # stated only when the planner's own gate says so, never cleared on the queue's behalf.
    queue: bool = True


@dataclass(slots=True)
class Verdicts:
    """What the plan and the report say per resource key."""

    failed: dict[str, tuple[Action, Outcome]] = field(default_factory=dict)
    blocked: dict[str, Blocked] = field(default_factory=dict)
    applied: dict[str, list[Action]] = field(default_factory=dict)
    succeeded: dict[str, Outcome] = field(default_factory=dict)


def verdicts_of(report: Report) -> Verdicts:
    """Index the report by resource key: failed, blocked and applied actions (rule 2)."""
    verdicts = Verdicts()
    by_id = {action.id: action for action in report.plan.actions}
    for outcome in report.outcomes:
        action = by_id.get(outcome.action_id)
        if action is None:
            continue
        keys = {resource_key(action.target)}
        if action.kind in (ActionKind.SEND_DUNNING, ActionKind.SYNC_BILLING) and action.tenant:
            keys.add(f"Tenant/{action.tenant}")
        for key in keys:
            if outcome.status in _FAILED_OUTCOMES or outcome.status is Status.BLOCKED:
                verdicts.failed.setdefault(key, (action, outcome))
            elif outcome.succeeded:
                verdicts.applied.setdefault(key, []).append(action)
                verdicts.succeeded[key] = outcome
    for blocked in report.plan.blocked:
        verdicts.blocked.setdefault(resource_key(blocked.target), blocked)
    # A site is not Synced while a change to one of its hostnames is blocked or failed: its
    # own verdicts (above) come first.
    for blocked in report.plan.blocked:
        if blocked.site is not None and blocked.target.startswith("Hostname/"):
            verdicts.blocked.setdefault(f"Site/{blocked.site}", blocked)
    for key, (action, outcome) in list(verdicts.failed.items()):
        if action.site is not None and key.startswith("Hostname/"):
            verdicts.failed.setdefault(f"Site/{action.site}", (action, outcome))
    return verdicts


SKIPPED_PREFIX = "not read by this pass"
"""How the words of a :attr:`GapReason.SKIPPED` gap begin (module rule 1)."""


@dataclass(frozen=True, slots=True)
class Subject:
    """One resource a condition is about: its key, and the commit, tenant and site it carries."""

    key: str  # Site/acme-home, Hostname/www.acme.com, Tenant/acme
    commit: str | None
    tenant: str | None
    site: str | None

    def set(
        self,
        condition: Condition,
        status: bool | None,
        reason: str,
        message: str,
        error: str | None = None,
    ) -> ConditionUpdate:
        """The ``condition`` of this resource: its status, reason, message and last error."""
        return ConditionUpdate(
            resource=self.key,
            condition=condition.value,
            status=status,
            reason=reason,
            message=message,
            last_error=error,
            commit=self.commit,
            tenant=self.tenant,
            site=self.site,
        )


def synced(at: Subject, verdicts: Verdicts, *, converged: str) -> ConditionUpdate:
    """``Synced`` of ``at`` (rule 2): failed, blocked, applied, or ``converged`` as it was."""
    failed = verdicts.failed.get(at.key)
    if failed is not None:
        action, outcome = failed
        reason = "Blocked" if outcome.status is Status.BLOCKED else failure_reason(action.kind)
        message = f"{action.kind.value} {action.target} {outcome.status.value}"
        return at.set(
            Condition.SYNCED, False, reason, message, outcome.message or outcome.status.value
        )
    blocked = verdicts.blocked.get(at.key)
    if blocked is not None:
        reason = GATE_REASONS.get(blocked.gate, "Blocked")
        return at.set(Condition.SYNCED, False, reason, blocked.reason)
    applied = verdicts.applied.get(at.key)
    if applied:
        message = "; ".join(f"{a.kind.value} {a.target}" for a in applied) + " done"
        return at.set(Condition.SYNCED, True, "Applied", message)
    return at.set(Condition.SYNCED, True, "Converged", converged)


def failure_reason(kind: ActionKind) -> str:
    if kind in FAILURE_REASONS:
        return FAILURE_REASONS[kind]
    return "HostnameFailed"


_GAVE_UP = (
    "the daemon stopped retrying after repeated failures; fix the cause, then push a "
    "change (or send a webhook) to try again"
)


def stuck(at: Subject, verdicts: Verdicts, coverage: Coverage) -> ConditionUpdate | None:
    """``Stuck`` of ``at`` (rule 3); None when only the daemon's queue could tell."""
    error = coverage.stuck.get(at.key)
    if error is not None:
        return at.set(Condition.STUCK, True, "RetriesExhausted", _GAVE_UP, error)
    blocked = verdicts.blocked.get(at.key)
    if blocked is not None and blocked.gate == "stuck":
        limit = "RecreateLimit" if blocked.kind is ActionKind.RECREATE_HOSTNAME else "PublishLimit"
        return at.set(Condition.STUCK, True, limit, blocked.reason, blocked.reason)
    if not coverage.queue:
        return None  # the daemon's queue knows; apply does not
    return at.set(Condition.STUCK, False, "Progressing", "not stuck")
