"""The intent journal on a migrated SQLite D1: rows, state changes, append-only events."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import ActionKind
from reconciler.errors import TransientError
from reconciler.providers.d1 import SqliteDatabase, Statement, StatementResult
from reconciler.runtime.journal import (
    IntentState,
    Journal,
    outcome_from_json,
    outcome_to_json,
)

from support.execute import NOW, Clock, action, events, intent, migrated_db, rows


@pytest.fixture
async def ledger(tmp_path: Path) -> tuple[Path, SqliteDatabase]:
    path = tmp_path / "d1.sqlite"
    db = await migrated_db(path)
    yield path, db
    await db.close()


async def test_begin_writes_a_pending_intent_with_the_payload_and_commit(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    clock = Clock()
    journal = Journal(db, now=clock)
    publish = action(ActionKind.PUBLISH, "acme-home")

    assert await journal.prior(publish.id) is None
    await journal.begin(publish, revision="abc123", planned_at=NOW)

    row = intent(path, publish.id)
    assert row is not None
    assert row["state"] == "pending"
    assert row["kind"] == "publish"
    assert row["target"] == "Site/acme-home:production"
    assert row["commit_sha"] == "abc123"
    assert row["created_at"] == clock.value
    assert row["finished_at"] is None
    assert '"version":2' in row["payload"]
    assert events(path, publish.id) == ["action.started"]


async def test_finish_marks_done_and_stores_the_outcome(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    clock = Clock()
    journal = Journal(db, now=clock)
    publish = action(ActionKind.PUBLISH, "acme-home")
    await journal.begin(publish, revision=None, planned_at=NOW)
    clock.value += 5
    outcome = Outcome(publish.id, Status.APPLIED, "deployed", data={"deployment_id": "d-1"})
    await journal.finish(publish, outcome)

    row = intent(path, publish.id)
    assert row is not None
    assert row["state"] == "done"
    assert row["finished_at"] == clock.value
    assert row["outcome"]["data"] == {"deployment_id": "d-1"}
    prior = await journal.prior(publish.id)
    assert prior is not None
    assert prior.state is IntentState.DONE
    assert prior.finished_at == clock.value
    assert events(path, publish.id) == ["action.started", "action.applied"]


async def test_a_failed_intent_is_reset_to_pending_for_a_new_attempt_and_history_kept(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    journal = Journal(db, now=Clock())
    create = action(ActionKind.CREATE_HOSTNAME, "www.acme.com")
    await journal.begin(create, revision=None, planned_at=NOW)
    await journal.finish(create, Outcome(create.id, Status.FAILED_TRANSIENT, "cloudflare: 503"))
    prior = await journal.prior(create.id)
    assert prior is not None
    assert prior.state is IntentState.FAILED

    await journal.begin(create, revision=None, planned_at=NOW)

    row = intent(path, create.id)
    assert row is not None
    assert row["state"] == "pending"
    assert row["outcome"] is None
    assert events(path, create.id) == [
        "action.started",
        "action.failed_transient",
        "action.retried",
    ]
    assert len(rows(path, "SELECT * FROM intents")) == 1


async def test_a_pending_intent_is_resumed_without_rewriting_the_row(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    clock = Clock()
    journal = Journal(db, now=clock)
    lock = action(ActionKind.HARD_LOCK, "acme")
    await journal.begin(lock, revision=None, planned_at=NOW)
    clock.value += 60
    prior = await journal.prior(lock.id)
    assert prior is not None
    assert prior.state is IntentState.PENDING

    returned = await journal.begin(lock, revision=None, planned_at=NOW)

    assert returned == prior  # begin reports the row as it was before
    row = intent(path, lock.id)
    assert row is not None
    assert row["created_at"] == clock.value - 60
    assert events(path, lock.id) == ["action.started", "action.resumed"]


async def test_a_done_intent_newer_than_the_observation_is_current_and_left_untouched(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    clock = Clock(NOW + 5)
    journal = Journal(db, now=clock)
    send = action(ActionKind.SEND_DUNNING, "in_1")
    await journal.begin(send, revision=None, planned_at=NOW)
    await journal.finish(send, Outcome(send.id, Status.APPLIED))
    before = intent(path, send.id)

    prior = await journal.begin(send, revision=None, planned_at=NOW)

    assert prior is not None
    assert prior.is_current(NOW)
    assert intent(path, send.id) == before
    assert events(path, send.id) == ["action.started", "action.applied"]


async def test_a_done_intent_older_than_the_observation_is_reset_for_a_redo(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    clock = Clock(NOW - 100)
    journal = Journal(db, now=clock)
    lock = action(ActionKind.HARD_LOCK, "acme")
    await journal.begin(lock, revision=None, planned_at=NOW - 200)
    await journal.finish(lock, Outcome(lock.id, Status.APPLIED))
    clock.value = NOW + 1

    prior = await journal.begin(lock, revision="c0ffee", planned_at=NOW)

    assert prior is not None
    assert not prior.is_current(NOW)
    row = intent(path, lock.id)
    assert row is not None
    assert (row["state"], row["commit_sha"], row["created_at"]) == ("pending", "c0ffee", NOW + 1)
    assert events(path, lock.id) == ["action.started", "action.applied", "action.redone"]
    data = rows(path, "SELECT data FROM events WHERE kind = 'action.redone'")[0]["data"]
    assert '"prior_state":"done"' in data


async def test_crash_records_the_error_as_a_failed_intent(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    journal = Journal(db, now=Clock())
    sync = action(ActionKind.SYNC_BILLING, "acme")
    await journal.begin(sync, revision=None, planned_at=NOW)
    await journal.crash(sync, KeyError("invoice_id"))

    row = intent(path, sync.id)
    assert row is not None
    assert row["state"] == "failed"
    assert row["outcome"]["status"] == "crashed"
    assert row["outcome"]["error"] == "KeyError"
    assert events(path, sync.id)[-1] == "action.crashed"


async def test_events_cannot_be_updated(ledger: tuple[Path, SqliteDatabase]) -> None:
    path, db = ledger
    journal = Journal(db, now=Clock())
    sync = action(ActionKind.SYNC_BILLING, "acme")
    await journal.begin(sync, revision=None, planned_at=NOW)
    with pytest.raises(Exception, match="append-only"):
        await db.execute("UPDATE events SET message = 'rewritten'")
    assert rows(path, "SELECT message FROM events")[0]["message"] == "started"


async def test_a_database_outage_while_beginning_is_a_transient_error() -> None:
    class DownDatabase:
        async def query(self, sql: str, params: object = ()) -> list[dict[str, object]]:
            return []

        async def batch(self, statements: object) -> list[object]:
            raise TransientError("d1", "database is locked")

    journal = Journal(DownDatabase(), now=Clock())  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        await journal.begin(action(ActionKind.UNLOCK, "acme"), revision=None, planned_at=NOW)


def test_outcomes_round_trip_through_their_stored_json() -> None:
    outcome = Outcome("a1", Status.FAILED_TRANSIENT, "503", retry_after=30.0, data={"x": [1]})
    assert outcome_from_json("a1", outcome_to_json(outcome)) == outcome
    assert outcome_from_json("a1", {"status": "crashed"}) is None


class CountingDatabase:
    """A database that counts its batches (one D1 request each over REST)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.batches = 0

    async def query(self, sql: str, params: object = ()) -> list[dict[str, object]]:
        return await self.db.query(sql, params)  # type: ignore[arg-type]

    async def batch(self, statements: list[Statement]) -> list[StatementResult]:
        self.batches += 1
        return await self.db.batch(statements)


