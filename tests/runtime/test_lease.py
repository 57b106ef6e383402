"""The leader lease: two daemons on one SQLite D1 file, a fake clock, one leader at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from reconciler.errors import TransientError
from reconciler.providers.d1 import (
    D1HttpDatabase,
    D1Result,
    ExecResult,
    SqliteDatabase,
    SqlValue,
    Statement,
    StatementResult,
    split_sql,
)
from reconciler.runtime.lease import LeaderLease, LeaseLostError, default_holder
from reconciler.runtime.migrate import migrate

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


class FakeClock:
    """Epoch seconds shared by both daemons; moves only when told (or when a fake sleep runs)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class FlakyDatabase:
    """A Database that forwards to a real one until told to fail like an unreachable D1."""

    def __init__(self, inner: SqliteDatabase) -> None:
        self.inner = inner
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise TransientError("d1", "connection refused", not_applied=True)

    async def query(self, sql: str, params: Sequence[SqlValue] = ()) -> list[dict[str, SqlValue]]:
        self._check()
        return await self.inner.query(sql, params)

    async def execute(self, sql: str, params: Sequence[SqlValue] = ()) -> ExecResult:
        self._check()
        return await self.inner.execute(sql, params)

    async def batch(self, statements: Sequence[Statement]) -> list[StatementResult]:
        self._check()
        return await self.inner.batch(statements)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def db_path(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "d1.sqlite"
    async with SqliteDatabase(path) as db:
        await migrate(db, MIGRATIONS)
    yield path


@pytest.fixture
async def two_dbs(db_path: Path) -> AsyncIterator[tuple[SqliteDatabase, SqliteDatabase]]:
    """Two connections to the same file, as two daemons would have."""
    async with SqliteDatabase(db_path) as first, SqliteDatabase(db_path) as second:
        yield first, second


def lease_row(path: Path) -> dict[str, object]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        row = connection.execute("SELECT * FROM leases WHERE name = 'reconciler-leader'").fetchone()
    finally:
        connection.close()
    assert row is not None
    return dict(row)


def pair(
    dbs: tuple[SqliteDatabase, SqliteDatabase], clock: FakeClock, ttl: float = 15.0
) -> tuple[LeaderLease, LeaderLease]:
    a = LeaderLease(dbs[0], holder="daemon-a", ttl=ttl, clock=clock, sleep=clock.sleep)
    b = LeaderLease(dbs[1], holder="daemon-b", ttl=ttl, clock=clock, sleep=clock.sleep)
    return a, b


async def test_only_one_of_two_daemons_becomes_leader(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase], db_path: Path
) -> None:
    clock = FakeClock()
    a, b = pair(two_dbs, clock)
    assert await a.try_acquire()
    assert not await b.try_acquire()
    assert a.is_leader and not b.is_leader
    assert a.fencing_token == 1 and b.fencing_token is None
    row = lease_row(db_path)
    assert row["holder"] == "daemon-a"
    assert row["expires_at"] == clock.now + 15


async def test_the_leader_acquiring_again_keeps_its_term(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    clock = FakeClock()
    a, _ = pair(two_dbs, clock)
    assert await a.try_acquire()
    clock.advance(5)
    assert await a.try_acquire()
    assert a.fencing_token == 1


async def test_the_standby_takes_over_after_expiry_with_a_larger_fencing_token(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase], db_path: Path
) -> None:
    clock = FakeClock()
    a, b = pair(two_dbs, clock)
    assert await a.try_acquire()
    clock.advance(15)
    assert not await b.try_acquire(), "an exactly-at-expiry lease still belongs to its holder"
    clock.advance(0.5)
    assert await b.try_acquire()
    assert b.fencing_token == 2
    assert lease_row(db_path)["holder"] == "daemon-b"
    assert not await a.renew()
    assert not a.is_leader
    assert a.fencing_token is None
    with pytest.raises(LeaseLostError):
        a.ensure()


