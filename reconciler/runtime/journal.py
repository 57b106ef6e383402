"""The intent journal: D1 rows written before every side effect and finished after it.

Called by ``runtime/execute.py`` only (handlers never touch it); writes the ``intents`` and
``events`` tables of ``migrations/0002_reconciler_ledger.sql`` through a
:class:`~reconciler.providers.d1.Database` (SQLite locally, D1 in production).

Rules:

1. One ``intents`` row per action id (the id hashes kind, target and ``after``, so it is the
   idempotency key). :meth:`Journal.begin` inserts it as ``pending`` before the handler runs;
   :meth:`Journal.finish` sets ``done`` or ``failed`` with ``finished_at`` and the outcome JSON.
2. An existing row says what an earlier run left behind, and :meth:`Journal.begin` reports it
   as a :class:`Prior`: ``pending`` means the process died between intent and outcome (the
   side effect may or may not have happened); ``failed`` means an earlier attempt failed;
   ``done`` means the same action already succeeded. A ``done`` row finished at or after the
   plan's observation is *current*: nothing is written and the action is not run again. A
   ``failed`` row, and a ``done`` row older than the observation, are reset to ``pending`` for
   the new attempt; a ``pending`` row is kept as it is.
3. ``events`` is append-only: each start and each finish adds a row (``action.started``,
   ``action.resumed``, ``action.retried``, ``action.redone``, then ``action.<status>`` or
   ``action.crashed``), so the history of every attempt survives the intent row's reuse.
4. The row update and its event are one batch: both or neither. :meth:`Journal.begin` reads
   the earlier row and writes the new one in that same batch, so the decision in rule 2 is
   made on the row it replaces.
5. Round trips are shared (D1 over REST spends the API token; the app tables the handlers
   write are in the journal's database). :meth:`Journal.open` runs a handler's opening
   statements in the intent's batch, their writes guarded by
   :meth:`Journal.unless_done`. :meth:`Journal.defer_finish` queues an outcome with the
   handler's closing statements (one group, atomic); the queue rides in front of the next
   intent's batch and :meth:`Journal.flush` writes the rest at the end of a run. So an
   action's result is durable before any action that starts after it writes its intent;
   a crash before that leaves the intent ``pending`` (rule 2: the next run looks first). A
   queued group whose write fails is reported by :meth:`Journal.unrecorded`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import Action, JsonValue
from reconciler.errors import ProviderError
from reconciler.providers.d1 import Database, Row, SqlValue, Statement, StatementResult

__all__ = [
    "CREATING_QUERY",
    "IntentState",
    "Journal",
    "Prior",
    "creating_hostnames",
    "outcome_from_json",
    "outcome_to_json",
]


class IntentState(StrEnum):
    """The ``intents.state`` column."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Prior:
    """The intent row an earlier run left for an action id."""

    state: IntentState
    created_at: float
    finished_at: float | None
    outcome: Mapping[str, JsonValue] | None

    def is_current(self, planned_at: float) -> bool:
        """Done at or after ``planned_at``: the plan is behind the journal (rule 2)."""
        return (
            self.state is IntentState.DONE
            and self.finished_at is not None
            and self.finished_at >= planned_at
        )


_SELECT = "SELECT state, created_at, finished_at, outcome FROM intents WHERE action_id = ?"

# Rule 2 in SQL; keep in step with Prior.is_current. Parameters: action_id, planned_at.
_IS_CURRENT = (
    "EXISTS (SELECT 1 FROM intents WHERE action_id = ? AND state = 'done' AND finished_at >= ?)"
)
_START_EVENT = (
    "INSERT INTO events (at, kind, resource, action_id, message, data) "
    "SELECT ?, 'action.' || verb, ?, ?, verb, "
    "json_object('kind', ?, 'commit', ?, 'prior_state', prior) "
    "FROM (SELECT prior, CASE prior WHEN 'pending' THEN 'resumed' WHEN 'failed' THEN 'retried' "
    "WHEN 'done' THEN 'redone' ELSE 'started' END AS verb "
    "FROM (SELECT (SELECT state FROM intents WHERE action_id = ?) AS prior)) "
    f"WHERE NOT {_IS_CURRENT}"
)
_UPSERT = (
    "INSERT INTO intents (action_id, kind, target, payload, state, commit_sha, created_at) "
    "VALUES (?, ?, ?, ?, 'pending', ?, ?) "
    "ON CONFLICT (action_id) DO UPDATE SET state = 'pending', payload = excluded.payload, "
    "commit_sha = excluded.commit_sha, created_at = excluded.created_at, finished_at = NULL, "
    "outcome = NULL "
    "WHERE intents.state = 'failed' OR (intents.state = 'done' AND intents.finished_at < ?)"
)
_FINISH = (
    "UPDATE intents SET state = ?, finished_at = ?, outcome = ? "
    "WHERE action_id = ? AND state = 'pending'"
)
_EVENT = (
    "INSERT INTO events (at, kind, resource, action_id, message, data) VALUES (?, ?, ?, ?, ?, ?)"
)


