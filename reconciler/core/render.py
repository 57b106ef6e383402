"""render: a Plan as terminal text, versioned JSON, or a Markdown pull-request comment.

Pure formatting, called by ``commands/plan.py`` and ``commands/apply.py``; it never decides.
How each part of a plan is said (an action's description, a gate, the summary and cost lines)
is ``core/plan_words.py``'s; this module lays the parts out per view.
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
from collections.abc import Iterable, Mapping

from reconciler.core.plan import (
    FORMAT_VERSION,
    SUMMARY_ORDER,
    Action,
    Blocked,
    Cause,
    JsonValue,
    Note,
    Plan,
)
from reconciler.core.plan_words import (
    GATE_WORDS,
    PLATFORM,
    SYMBOL,
    Rate,
    cost_line,
    counted,
    describe,
    describe_blocked,
    group,
    mask_phone,
    meters_of,
    runs_of,
    stamp,
    summary_line,
    tag_line,
    unreadable,
)

__all__ = [
    "GITHUB_COMMENT_LIMIT",
    "Rate",
    "cost_line",
    "mask_phone",
    "plan_to_json",
    "render_json",
    "render_markdown",
    "render_text",
    "summary_line",
    "where_json",
]

GITHUB_COMMENT_LIMIT = 65_535


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
        f"{header}; world observed {stamp(plan.planned_at)} (digest {plan.observed_digest[:19]})"
    )
    for source, reason in plan.incomplete.items():
        lines.append(
            paint(
                "x",
                f"Incomplete: {unreadable(source, reason)}; "
                "nothing that depends on it is created or deleted.",
            )
        )
    for tenant, sites in group(plan).items():
        lines.append("")
        lines.append("Platform Workers" if tenant == PLATFORM else f"Tenant {tenant}")
        for site, (actions, blocked) in sites.items():
            indent = "  "
            if site:
                lines.append(f"  Site {site}")
                indent = "    "
            for action in actions:
                symbol = SYMBOL[action.kind]
                tag = tag_line(plan, action)
                line = mask_phone(f"{symbol} {describe(action)}")
                lines.append(indent + paint(symbol, line) + tag)
                lines.append(indent + "    " + mask_phone(action.reason))
                if action.source:
                    lines.append(indent + f"    asked by {action.source}")
            for run in runs_of(blocked):
                for item in run:
                    gate = GATE_WORDS.get(item.gate, item.gate)
                    head = f"x blocked ({gate}): {describe_blocked(item)}"
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


# --- JSON --------------------------------------------------------------------------------


def where_json(item: Action | Blocked) -> dict[str, JsonValue]:
    """What an action or a blocked one is and where: the keys plan and report JSON share."""
    return {"kind": item.kind.value, **_place_json(item)}


def _place_json(item: Action | Blocked | Note) -> dict[str, JsonValue]:
    """Where anything in a plan is: its target, and the tenant and site it belongs to."""
    return {"target": item.target, "tenant": item.tenant, "site": item.site}


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
    return {**_place_json(note), "category": note.category, "reason": note.reason}


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
    head.append(f"Specs at {revision}; world observed {stamp(plan.planned_at)}.")
    for source, reason in plan.incomplete.items():
        head.append("")
        head.append(
            f"> **Incomplete:** {_md(unreadable(source, reason))}; "
            "nothing that depends on it is created or deleted."
        )
    if plan.preexisting:
        head.append(
            f"{len(plan.preexisting)} action(s) were already pending before this change "
            "(drift against the base commit); they are marked below."
        )
    head.append("")

    sections = [
        _section_markdown(plan, tenant, site, actions, blocked)
        for tenant, sites in group(plan).items()
        for site, (actions, blocked) in sites.items()
    ]
    notes = _notes_markdown(plan.notes)
    return _fit("\n".join(head), sections, notes, limit)


def _section_markdown(
    plan: Plan, tenant: str, site: str, actions: list[Action], blocked: list[Blocked]
) -> str:
    """One collapsible section: a tenant's (or one site's) changes and blocked items."""
    title = f"{tenant} / {site}" if site else f"{tenant} (tenant)"
    if tenant == PLATFORM:
        title = "Platform Workers"
    marks = ", ".join(
        part
        for part in (
            counted(len(actions), "change") if actions else "",
            f"{len(blocked)} blocked" if blocked else "",
        )
        if part
    )
    body = [f"<details><summary><b>{_md(title)}</b>: {marks}</summary>", ""]
    body.append("| | action | why | spec |")
    body.append("|---|---|---|---|")
    for action in actions:
        why = _md(action.reason)
        tags = tag_line(plan, action).strip()
        if tags:
            why += f" _{_md(tags)}_"
        src = f"`{action.source}`" if action.source else ""
        body.append(f"| {SYMBOL[action.kind]} | {_md(describe(action))} | {why} | {src} |")
    for run in runs_of(blocked):
        for position, item in enumerate(run):
            src = f"`{item.source}`" if item.source else ""
            gate = GATE_WORDS.get(item.gate, item.gate)
            why = f"**{gate}**: {_md(item.reason)}" if position == 0 else "same as above"
            body.append(f"| ⛔ | {_md(describe_blocked(item))} | {why} | {src} |")
    body.extend(["", "</details>", ""])
    return "\n".join(body)


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
