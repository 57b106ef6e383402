"""Builders and fakes for executor and journal tests: literal plans, fake handlers, a migrated D1.

Fake handlers implement the :class:`~reconciler.runtime.handler.Handler` protocol; nothing here
touches the real action handlers or any provider beyond a local SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from reconciler.core.observed import ObservedDigest
from reconciler.core.outcome import Outcome, Status
from reconciler.core.payloads import ACCESS_OF, parse_payload
from reconciler.core.plan import (
    Action,
    ActionKind,
    Blocked,
    Cause,
    JsonValue,
    Lane,
    Plan,
    action_identity,
)
from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.migrate import migrate

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "migrations"
NOW = 1_800_000_000.0


class Clock:
    """A settable clock for the journal and handlers (no real time)."""

    def __init__(self, start: float = NOW) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


def action(
    kind: ActionKind,
    name: str,
    *,
    depends_on: Iterable[Action] = (),
    after: dict[str, JsonValue] | None = None,
    lane: Lane | None = None,
) -> Action:
    """An action on ``name`` whose id is computed the planner's way."""
    target = {
        ActionKind.PUBLISH: f"Site/{name}:production",
        ActionKind.ROLLBACK: f"Site/{name}:production",
        ActionKind.CREATE_HOSTNAME: f"Hostname/{name}",
        ActionKind.DELETE_HOSTNAME: f"Hostname/{name}",
        ActionKind.SEND_DUNNING: f"Invoice/{name}:D3",
    }.get(kind, f"Tenant/{name}")
    body: dict[str, JsonValue] = after if after is not None else {"name": name}
    if kind in (ActionKind.PUBLISH, ActionKind.ROLLBACK):
        body = {"site": name, "environment": "production", "version": 2, **body}
    if kind is ActionKind.ROLLBACK:
        body = {"deployment_id": f"dep-{name}", **body}
    if kind in ACCESS_OF:
        body = {"tenant": name, "access": ACCESS_OF[kind], **body}
    if kind is ActionKind.SEND_DUNNING:
        body = {"invoice_id": f"in_{name}", "step_code": "D3", **body}
    if kind in (ActionKind.CREATE_HOSTNAME, ActionKind.DELETE_HOSTNAME):
        body = {"hostname": name, **body}
    urgent = kind in (ActionKind.ROLLBACK, ActionKind.UNLOCK)
    return Action(
        id=action_identity(kind, target, body),
        kind=kind,
        target=target,
        tenant="acme",
        site=name if target.startswith("Site/") else None,
        before={},
        after=body,
        payload=parse_payload(kind, body),
        reason=f"test {kind.value} {name}",
        source=None,
        cause=Cause.CHANGE,
        lane=lane if lane is not None else (Lane.URGENT if urgent else Lane.CHANGE),
        depends_on=tuple(sorted(dep.id for dep in depends_on)),
    )


def plan_of(
    *actions: Action,
    planned_at: float = NOW,
    blocked: Iterable[Blocked] = (),
    digest: str = "sha256:world",
) -> Plan:
    """A plan holding exactly these actions, in this order."""
    return Plan(
        revision="abc1234def5678",
        digest=ObservedDigest(digest),
        planned_at=planned_at,
        actions=tuple(actions),
        blocked=tuple(blocked),
        notes=(),
        incomplete={},
    )


Behaviour = Callable[[Action, ActionContext], Awaitable[Outcome]]


class FakeHandler:
    """Records every call; returns APPLIED unless a behaviour says otherwise."""

    def __init__(self, provider: str = "cloudflare", behaviour: Behaviour | None = None) -> None:
        self.provider = provider
        self.behaviour = behaviour
        self.calls: list[tuple[str, bool]] = []  # (action id, ctx.resumed)
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        self.calls.append((action.id, ctx.resumed))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.behaviour is not None:
                return await self.behaviour(action, ctx)
            return Outcome(action_id=action.id, status=Status.APPLIED)
        finally:
            self.in_flight -= 1

    @property
    def called_ids(self) -> list[str]:
        return [action_id for action_id, _ in self.calls]


def handlers_for(handler: FakeHandler) -> dict[ActionKind, FakeHandler]:
    """The same fake for every kind."""
    return dict.fromkeys(ActionKind, handler)


async def migrated_db(path: Path) -> SqliteDatabase:
    """A SQLite file with the full schema (app tables and the reconciler's ledger)."""
    db = SqliteDatabase(path)
    await migrate(db, MIGRATIONS)
    return db


def rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Read rows straight from the file, outside the code under test."""
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(sql, params)]
    finally:
        connection.close()


def intent(path: Path, action_id: str) -> dict[str, Any] | None:
    """The intent row of an action, with ``outcome`` decoded."""
    found = rows(path, "SELECT * FROM intents WHERE action_id = ?", (action_id,))
    if not found:
        return None
    row = found[0]
    if row["outcome"] is not None:
        row["outcome"] = json.loads(row["outcome"])
    return row


def events(path: Path, action_id: str) -> list[str]:
    """The kinds of the events of an action, oldest first."""
    return [
        row["kind"]
        for row in rows(
            path, "SELECT kind FROM events WHERE action_id = ? ORDER BY id", (action_id,)
        )
    ]