# The hostname creates the journal holds unfinished: pending (the process died mid-create) or
# failed with an unknown outcome (read by runtime/records/domains.py for the observer).
CREATING_QUERY = (
    "SELECT target, payload FROM intents WHERE kind IN ('create_hostname', 'recreate_hostname') "
    "AND (state = 'pending' OR (state = 'failed' "
    "AND json_extract(outcome, '$.status') = 'failed_transient'))"
)


def creating_hostnames(rows: list[Row]) -> dict[str, tuple[str, str]]:
    """hostname -> (site, tenant) from the payloads of :data:`CREATING_QUERY`'s rows."""
    found: dict[str, tuple[str, str]] = {}
    for row in rows:
        try:
            payload = json.loads(str(row["payload"]))
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        name, site, tenant = payload.get("hostname"), payload.get("site"), payload.get("tenant")
        if isinstance(name, str) and isinstance(site, str) and isinstance(tenant, str):
            found[name] = (site, tenant)
    return found


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def outcome_to_json(outcome: Outcome) -> dict[str, JsonValue]:
    """The outcome as stored in ``intents.outcome`` and event data."""
    return {
        "status": outcome.status.value,
        "message": outcome.message,
        "retry_after": outcome.retry_after,
        "data": dict(outcome.data),
    }


def outcome_from_json(action_id: str, stored: Mapping[str, JsonValue]) -> Outcome | None:
    """Rebuild a stored outcome, or None when the row holds something else (a crash record)."""
    try:
        status = Status(str(stored.get("status")))
    except ValueError:
        return None
    retry_after = stored.get("retry_after")
    data = stored.get("data")
    message = stored.get("message")
    return Outcome(
        action_id=action_id,
        status=status,
        message=message if isinstance(message, str) else "",
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        data=data if isinstance(data, dict) else {},
    )


def _prior(rows: list[Row]) -> Prior | None:
    if not rows:
        return None
    row = rows[0]
    stored = row["outcome"]
    outcome = json.loads(stored) if isinstance(stored, str) else None
    finished = row["finished_at"]
    created = row["created_at"]
    return Prior(
        state=IntentState(str(row["state"])),
        created_at=float(created) if isinstance(created, int | float) else 0.0,
        finished_at=float(finished) if isinstance(finished, int | float) else None,
        outcome=outcome if isinstance(outcome, dict) else None,
    )


def _flat(queued: list[tuple[str, list[Statement]]]) -> list[Statement]:
    return [statement for _, group in queued for statement in group]


