"""StatusStore on a migrated SQLite D1: set, list, filters, transitions and skipped writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.errors import MigrationError, TransientError
from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.migrate import migrate
from reconciler.runtime.status import (
    BATCH_ROWS,
    Condition,
    ConditionUpdate,
    StatusStore,
    parse_condition,
)

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingDatabase(SqliteDatabase):
    """A SQLite D1 that counts batches, the unit a D1 REST request costs."""

    batches = 0

    async def batch(self, statements):  # type: ignore[no-untyped-def]
        self.batches += 1
        return await super().batch(statements)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[CountingDatabase]:
    database = CountingDatabase(tmp_path / "d1.sqlite")
    await migrate(database, MIGRATIONS)
    database.batches = 0
    yield database
    await database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db: CountingDatabase, clock: Clock) -> StatusStore:
    return StatusStore(db, clock)


async def test_a_condition_is_stored_and_listed(store: StatusStore, clock: Clock) -> None:
    assert await store.set(
        "Site/acme-home",
        Condition.SYNCED,
        True,
        reason="Published",
        message="version 12 is live",
        commit="abc123",
        tenant="acme",
    )
    [row] = await store.list()
    assert row.resource == "Site/acme-home"
    assert row.condition == "Synced"
    assert row.status is True
    assert row.status_text == "True"
    assert (row.reason, row.message, row.observed_commit) == (
        "Published",
        "version 12 is live",
        "abc123",
    )
    assert (row.tenant, row.site) == ("acme", "acme-home")
    assert row.last_transition_at == row.updated_at == clock.now
    assert row.to_json()["last_transition_at"] == "2023-11-14T22:13:20Z"


async def test_last_transition_changes_only_when_the_status_flips(
    store: StatusStore, clock: Clock
) -> None:
    await store.set("Hostname/www.acme.com", "DNSConfigured", None, reason="Pending", message="")
    first = clock.now
    clock.now += 60
    await store.set(
        "Hostname/www.acme.com", "DNSConfigured", None, reason="StillPending", message="waiting"
    )
    row = await store.get("Hostname/www.acme.com", "DNSConfigured")
    assert row is not None
    assert row.last_transition_at == first
    assert row.updated_at == first + 60
    assert row.reason == "StillPending"
    clock.now += 60
    await store.set("Hostname/www.acme.com", "DNSConfigured", True, reason="Active", message="")
    row = await store.get("Hostname/www.acme.com", "DNSConfigured")
    assert row is not None
    assert row.status is True
    assert row.last_transition_at == first + 120


async def test_filters_by_tenant_and_site_find_hostnames_too(store: StatusStore) -> None:
    await store.set_many(
        [
            ConditionUpdate("Tenant/acme", "PaymentCurrent", False, "PastDue", "invoice 9 days"),
            ConditionUpdate("Site/acme-home", "Ready", True, "Serving", "", tenant="acme"),
            ConditionUpdate(
                "Hostname/www.acme.com",
                "Ready",
                False,
                "Pending",
                "",
                tenant="acme",
                site="acme-home",
            ),
            ConditionUpdate("Site/acme-shop", "Ready", True, "Serving", "", tenant="acme"),
            ConditionUpdate(
                "Hostname/bistro.pt",
                "Ready",
                True,
                "Active",
                "",
                tenant="bistro",
                site="bistro-menu",
            ),
            ConditionUpdate("Sweep/hostnames", "Synced", True, "Listed", ""),
        ]
    )
    by_tenant = [r.resource for r in await store.list(tenant="acme")]
    assert by_tenant == ["Hostname/www.acme.com", "Site/acme-home", "Site/acme-shop", "Tenant/acme"]
    by_site = [r.resource for r in await store.list(site="acme-home")]
    assert by_site == ["Hostname/www.acme.com", "Site/acme-home"]
    ready_bistro = await store.list(tenant="bistro", condition="ready")
    assert [r.resource for r in ready_bistro] == ["Hostname/bistro.pt"]
    assert len(await store.list()) == 6


async def test_the_listing_is_sorted_by_resource_then_condition(store: StatusStore) -> None:
    for condition in ("Synced", "Ready", "Stuck"):
        await store.set("Site/b", condition, True, reason="R", message="")
    await store.set("Site/a", "Synced", True, reason="R", message="")
    listed = [(r.resource, r.condition) for r in await store.list()]
    assert listed == [
        ("Site/a", "Synced"),
        ("Site/b", "Ready"),
        ("Site/b", "Stuck"),
        ("Site/b", "Synced"),
    ]


async def test_an_unchanged_condition_is_not_written_again_until_the_refresh(
    db: CountingDatabase, clock: Clock
) -> None:
    store = StatusStore(db, clock, refresh=600)
    update = ConditionUpdate("Site/a", "Synced", True, "Published", "ok", commit="c1")
    assert await store.set_many([update]) == 1
    clock.now += 10
    assert await store.set_many([update]) == 0
    assert store.skipped == 1
    [row] = await store.list()
    assert row.updated_at == clock.now - 10
    clock.now += 600
    assert await store.set_many([update]) == 1
    store.forget()
    assert await store.set_many([update]) == 1
    assert db.batches == 3


async def test_many_updates_go_out_in_batches(db: CountingDatabase, store: StatusStore) -> None:
    updates = [
        ConditionUpdate(f"Site/s{i:03}", "Synced", True, "Published", "", tenant="t")
        for i in range(BATCH_ROWS * 2 + 1)
    ]
    assert await store.set_many(updates) == len(updates)
    assert db.batches == 3
    assert len(await store.list(tenant="t")) == len(updates)


async def test_an_omitted_commit_or_scope_keeps_the_stored_one(store: StatusStore) -> None:
    await store.set(
        "Hostname/h.example",
        "Ready",
        True,
        reason="Active",
        message="",
        commit="c1",
        tenant="acme",
        site="acme-home",
    )
    await store.set("Hostname/h.example", "Ready", False, reason="Failed", message="")
    row = await store.get("Hostname/h.example", "Ready")
    assert row is not None
    assert (row.observed_commit, row.tenant, row.site) == ("c1", "acme", "acme-home")


async def test_errors_are_stored_with_secrets_masked(store: StatusStore) -> None:
    error = TransientError("evolution", "401 for apikey=supersecretvalue123")
    await store.set("Tenant/acme", "Stuck", True, reason="Gave up", message="", last_error=error)
    row = await store.get("Tenant/acme", "Stuck")
    assert row is not None
    assert row.last_error is not None
    assert "supersecretvalue123" not in row.last_error
    assert "apikey=***" in row.last_error


async def test_condition_names_are_matched_in_any_case() -> None:
    assert parse_condition("dnsconfigured") == "DNSConfigured"
    assert parse_condition("STUCK") == "Stuck"
    assert parse_condition("Custom") == "Custom"


async def test_a_database_without_migrations_asks_for_reconciler_migrate(tmp_path: Path) -> None:
    async with SqliteDatabase(tmp_path / "empty.sqlite") as empty:
        store = StatusStore(empty)
        with pytest.raises(MigrationError, match="reconciler migrate"):
            await store.list()
        with pytest.raises(MigrationError, match="reconciler migrate"):
            await store.set("Site/a", "Synced", True, reason="R", message="")