async def test_a_lost_lease_is_retaken_in_a_new_term(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    clock = FakeClock()
    a, b = pair(two_dbs, clock)
    tokens = []
    for leader, other in ((a, b), (b, a), (a, b)):
        assert await leader.try_acquire()
        assert not await other.try_acquire()
        tokens.append(leader.ensure())
        clock.advance(16)
    assert tokens == [1, 2, 3]


async def test_renewing_extends_the_lease_so_the_standby_stays_out(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    clock = FakeClock()
    a, b = pair(two_dbs, clock)
    assert await a.try_acquire()
    for _ in range(10):
        clock.advance(5)
        assert await a.renew()
        assert not await b.try_acquire()
    assert a.fencing_token == 1


async def test_leadership_ends_locally_at_the_deadline_even_when_d1_is_unreachable(
    db_path: Path,
) -> None:
    clock = FakeClock()
    async with SqliteDatabase(db_path) as inner:
        db = FlakyDatabase(inner)
        lease = LeaderLease(db, holder="daemon-a", ttl=15, safety_margin=3, clock=clock)
        assert await lease.try_acquire()
        db.down = True
        clock.advance(5)
        assert await lease.renew(), "one failed renewal does not end a lease still valid"
        assert lease.last_error is not None
        clock.advance(6.9)
        assert lease.ensure() == 1
        clock.advance(0.1)
        assert not lease.is_leader
        assert not await lease.renew()
        with pytest.raises(LeaseLostError):
            lease.ensure()


async def test_release_lets_the_standby_take_over_at_once(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    clock = FakeClock()
    a, b = pair(two_dbs, clock)
    assert await a.try_acquire()
    await a.release()
    assert not a.is_leader
    assert await b.try_acquire()
    assert b.fencing_token == 2


async def test_a_release_after_losing_the_lease_does_not_touch_the_new_leaders_row(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase], db_path: Path
) -> None:
    clock = FakeClock()
    a, b = pair(two_dbs, clock)
    assert await a.try_acquire()
    clock.advance(20)
    assert await b.try_acquire()
    await a.release()
    row = lease_row(db_path)
    assert row["holder"] == "daemon-b"
    assert row["expires_at"] == clock.now + 15
    assert b.is_leader


async def test_wait_until_leader_stands_by_until_the_leader_stops_renewing(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    clock = FakeClock()
    a, b = pair(two_dbs, clock)
    assert await a.try_acquire()
    died_at = clock.now
    token = await b.wait_until_leader(poll=1.0)
    assert token == 2
    assert died_at + 15 < clock.now <= died_at + 15 + 1.0


async def test_maintain_returns_as_soon_as_the_lease_is_taken_away(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase], db_path: Path
) -> None:
    clock = FakeClock()
    renewals = 0

    async def sleep_then_steal_on_the_third(seconds: float) -> None:
        nonlocal renewals
        clock.advance(seconds)
        renewals += 1
        if renewals == 3:
            connection = sqlite3.connect(db_path)
            with connection:
                connection.execute("UPDATE leases SET holder = 'intruder', fencing_token = 9")
            connection.close()

    a = LeaderLease(two_dbs[0], holder="daemon-a", clock=clock, sleep=sleep_then_steal_on_the_third)
    assert await a.try_acquire()
    await a.maintain(interval=5)
    assert renewals == 3
    assert not a.is_leader


def test_default_holders_are_unique_per_call() -> None:
    assert default_holder() != default_holder()


def test_the_safety_margin_must_be_shorter_than_the_ttl() -> None:
    with pytest.raises(ValueError, match="safety_margin"):
        LeaderLease(object(), holder="x", ttl=10, safety_margin=10)  # type: ignore[arg-type]


class StringParamsD1Api:
    """A ``D1QueryAPI`` over a SQLite file: params arrive as strings and a multi-statement
    ``sql`` runs as one transaction, as the REST endpoint does (``contracts/d1/NOTES.md``)."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)

    async def d1_query(
        self, database_id: str, sql: str, params: Sequence[SqlValue]
    ) -> list[D1Result]:
        texts = [None if value is None else str(value) for value in params]
        results: list[D1Result] = []
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in split_sql(sql):
                cursor = self.connection.execute(statement, texts)
                names = [column[0] for column in cursor.description or ()]
                rows = tuple(dict(zip(names, row, strict=True)) for row in cursor.fetchall())
                results.append(D1Result(results=rows, changes=max(cursor.rowcount, 0)))
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")
        return results


async def test_the_lease_works_the_same_through_the_d1_rest_backend(db_path: Path) -> None:
    clock = FakeClock()
    api_a, api_b = StringParamsD1Api(db_path), StringParamsD1Api(db_path)
    try:
        a = LeaderLease(D1HttpDatabase(api_a, "db"), holder="daemon-a", clock=clock)
        b = LeaderLease(D1HttpDatabase(api_b, "db"), holder="daemon-b", clock=clock)
        assert await a.try_acquire()
        assert not await b.try_acquire()
        clock.advance(5)
        assert await a.renew()
        clock.advance(16)
        assert await b.try_acquire()
        assert b.fencing_token == 2
        assert not await a.renew()
        await b.release()
        assert await a.try_acquire()
        assert a.fencing_token == 3
    finally:
        api_a.connection.close()
        api_b.connection.close()


async def test_a_release_is_logged_as_routine_and_a_loss_as_a_warning(
    two_dbs: tuple[SqliteDatabase, SqliteDatabase], caplog: pytest.LogCaptureFixture
) -> None:
    def ends() -> list[tuple[str, str]]:
        return [
            (r.levelname, r.getMessage())
            for r in caplog.records
            if r.getMessage() in ("lease released", "lease lost")
        ]

    clock = FakeClock()
    a, b = pair(two_dbs, clock, ttl=10.0)
    caplog.set_level("INFO", logger="reconciler.lease")
    assert await a.try_acquire()
    await a.release()  # apply's end, a daemon's graceful stop
    assert ends() == [("INFO", "lease released")]
    caplog.clear()
    assert await a.try_acquire()
    clock.advance(11.0)  # a stalls past its ttl; b takes the lease over
    assert await b.try_acquire()
    assert not await a.renew()
    assert ends() == [("WARNING", "lease lost")]
