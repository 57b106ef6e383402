"""plan_words: how each part of a plan is said, shared by the text, JSON and Markdown views.

Pure formatting for ``core/render.py`` (whose rules hold here): each action's one-line
description and symbol, a blocked item's name and gate, the summary and cost lines, the
grouping per tenant and site, and phone-number masking. It never decides.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.core.observed import Source
from reconciler.core.payloads import (
    AccessBefore,
    AccessPayload,
    CreateNamespacePayload,
    DeleteHostnamePayload,
    DeployWorkerPayload,
    DunningPayload,
    FallbackOriginPayload,
    HostnamePayload,
    Payload,
    PublishPayload,
    PurgePayload,
    RecordHostnameBefore,
    RecordHostnamePayload,
    RecordPublishFailurePayload,
    RollbackPayload,
    WorkerRoutePayload,
    WorkerVersionPayload,
    WriteRoutesPayload,
    read_before,
)
from reconciler.core.plan import SUMMARY_ORDER, UNREADABLE, Action, ActionKind, Blocked, Cause, Plan

__all__ = [
    "GATE_WORDS",
    "PLATFORM",
    "SYMBOL",
    "Rate",
    "cost_line",
    "counted",
    "describe",
    "describe_blocked",
    "group",
    "mask_phone",
    "meters_of",
    "runs_of",
    "stamp",
    "summary_line",
    "tag_line",
    "unreadable",
]


SYMBOL: Mapping[ActionKind, str] = {
    ActionKind.PUBLISH: "+",
    ActionKind.RETRY_PUBLISH: "~",
    ActionKind.ROLLBACK: "<",
    ActionKind.CREATE_HOSTNAME: "+",
    ActionKind.UPDATE_HOSTNAME: "~",
    ActionKind.RETRY_VALIDATION: "~",
    ActionKind.RECREATE_HOSTNAME: "±",
    ActionKind.DELETE_HOSTNAME: "-",
    ActionKind.SOFT_LOCK: "!",
    ActionKind.HARD_LOCK: "!",
    ActionKind.UNLOCK: "✓",
    ActionKind.SEND_DUNNING: "@",
    ActionKind.SYNC_BILLING: "=",
    ActionKind.RECORD_HOSTNAME: "=",
    ActionKind.RECORD_PUBLISH_FAILURE: "=",
    ActionKind.PURGE_CACHE: "~",
    ActionKind.WRITE_ROUTES: "~",
    ActionKind.CREATE_ROUTES_NAMESPACE: "+",
    ActionKind.DEPLOY_WORKER: "~",
    ActionKind.SET_WORKER_ROUTE: "~",
    ActionKind.SET_FALLBACK_ORIGIN: "~",
    ActionKind.DEPLOY_WORKER_VERSION: "+",
    ActionKind.ROLLBACK_WORKER_VERSION: "<",
}


@dataclass(frozen=True, slots=True)
class Rate:
    """A provider's request budget, for turning predicted calls into time."""

    requests: int
    period: float
    spends: str | None = None  # the provider whose budget these calls spend, if not their own

    def seconds(self, calls: int) -> float:
        """Time ``calls`` take at the sustained rate of this budget."""
        return calls * self.period / self.requests


# A phone number stands alone: digits inside a word (a commit sha, an id) are not one, nor is
# a short sha our own text names as such ("commit 947097555119": hex that is all digits).
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?<!commit )\+?\d{7,15}(?![0-9A-Za-z])")


def mask_phone(text: str) -> str:
    """``+5511912345678`` -> ``+55119••••5678``; other text unchanged."""

    def hide(match: re.Match[str]) -> str:
        digits = match.group(0)
        if len(digits) < 9:
            return digits
        return digits[:-8] + "••••" + digits[-4:]

    return _PHONE.sub(hide, text)