class Journal:
    """Reads and writes the intent journal and its events on one database."""

    def __init__(self, db: Database, *, now: Callable[[], float]) -> None:
        """Bind the journal to a database and the injected clock.

        Args:
            db: the D1 database holding the ``intents`` and ``events`` tables.
            now: epoch seconds (the reconciler's clock, virtual in the sandbox).
        """
        self._db = db
        self._now = now
        self._queued: list[tuple[str, list[Statement]]] = []  # (action id, group), rule 5
        self._failed: dict[str, str] = {}

    async def prior(self, action_id: str) -> Prior | None:
        """The intent row an earlier run left for ``action_id``, if any."""
        return _prior(await self._db.query(_SELECT, (action_id,)))

    def unless_done(self, action: Action, planned_at: float) -> Statement:
        """An SQL condition (with its parameters) false when the action is current (rule 2)."""
        return Statement(f"NOT {_IS_CURRENT}", (action.id, planned_at))

    async def begin(
        self, action: Action, *, revision: str | None, planned_at: float
    ) -> Prior | None:
        """:meth:`open` without opening statements: the prior row only."""
        prior, _ = await self.open(action, revision=revision, planned_at=planned_at)
        return prior

    async def open(
        self,
        action: Action,
        *,
        revision: str | None,
        planned_at: float,
        opening: Sequence[Statement] = (),
    ) -> tuple[Prior | None, tuple[StatementResult, ...]]:
        """Write the pending intent for ``action`` before its side effect, in one batch.

        The queued outcomes (rule 5) go first in the same batch, ``opening`` last.

        Args:
            action: the action about to run.
            revision: the specs commit the plan was made from (``intents.commit_sha``).
            planned_at: when the plan's world was observed (rule 2).
            opening: the handler's first statements, writes guarded by :meth:`unless_done`.

        Returns:
            The row an earlier run left, as it was before this call, or None (when it
            :meth:`~Prior.is_current`, nothing was written and the action must not run);
            and the results of ``opening``.

        Raises:
            ProviderError: the database could not be written; the handler must not run.
        """
        at = self._now()
        payload = _dumps(dict(action.after))
        kind = action.kind.value
        event: tuple[SqlValue, ...] = (at, action.target, action.id, kind, revision, action.id)
        own = [
            Statement(_SELECT, (action.id,)),
            Statement(_START_EVENT, (*event, action.id, planned_at)),
            Statement(_UPSERT, (action.id, kind, action.target, payload, revision, at, planned_at)),
            *opening,
        ]
        queued, self._queued = self._queued, []
        try:
            results = await self._db.batch([*_flat(queued), *own])
        except ProviderError:
            if not queued:
                raise
            await self._write_queued(queued)  # alone, so the intent's own failure is its own
            results = await self._db.batch(own)
        else:
            results = results[len(_flat(queued)) :]
        return _prior(list(results[0].rows)), tuple(results[3:])

    def defer_finish(
        self, action: Action, outcome: Outcome, record: Sequence[Statement] = ()
    ) -> None:
        """Queue :meth:`finish` with the handler's closing statements (rule 5)."""
        self._queued.append((action.id, [*self._finished(action, outcome), *record]))

    async def flush(self) -> None:
        """Write the queued outcomes now (one batch); failures go to :meth:`unrecorded`."""
        queued, self._queued = self._queued, []
        if queued:
            await self._write_queued(queued)

    def discard(self) -> None:
        """Drop the queued outcomes (a cancelled pass: their intents stay ``pending``)."""
        self._queued = []

    def unrecorded(self) -> dict[str, str]:
        """Action id -> why its queued outcome could not be written; the list is emptied."""
        failed, self._failed = self._failed, {}
        return failed

    async def _write_queued(self, queued: list[tuple[str, list[Statement]]]) -> None:
        """One batch; if it fails, each group alone, so one bad group fails only itself."""
        try:
            await self._db.batch(_flat(queued))
            return
        except ProviderError as exc:
            if len(queued) == 1:
                self._failed[queued[0][0]] = str(exc)
                return
        for action_id, group in queued:
            try:
                await self._db.batch(group)
            except ProviderError as exc:
                self._failed[action_id] = str(exc)

    async def finish(self, action: Action, outcome: Outcome) -> None:
        """Record the outcome: state ``done`` when it succeeded, ``failed`` otherwise.

        Raises:
            ProviderError: the database could not be written; the intent stays pending and the
                next run resumes it (the handler looks before acting).
        """
        await self._db.batch(self._finished(action, outcome))

    async def crash(self, action: Action, error: BaseException) -> None:
        """Record that the handler raised something that is not a provider error (a bug)."""
        stored: dict[str, JsonValue] = {
            "status": "crashed",
            "error": type(error).__name__,
            "message": str(error),
        }
        message = f"{type(error).__name__}: {error}"
        await self._db.batch(
            self._closing(action, IntentState.FAILED, stored, "action.crashed", message)
        )

    def _finished(self, action: Action, outcome: Outcome) -> list[Statement]:
        """The row ``done`` when the outcome succeeded, ``failed`` otherwise, and its event."""
        state = IntentState.DONE if outcome.succeeded else IntentState.FAILED
        stored = outcome_to_json(outcome)
        event = f"action.{outcome.status.value}"
        return self._closing(action, state, stored, event, outcome.message)

    def _closing(
        self,
        action: Action,
        state: IntentState,
        stored: dict[str, JsonValue],
        event: str,
        message: str,
    ) -> list[Statement]:
        """The row's final state and its event (rule 4)."""
        at = self._now()
        return [
            Statement(_FINISH, (state.value, at, _dumps(stored), action.id)),
            self._event(at, event, action, message, stored),
        ]

    def _event(
        self, at: float, kind: str, action: Action, message: str, data: Mapping[str, JsonValue]
    ) -> Statement:
        params: tuple[SqlValue, ...] = (
            at,
            kind,
            action.target,
            action.id,
            message,
            _dumps(dict(data)),
        )
        return Statement(_EVENT, params)