async def test_a_deferred_outcome_rides_in_the_next_intents_batch_and_a_flush_writes_the_rest(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    counting = CountingDatabase(db)
    journal = Journal(counting, now=Clock())  # type: ignore[arg-type]
    first, second = action(ActionKind.UNLOCK, "acme"), action(ActionKind.UNLOCK, "bolt")
    await journal.begin(first, revision=None, planned_at=NOW)
    journal.defer_finish(first, Outcome(first.id, Status.APPLIED))
    assert intent(path, first.id)["state"] == "pending"  # type: ignore[index]

    await journal.begin(second, revision=None, planned_at=NOW)
    assert counting.batches == 2
    assert intent(path, first.id)["state"] == "done"  # type: ignore[index]
    assert events(path, first.id) == ["action.started", "action.applied"]

    journal.defer_finish(second, Outcome(second.id, Status.APPLIED))
    await journal.flush()
    await journal.flush()  # nothing queued: no request
    assert counting.batches == 3
    assert intent(path, second.id)["state"] == "done"  # type: ignore[index]
    assert journal.unrecorded() == {}


async def test_opening_statements_ride_with_the_intent_and_write_nothing_when_it_is_current(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    _, db = ledger
    journal = Journal(db, now=Clock(NOW + 5))
    send = action(ActionKind.SEND_DUNNING, "in_1")

    def opening() -> list[Statement]:
        unless = journal.unless_done(send, NOW)
        return [
            Statement(
                f"INSERT INTO tenants (id, name) SELECT 'acme', 'Acme' WHERE {unless.sql}",
                unless.params,
            ),
            Statement("SELECT COUNT(*) AS n FROM tenants"),
        ]

    prior, opened = await journal.open(send, revision=None, planned_at=NOW, opening=opening())
    assert prior is None
    assert [dict(row) for row in opened[1].rows] == [{"n": 1}]
    await journal.finish(send, Outcome(send.id, Status.APPLIED))
    await db.execute("DELETE FROM tenants")

    prior, opened = await journal.open(send, revision=None, planned_at=NOW, opening=opening())
    assert prior is not None and prior.is_current(NOW)
    assert [dict(row) for row in opened[1].rows] == [{"n": 0}]  # guarded: nothing written


async def test_a_queued_group_that_fails_is_reported_and_does_not_fail_the_next_intent(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    journal = Journal(db, now=Clock())
    first, second = action(ActionKind.UNLOCK, "acme"), action(ActionKind.UNLOCK, "bolt")
    await journal.begin(first, revision=None, planned_at=NOW)
    bad = Statement("INSERT INTO no_such_table VALUES (1)")
    journal.defer_finish(first, Outcome(first.id, Status.APPLIED), [bad])

    await journal.begin(second, revision=None, planned_at=NOW)

    assert intent(path, second.id)["state"] == "pending"  # type: ignore[index]
    assert intent(path, first.id)["state"] == "pending"  # the group is all or nothing
    assert "no_such_table" in journal.unrecorded()[first.id]
