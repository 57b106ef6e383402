"""The D1-only record handlers: ``record_hostname`` and ``record_publish_failure``.

Against a migrated SQLite D1 (the Cloudflare simulator is there but must see no call): the
hostname's ``domains`` row takes the status the plan observed, with ``status_since`` moved
only when the status changes; a publish blocked by its build gets exactly one ``failed``
``publish_versions`` row, however often the action is repeated.
"""

from __future__ import annotations

from typing import Any

from conftest import PROJECT, Rig, make_action

from reconciler.core.outcome import Status
from reconciler.core.plan import ActionKind, JsonValue
from reconciler.runtime.records import iso

HOST = "www.acmebakery.test"


async def seed_domain(rig: Rig, *, status: str, since: str = "2026-01-01T00:00:00Z") -> None:
    await rig.db.execute(
        "INSERT INTO tenants (id, name) VALUES ('acme', 'acme') ON CONFLICT DO NOTHING"
    )
    await rig.db.execute(
        "INSERT INTO sites (id, tenant_id, name, pages_project) VALUES (?, 'acme', ?, ?) "
        "ON CONFLICT DO NOTHING",
        (PROJECT, PROJECT, PROJECT),
    )
    await rig.db.execute(
        "INSERT INTO domains (id, site_id, tenant_id, domain, status, ssl_status, "
        "verification_token, custom_hostname_id, status_since) "
        "VALUES ('d1', ?, 'acme', ?, ?, 'initializing', 'token-1', 'cf-1', ?)",
        (PROJECT, HOST, status, since),
    )


def record(status: str, ssl_status: str | None, **more: JsonValue) -> Any:
    after: dict[str, JsonValue] = {
        "hostname": HOST,
        "site": PROJECT,
        "tenant": "acme",
        "id": "cf-1",
        "status": status,
        "ssl_status": ssl_status,
        "verification_errors": [],
        "verification_token": None,
    }
    after.update(more)
    return make_action(ActionKind.RECORD_HOSTNAME, f"Hostname/{HOST}", after)


async def row(rig: Rig) -> dict[str, Any]:
    [found] = await rig.rows("SELECT * FROM domains WHERE domain = ?", (HOST,))
    return found


async def test_recording_a_new_status_writes_it_and_restarts_status_since(rig: Rig) -> None:
    await seed_domain(rig, status="pending_validation")
    calls = len(rig.cf.calls())
    outcome = await rig.run(
        record("failed", "validation_timed_out", verification_errors=["no CNAME"])
    )
    assert outcome.status is Status.APPLIED, outcome.message
    found = await row(rig)
    assert found["status"] == "failed" and found["ssl_status"] == "validation_timed_out"
    assert found["verification_errors"] == '["no CNAME"]'
    assert found["status_since"] == iso(rig.cf.clock.now())
    assert found["verification_token"] == "token-1"  # kept: the action carried none
    assert found["custom_hostname_id"] == "cf-1"
    assert len(rig.cf.calls()) == calls, "a record action must not call Cloudflare"


async def test_a_certificate_stage_alone_keeps_status_since(rig: Rig) -> None:
    await seed_domain(rig, status="pending_validation")
    outcome = await rig.run(record("pending_validation", "pending_validation"))
    assert outcome.status is Status.APPLIED
    found = await row(rig)
    assert found["ssl_status"] == "pending_validation"
    assert found["status_since"] == "2026-01-01T00:00:00Z"


async def test_repeating_a_record_leaves_the_same_row(rig: Rig) -> None:
    await seed_domain(rig, status="pending_validation")
    action = record("active", "active")
    await rig.run(action)
    first = await row(rig)
    rig.cf.clock.advance(30)
    again = await rig.run(action, resumed=True)
    assert again.status is Status.APPLIED
    second = await row(rig)
    assert {k: v for k, v in second.items() if k not in ("last_checked_at", "updated_at")} == {
        k: v for k, v in first.items() if k not in ("last_checked_at", "updated_at")
    }


async def test_a_record_for_a_hostname_without_a_row_changes_nothing(rig: Rig) -> None:
    outcome = await rig.run(record("active", "active"))
    assert outcome.status is Status.UNCHANGED
    assert await rig.rows("SELECT * FROM domains") == []


def failure(error: str, **more: JsonValue) -> Any:
    after: dict[str, JsonValue] = {
        "site": PROJECT,
        "tenant": "acme",
        "project": PROJECT,
        "environment": "production",
        "version": 3,
        "commit": "c0ffee",
        "content_hash": None,
        "error_message": error,
    }
    after.update(more)
    return make_action(ActionKind.RECORD_PUBLISH_FAILURE, f"Site/{PROJECT}:production", after)


async def test_a_blocked_build_is_recorded_once_as_a_failed_publish(rig: Rig) -> None:
    action = failure("build failed: invalid content: pages[0].blocks[1] (image): alt: missing")
    outcome = await rig.run(action)
    assert outcome.status is Status.APPLIED, outcome.message
    again = await rig.run(action, resumed=True)
    assert again.status is Status.UNCHANGED
    rows = await rig.rows("SELECT * FROM publish_versions")
    assert len(rows) == 1
    [found] = rows
    assert found["status"] == "failed" and found["version_number"] == 3
    assert found["error_message"].startswith("build failed: invalid content")
    assert found["deployment_id"] is None and found["commit_sha"] == "c0ffee"
    assert found["completed_at"] == iso(rig.cf.clock.now())
    [site] = await rig.rows("SELECT * FROM sites WHERE id = ?", (PROJECT,))
    assert site["tenant_id"] == "acme"


async def test_an_over_budget_build_is_recorded_with_its_sizes(rig: Rig) -> None:
    sizes: dict[str, JsonValue] = {"js_kb": 312, "css_kb": 10, "third_party_scripts": 4}
    action = failure(
        "performance budget exceeded: JS 312 KB is over the budget of 100 KB",
        content_hash="abc",
        sizes=sizes,
    )
    assert (await rig.run(action)).status is Status.APPLIED
    [found] = await rig.rows("SELECT * FROM publish_versions")
    assert (found["js_kb"], found["css_kb"], found["third_party_scripts"]) == (312, 10, 4)
    assert found["content_hash"] == "abc"


async def test_a_different_error_for_the_same_version_is_recorded_as_a_new_row(rig: Rig) -> None:
    await rig.run(failure("build failed: missing asset a.png"))
    rig.cf.clock.advance(60)
    assert (await rig.run(failure("build failed: missing asset b.png"))).status is Status.APPLIED
    rows = await rig.rows("SELECT error_message FROM publish_versions ORDER BY id")
    assert [r["error_message"] for r in rows] == [
        "build failed: missing asset a.png",
        "build failed: missing asset b.png",
    ]
