"""render: a Plan as terminal text, versioned JSON, or a Markdown pull-request comment.

Pure formatting, called by ``commands/plan.py`` and ``commands/apply.py``; it never decides.
The same ``Plan`` renders the same bytes every time (no clock reads: times come from the plan).

Rules:

1. Read top-down: a summary line first, then the cost, then per tenant and site, each change
   with its reason and the spec line that asked for it.
2. Secrets never appear (a plan holds none); phone numbers are masked in text and Markdown,
   which end up in CI logs and PR comments. JSON keeps them: it is the executor's input.
3. JSON carries ``format_version``; fields are only ever added within a version.
4. A Markdown comment stays within GitHub's 65,535-character limit; when it would not, per-site
   details are dropped from the end and a note under the summary says how many are shown and
   where the full plan is.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.core.observed import Source
from reconciler.core.payloads import (
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
    RecordHostnamePayload,
    RecordPublishFailurePayload,
    RollbackPayload,
    WorkerRoutePayload,
    WriteRoutesPayload,
)
from reconciler.core.plan import (
    FORMAT_VERSION,
    SUMMARY_ORDER,
    UNREADABLE,
    Action,
    ActionKind,
    Blocked,
    Cause,
    JsonValue,
    Note,
    Plan,
)

GITHUB_COMMENT_LIMIT = 65_535

_SYMBOL: Mapping[ActionKind, str] = {
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

_COLOUR: Mapping[str, str] = {
    "+": "32",
    "-": "31",
    "~": "33",
    "±": "33",
    "<": "36",
    "!": "31",
    "✓": "32",
    "@": "35",
    "=": "2",
    "x": "31;1",
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


# A phone number stands alone: digits inside a word (a commit sha, an id) are not one.
_PHONE = re.compile(r"(?<![0-9A-Za-z])\+?\d{7,15}(?![0-9A-Za-z])")


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
            left = _count(len(plan.notes), "item")
            return f"No changes. {left} left alone on purpose (listed below)."
        return "No changes. The world matches the specs."
    text = ", ".join(parts) if parts else "nothing can proceed"
    if plan.blocked:
        text += f"; {len(plan.blocked)} blocked"
    return f"Plan: {text}."


def _count(n: int, noun: str) -> str:
    """``1 change``, ``3 changes``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _unreadable(source: str, reason: str) -> str:
    """``custom hostnames could not be listed (HTTP 503)``."""
    try:
        phrase = UNREADABLE[Source(source)]
    except (KeyError, ValueError):
        phrase = f"{source} could not be read"
    return f"{phrase} ({reason})"