def summary_line(plan: Plan) -> str:
    """``Plan: 2 to publish, 1 to roll back, ...; 1 blocked.``, or that nothing is to be done."""
    counts = plan.summary_counts()
    parts = [f"{counts[word]} to {word}" for word in SUMMARY_ORDER if counts[word]]
    if not parts and not plan.blocked:
        if plan.notes:
            left = counted(len(plan.notes), "item")
            return f"No changes. {left} left alone on purpose (listed below)."
        return "No changes. The world matches the specs."
    text = ", ".join(parts) if parts else "nothing can proceed"
    if plan.blocked:
        text += f"; {len(plan.blocked)} blocked"
    return f"Plan: {text}."


def counted(n: int, noun: str) -> str:
    """``1 change``, ``3 changes``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def unreadable(source: str, reason: str) -> str:
    """``custom hostnames could not be listed (HTTP 503)``."""
    try:
        phrase = UNREADABLE[Source(source)]
    except (KeyError, ValueError):
        phrase = f"{source} could not be read"
    return f"{phrase} ({reason})"


GATE_WORDS: Mapping[str, str] = {
    "hard_locked": "tenant hard-locked",
    "budget": "performance budget",
    "build": "build failure",
    "missing_version": "missing content",
    "missing_project": "missing Pages project",
    "stuck": "stuck",
    "conflict": "ownership conflict",
    "blast_radius": "blast-radius cap",
    "incomplete": "incomplete reading",
    "refused": "refused",
    "missing_worker": "missing Worker",
    "missing_worker_version": "missing Worker version",
    "health": "health check failed",
}


def describe_blocked(item: Blocked) -> str:
    """``publish production``, ``delete hostname old.acme.com``: what was held back."""
    name = item.target.split("/", 1)[-1]
    if item.target.startswith("Site/"):
        name = name.rsplit(":", 1)[-1]
    return f"{item.kind.value.replace('_', ' ')} {name}"


def runs_of(blocked: list[Blocked]) -> list[list[Blocked]]:
    """Consecutive blocked items sharing gate, reason and source, so a reason is shown once."""
    runs: list[list[Blocked]] = []
    for item in blocked:
        last = runs[-1][-1] if runs else None
        if last is not None and (last.gate, last.reason, last.source) == (
            item.gate,
            item.reason,
            item.source,
        ):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def meters_of(rates: Mapping[str, Rate]) -> dict[str, str]:
    """Provider -> the provider whose budget it spends, for ``Plan.calls``."""
    return {provider: rate.spends for provider, rate in rates.items() if rate.spends}


def cost_line(plan: Plan, rates: Mapping[str, Rate]) -> str:
    """``API calls: cloudflare 72 (about 18s at 1,200 per 300s), d1 40.``."""
    calls = plan.calls(meters_of(rates))
    if not calls:
        return "API calls: none."
    parts = []
    for provider, count in calls.items():
        rate = rates.get(provider)
        if rate is None:
            parts.append(f"{provider} {count}")
        else:
            seconds = rate.seconds(count)
            took = "under 1s" if seconds < 1 else f"about {_duration(seconds)}"
            parts.append(f"{provider} {count} ({took} at {rate.requests:,} per {rate.period:g}s)")
    return "API calls: " + ", ".join(parts) + "."


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{round(seconds / 60, 1):g} min"
    return f"{round(seconds / 3600, 1):g} h"


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _describe_routing(payload: Payload) -> str | None:
    """The routing table and platform kinds (``core/plan_routes.py``, ``plan_platform.py``)."""
    if isinstance(payload, WriteRoutesPayload):
        puts, deletes = len(payload.put), len(payload.delete)
        parts = [f"route {puts} hostname{'s' if puts != 1 else ''}"] if puts else []
        if deletes:
            parts.append(f"remove {deletes} routing entr{'ies' if deletes != 1 else 'y'}")
        return f"{' and '.join(parts)} in the routing table"
    if isinstance(payload, CreateNamespacePayload):
        return f"create the routing table's KV namespace {payload.namespace}"
    if isinstance(payload, DeployWorkerPayload):
        return f"deploy the dispatch Worker {payload.script}"
    if isinstance(payload, WorkerRoutePayload):
        return f"route {payload.pattern} to the Worker {payload.script}"
    if isinstance(payload, FallbackOriginPayload):
        return f"set the fallback origin to {payload.origin}"
    return None


_HOSTNAME_VERB: Mapping[ActionKind, str] = {
    ActionKind.CREATE_HOSTNAME: "create hostname",
    ActionKind.UPDATE_HOSTNAME: "update hostname",
    ActionKind.RETRY_VALIDATION: "retry validation of",
    ActionKind.RECREATE_HOSTNAME: "recreate hostname",
    ActionKind.DELETE_HOSTNAME: "delete hostname",
}


def describe(action: Action) -> str:
    p, kind = action.payload, action.kind
    routing = _describe_routing(p)
    if routing is not None:
        return routing
    if isinstance(p, HostnamePayload | DeleteHostnamePayload):
        return f"{_HOSTNAME_VERB[kind]} {p.hostname}"
    if isinstance(p, PublishPayload):
        verb = "publish" if kind is ActionKind.PUBLISH else "retry publish of"
        return f"{verb} {p.environment} version {p.version}"
    if isinstance(p, RollbackPayload):
        deployment = p.deployment_id[:8]
        return f"roll {p.environment} back to version {p.version} (deployment {deployment})"
    if isinstance(p, AccessPayload):
        verb = kind.value.replace("_", " ")
        was = read_before(AccessBefore, action.before).access
        return f"{verb} tenant ({was} -> {p.access})"
    if isinstance(p, DunningPayload):
        return f"send dunning step {p.step_code} of invoice {p.invoice_id} to {p.phone} on WhatsApp"
    if isinstance(p, RecordHostnamePayload):
        was = read_before(RecordHostnameBefore, action.before).status
        return f"record hostname {p.hostname} as {p.status} (was {was})"
    if isinstance(p, WorkerVersionPayload):
        return _describe_worker(kind, p)
    if isinstance(p, RecordPublishFailurePayload):
        return f"record the publish of {p.environment} version {p.version} as failed"
    if isinstance(p, PurgePayload):
        return f"purge the cache of {p.site} ({', '.join(p.hosts)})"
    return "sync billing mirror from Stripe"


def _describe_worker(kind: ActionKind, p: WorkerVersionPayload) -> str:
    """``deploy Worker site-builder-api-production: version 3 at 100 %``."""
    parts = [f"version {item.number} at {_percent(item.percentage)} %" for item in p.versions]
    verb = "deploy" if kind is ActionKind.DEPLOY_WORKER_VERSION else "roll back"
    return f"{verb} Worker {p.script}: {' and '.join(parts)}"


def _percent(value: float) -> int | float:
    """A percentage as the plan wrote it: whole numbers without a decimal point."""
    return int(value) if value.is_integer() else value


def group(
    plan: Plan,
) -> dict[str, dict[str, tuple[list[Action], list[Blocked]]]]:
    """tenant -> site ("" for tenant-level) -> (actions, blocked), sorted."""
    groups: dict[str, dict[str, tuple[list[Action], list[Blocked]]]] = defaultdict(dict)
    for action in plan.actions:
        bucket = groups[_owner(action.tenant, action.target)].setdefault(
            action.site or "", ([], [])
        )
        bucket[0].append(action)
    for blocked in plan.blocked:
        bucket = groups[_owner(blocked.tenant, blocked.target)].setdefault(
            blocked.site or "", ([], [])
        )
        bucket[1].append(blocked)
    return {t: dict(sorted(sites.items())) for t, sites in sorted(groups.items())}


PLATFORM = "(the platform's Workers)"


def _owner(tenant: str | None, target: str) -> str:
    """The group an item is shown under: its tenant, or the platform for Workers."""
    if tenant is None and target.startswith("Worker/"):
        return PLATFORM
    return tenant or "(no tenant)"


def tag_line(plan: Plan, action: Action) -> str:
    tags = []
    if action.cause is Cause.DRIFT:
        tags.append("drift")
    if action.id in plan.preexisting:
        tags.append("already pending before this change")
    note = plan.annotations.get(action.id)
    if note:
        tags.append(note)
    return f"  [{'; '.join(tags)}]" if tags else ""
