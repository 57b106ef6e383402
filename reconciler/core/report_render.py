"""report_render: a :class:`Report` (what ``apply`` did) as terminal text, JSON and progress lines.

Pure formatting, the counterpart of ``core/render.py`` for plans. Called by
``commands/apply.py``; reads only core types and never decides anything (exit codes are the
command's business). Saved plans are read back by ``core/plan_json.py``.

Rules:

1. Text reads top-down: one summary line, then each action that did not simply succeed with
   its message, then the successes, then what policy blocked before execution.
2. Phone numbers are masked in text (it ends up in CI logs); JSON keeps messages as they are.
3. JSON carries ``format_version`` "1"; fields are only ever added within a version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from reconciler.core.outcome import Outcome, Report, Status
from reconciler.core.payloads import (
    DeleteHostnamePayload,
    DunningPayload,
    HostnamePayload,
    PublishPayload,
    RecordHostnamePayload,
    RollbackPayload,
)
from reconciler.core.plan import FORMAT_VERSION, Action, JsonValue
from reconciler.core.plan_words import mask_phone
from reconciler.core.render import where_json

_MARK: Mapping[Status, str] = {
    Status.APPLIED: "✓",
    Status.UNCHANGED: "=",
    Status.FAILED_TRANSIENT: "x",
    Status.FAILED_PERMANENT: "x",
    Status.STUCK: "x",
    Status.BLOCKED: "-",
}

_COLOUR: Mapping[Status, str] = {
    Status.APPLIED: "32",
    Status.UNCHANGED: "2",
    Status.FAILED_TRANSIENT: "33",
    Status.FAILED_PERMANENT: "31",
    Status.STUCK: "31;1",
    Status.BLOCKED: "33",
}

# The order statuses are counted in the summary line.
_SUMMARY_ORDER = (
    Status.APPLIED,
    Status.UNCHANGED,
    Status.FAILED_TRANSIENT,
    Status.FAILED_PERMANENT,
    Status.STUCK,
    Status.BLOCKED,
)


def action_label(action: Action) -> str:
    """A short human name: ``publish acme-home production v13``, ``create hostname www.a.com``.

    Args:
        action: any planned action.

    Returns:
        The verb and the object it acts on, without the reason.
    """
    payload = action.payload
    verb = action.kind.value.replace("_", " ")
    if isinstance(payload, PublishPayload | RollbackPayload):
        return f"{verb} {payload.site} {payload.environment} v{payload.version}"
    if isinstance(payload, HostnamePayload | DeleteHostnamePayload | RecordHostnamePayload):
        return f"{verb} {payload.hostname}"
    if isinstance(payload, DunningPayload):
        return f"{verb} {payload.step_code} for {payload.invoice_id}"
    name = action.tenant or action.target.partition("/")[2] or action.target
    return f"{verb} {name}"


def progress_line(
    *, index: int, total: int, action: Action, outcome: Outcome | None, seconds: float
) -> str:
    """One progress line for stderr: ``[3/12] publish acme-home production v13 ... applied (4.2s)``.

    Args:
        index: 1-based position of this line among the plan's actions (finished ones).
        total: number of actions in the plan.
        action: the action.
        outcome: its outcome, or None when the action is starting.
        seconds: how long it took (ignored when starting).

    Returns:
        The line, without a newline.
    """
    head = f"[{index}/{total}] {action_label(action)} ..."
    if outcome is None:
        return head
    tail = f" {outcome.status.value}"
    if outcome.status is Status.APPLIED or outcome.status is Status.UNCHANGED:
        tail += f" ({seconds:.1f}s)"
    elif outcome.message:
        tail += f": {mask_phone(outcome.message)}"
    return head + tail


def summary_line(report: Report) -> str:
    """``Apply: 3 applied, 1 unchanged, 1 failed_transient; 2 blocked by policy.``."""
    counts = report.counts()
    parts = [f"{counts[s.value]} {s.value}" for s in _SUMMARY_ORDER if counts[s.value]]
    blocked = len(report.plan.blocked)
    if not parts and not blocked:
        return "Apply: nothing to do. The world matches the specs."
    text = ", ".join(parts) if parts else "no actions"
    if blocked:
        text += f"; {blocked} blocked by policy (not attempted)"
    return f"Apply: {text}."


def render_report_text(report: Report, *, color: bool = False) -> str:
    """The terminal view of a report: summary, problems first, then successes, then policy.

    Args:
        report: the plan and its outcomes.
        color: paint status words with ANSI colours.

    Returns:
        Text ending in a newline.
    """

    def paint(status: Status, text: str) -> str:
        if not color:
            return text
        return f"\x1b[{_COLOUR[status]}m{text}\x1b[0m"

    lines = [summary_line(report)]
    pairs = list(zip(report.plan.actions, report.outcomes, strict=True))
    problems = [(a, o) for a, o in pairs if not o.succeeded]
    successes = [(a, o) for a, o in pairs if o.succeeded]
    for heading, group in (("Needs attention:", problems), ("Done:", successes)):
        if not group:
            continue
        lines.append("")
        lines.append(heading)
        for action, outcome in group:
            mark = _MARK[outcome.status]
            word = paint(outcome.status, f"{mark} {outcome.status.value}")
            lines.append(f"  {word} {action_label(action)}  ({action.target})")
            if outcome.message:
                lines.append(f"      {mask_phone(outcome.message)}")
            if outcome.retry_after is not None:
                lines.append(f"      retry after {outcome.retry_after:g}s")
    if report.plan.blocked:
        lines.append("")
        lines.append("Blocked by policy (not attempted):")
        for item in report.plan.blocked:
            lines.append(f"  - {item.kind.value} {item.target}")
            lines.append(f"      {item.gate}: {mask_phone(item.reason)}")
    return "\n".join(lines) + "\n"


def _outcome_json(action: Action, outcome: Outcome) -> dict[str, JsonValue]:
    return {
        "action_id": outcome.action_id,
        **where_json(action),
        "label": action_label(action),
        "status": outcome.status.value,
        "message": outcome.message,
        "retry_after": outcome.retry_after,
        "data": dict(outcome.data),
    }


def report_to_json(report: Report) -> dict[str, JsonValue]:
    """The versioned JSON document of a report (``format_version`` "1").

    Args:
        report: the plan and its outcomes.

    Returns:
        A JSON-ready dict: revision, digest, ``ok``, counts, outcomes in plan order, and the
        actions policy blocked before execution.
    """
    plan = report.plan
    return {
        "format_version": FORMAT_VERSION,
        "revision": plan.revision,
        "observed_digest": plan.observed_digest,
        "planned_at": plan.planned_at,
        "ok": report.ok,
        "counts": dict(report.counts()),
        "blocked_by_policy": len(plan.blocked),
        "outcomes": [
            _outcome_json(action, outcome)
            for action, outcome in zip(plan.actions, report.outcomes, strict=True)
        ],
        "blocked": [
            {**where_json(item), "gate": item.gate, "reason": item.reason} for item in plan.blocked
        ],
    }


def render_report_json(report: Report) -> str:
    """:func:`report_to_json` as stable, indented text with a final newline."""
    return json.dumps(report_to_json(report), indent=2, sort_keys=True) + "\n"