_GATE: Mapping[str, str] = {
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


def _describe_blocked(item: Blocked) -> str:
    """``publish production``, ``delete hostname old.acme.com``: what was held back."""
    name = item.target.split("/", 1)[-1]
    if item.target.startswith("Site/"):
        name = name.rsplit(":", 1)[-1]
    return f"{item.kind.value.replace('_', ' ')} {name}"


def _runs(blocked: list[Blocked]) -> list[list[Blocked]]:
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


def _stamp(epoch: float) -> str:
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


def _describe(action: Action) -> str:
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
        return f"{verb} tenant ({action.before.get('access')} -> {p.access})"
    if isinstance(p, DunningPayload):
        return f"send dunning step {p.step_code} of invoice {p.invoice_id} to {p.phone} on WhatsApp"
    if isinstance(p, RecordHostnamePayload):
        return f"record hostname {p.hostname} as {p.status} (was {action.before.get('status')})"
    if kind in (ActionKind.DEPLOY_WORKER_VERSION, ActionKind.ROLLBACK_WORKER_VERSION):
        return _describe_worker(action)
    if isinstance(p, RecordPublishFailurePayload):
        return f"record the publish of {p.environment} version {p.version} as failed"
    if isinstance(p, PurgePayload):
        return f"purge the cache of {p.site} ({', '.join(p.hosts)})"
    return "sync billing mirror from Stripe"


def _describe_worker(action: Action) -> str:
    """``deploy Worker site-builder-api-production: version 3 at 100 %``."""
    versions = action.after["versions"]
    parts = [
        f"version {item['number']} at {item['percentage']} %"
        for item in (versions if isinstance(versions, list) else [])
        if isinstance(item, dict)
    ]
    verb = "deploy" if action.kind is ActionKind.DEPLOY_WORKER_VERSION else "roll back"
    return f"{verb} Worker {action.after['script']}: {' and '.join(parts)}"


def _group(
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


_PLATFORM = "(the platform's Workers)"


def _owner(tenant: str | None, target: str) -> str:
    """The group an item is shown under: its tenant, or the platform for Workers."""
    if tenant is None and target.startswith("Worker/"):
        return _PLATFORM
    return tenant or "(no tenant)"


# --- text --------------------------------------------------------------------------------


def render_text(plan: Plan, *, rates: Mapping[str, Rate], color: bool = False) -> str:
    """The terminal view: summary, cost, then per tenant and site; colour when asked."""

    def paint(symbol: str, text: str) -> str:
        if not color:
            return text
        return f"\x1b[{_COLOUR.get(symbol, '0')}m{text}\x1b[0m"

    lines = [summary_line(plan), cost_line(plan, rates)]
    header = f"Specs at {plan.revision[:12]}" if plan.revision else "Specs from a directory"
    lines.append(
        f"{header}; world observed {_stamp(plan.planned_at)} (digest {plan.observed_digest[:19]})"
    )
    for source, reason in plan.incomplete.items():
        lines.append(
            paint(
                "x",
                f"Incomplete: {_unreadable(source, reason)}; "
                "nothing that depends on it is created or deleted.",
            )
        )
    for tenant, sites in _group(plan).items():
        lines.append("")
        lines.append("Platform Workers" if tenant == _PLATFORM else f"Tenant {tenant}")
        for site, (actions, blocked) in sites.items():
            indent = "  "
            if site:
                lines.append(f"  Site {site}")
                indent = "    "
            for action in actions:
                symbol = _SYMBOL[action.kind]
                tag = _tags(plan, action)
                line = mask_phone(f"{symbol} {_describe(action)}")
                lines.append(indent + paint(symbol, line) + tag)
                lines.append(indent + "    " + mask_phone(action.reason))
                if action.source:
                    lines.append(indent + f"    asked by {action.source}")
            for run in _runs(blocked):
                for item in run:
                    gate = _GATE.get(item.gate, item.gate)
                    head = f"x blocked ({gate}): {_describe_blocked(item)}"
                    lines.append(indent + paint("x", head))
                every = f"all {len(run)}: " if len(run) > 1 else ""
                lines.append(indent + f"    {every}{mask_phone(run[0].reason)}")
                if run[0].source:
                    lines.append(indent + f"    asked by {run[0].source}")
    if plan.notes:
        lines.append("")
        lines.append("Not changed on purpose:")
        for note in plan.notes:
            lines.append(f"  {note.category}: {note.target}: {mask_phone(note.reason)}")
    return "\n".join(lines) + "\n"


def _tags(plan: Plan, action: Action) -> str:
    tags = []
    if action.cause is Cause.DRIFT:
        tags.append("drift")
    if action.id in plan.preexisting:
        tags.append("already pending before this change")
    note = plan.annotations.get(action.id)
    if note:
        tags.append(note)
    return f"  [{'; '.join(tags)}]" if tags else ""


# --- JSON --------------------------------------------------------------------------------


def where_json(item: Action | Blocked) -> dict[str, JsonValue]:
    """What an action or a blocked one is and where: the keys plan and report JSON share."""
    return {
        "kind": item.kind.value,
        "target": item.target,
        "tenant": item.tenant,
        "site": item.site,
    }


def _action_json(plan: Plan, action: Action) -> dict[str, JsonValue]:
    return {
        "id": action.id,
        **where_json(action),
        "cause": action.cause.value,
        "lane": action.lane.value,
        "before": dict(action.before),
        "after": dict(action.after),
        "reason": action.reason,
        "source": action.source,
        "depends_on": list(action.depends_on),
        "predicted_calls": dict(action.calls),
        "preexisting": action.id in plan.preexisting,
        "annotation": plan.annotations.get(action.id),
    }


def _blocked_json(item: Blocked) -> dict[str, JsonValue]:
    return {**where_json(item), "gate": item.gate, "reason": item.reason, "source": item.source}


def _note_json(note: Note) -> dict[str, JsonValue]:
    return {
        "category": note.category,
        "target": note.target,
        "tenant": note.tenant,
        "site": note.site,
        "reason": note.reason,
    }


def plan_to_json(plan: Plan, *, rates: Mapping[str, Rate]) -> dict[str, JsonValue]:
    """The versioned JSON document (``format_version``), drift kept apart from changes."""
    calls = plan.calls(meters_of(rates))
    return {
        "format_version": FORMAT_VERSION,
        "revision": plan.revision,
        "planned_at": plan.planned_at,
        "observed_digest": plan.observed_digest,
        "summary": {word: count for word, count in plan.summary_counts().items() if count},
        "blocked_count": len(plan.blocked),
        "cost": {
            provider: {
                "calls": count,
                "seconds": round(rates[provider].seconds(count), 1) if provider in rates else None,
            }
            for provider, count in calls.items()
        },
        "incomplete": dict(plan.incomplete),
        "changes": [_action_json(plan, a) for a in plan.actions if a.cause is Cause.CHANGE],
        "drift": [_action_json(plan, a) for a in plan.actions if a.cause is Cause.DRIFT],
        "order": [a.id for a in plan.actions],
        "blocked": [_blocked_json(b) for b in plan.blocked],
        "notes": [_note_json(n) for n in plan.notes],
    }


def render_json(plan: Plan, *, rates: Mapping[str, Rate]) -> str:
    """``plan_to_json`` as stable, indented text with a final newline."""
    return json.dumps(plan_to_json(plan, rates=rates), indent=2, sort_keys=True) + "\n"


# --- Markdown ----------------------------------------------------------------------------


def _md(text: str) -> str:
    """Escape what would break a table cell or inline Markdown."""
    return mask_phone(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(
    plan: Plan, *, rates: Mapping[str, Rate], limit: int = GITHUB_COMMENT_LIMIT
) -> str:
    """A pull-request comment: summary table first, collapsible details per site."""
    counts = plan.summary_counts()
    head = ["### Reconciler plan", "", f"**{summary_line(plan)}**", ""]
    columns = [(word, counts[word]) for word in SUMMARY_ORDER if counts[word]]
    if plan.blocked:
        columns.append(("blocked", len(plan.blocked)))
    if columns:
        head.append("| " + " | ".join(word for word, _ in columns) + " |")
        head.append("|" + "---:|" * len(columns))
        head.append("| " + " | ".join(str(count) for _, count in columns) + " |")
        head.append("")
    head.append(cost_line(plan, rates))
    revision = f"`{plan.revision[:12]}`" if plan.revision else "a directory"
    head.append(f"Specs at {revision}; world observed {_stamp(plan.planned_at)}.")
    for source, reason in plan.incomplete.items():
        head.append("")
        head.append(
            f"> **Incomplete:** {_md(_unreadable(source, reason))}; "
            "nothing that depends on it is created or deleted."
        )
    if plan.preexisting:
        head.append(
            f"{len(plan.preexisting)} action(s) were already pending before this change "
            "(drift against the base commit); they are marked below."
        )
    head.append("")

    sections: list[str] = []
    for tenant, sites in _group(plan).items():
        for site, (actions, blocked) in sites.items():
            title = f"{tenant} / {site}" if site else f"{tenant} (tenant)"
            if tenant == _PLATFORM:
                title = "Platform Workers"
            marks = ", ".join(
                part
                for part in (
                    _count(len(actions), "change") if actions else "",
                    f"{len(blocked)} blocked" if blocked else "",
                )
                if part
            )
            body = [f"<details><summary><b>{_md(title)}</b>: {marks}</summary>", ""]
            body.append("| | action | why | spec |")
            body.append("|---|---|---|---|")
            for action in actions:
                why = _md(action.reason)
                tags = _tags(plan, action).strip()
                if tags:
                    why += f" _{_md(tags)}_"
                src = f"`{action.source}`" if action.source else ""
                body.append(
                    f"| {_SYMBOL[action.kind]} | {_md(_describe(action))} | {why} | {src} |"
                )
            for run in _runs(blocked):
                for position, item in enumerate(run):
                    src = f"`{item.source}`" if item.source else ""
                    gate = _GATE.get(item.gate, item.gate)
                    why = f"**{gate}**: {_md(item.reason)}" if position == 0 else "same as above"
                    body.append(f"| ⛔ | {_md(_describe_blocked(item))} | {why} | {src} |")
            body.extend(["", "</details>", ""])
            sections.append("\n".join(body))
    notes = _notes_markdown(plan.notes)
    return _fit("\n".join(head), sections, notes, limit)


def _notes_markdown(notes: Iterable[Note]) -> str:
    rows = [f"- **{n.category}** {_md(n.target)}: {_md(n.reason)}" for n in notes]
    if not rows:
        return ""
    return (
        "<details><summary>Not changed on purpose</summary>\n\n"
        + "\n".join(rows)
        + "\n\n</details>\n"
    )


def _fit(head: str, sections: list[str], notes: str, limit: int) -> str:
    full = "\n".join([head, *sections, notes])
    if len(full) <= limit:
        return full
    kept: list[str] = []
    size = len(head) + 400  # room for the truncation note
    for section in sections:
        if size + len(section) + 1 > limit:
            break
        kept.append(section)
        size += len(section) + 1
    note = (
        f"> **Truncated:** only the first {len(kept)} of {len(sections)} sections are shown, "
        f"to stay within GitHub's {GITHUB_COMMENT_LIMIT:,}-character comment limit (the counts "
        "above cover the whole plan). Run `reconciler plan --format json` (or see the CI "
        "artifact) for the full plan.\n"
    )
    return "\n".join([head, note, *kept, ""])[:limit]
