"""The D1-only record handlers: ``record_hostname`` and ``record_publish_failure``.

Against a migrated SQLite D1 (the Cloudflare simulator is there but must see no call): the
hostname's ``domains`` row takes the status, id and origin the plan observed (created when
missing), with ``status_since`` moved only when the status changes, or is marked
``deleted``; a publish blocked by its build gets exactly one ``failed`` ``publish_versions``
row, however often the action is repeated.
"""

from __future__ import annotations

from typing import Any

from reconciler.core.outcome import Status
from reconciler.core.plan import ActionKind, JsonValue
from reconciler.runtime.records import iso

from support.actions import PROJECT, Rig, make_action

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


async def test_a_record_for_a_hostname_without_a_row_creates_it_from_after(rig: Rig) -> None:
    # no tenants, sites or domains row: a create killed before its D1 write on a fresh D1
    calls = len(rig.cf.calls())
    outcome = await rig.run(
        record(
            "pending_ssl",
            "pending_validation",
            project=PROJECT,
            origin="acme-home.pages.dev",
            ssl_method="txt",
            verification_token="token-9",
        )
    )
    assert outcome.status is Status.APPLIED, outcome.message
    found = await row(rig)
    assert found["site_id"] == PROJECT and found["tenant_id"] == "acme"
    assert found["status"] == "pending_ssl" and found["ssl_status"] == "pending_validation"
    assert found["custom_hostname_id"] == "cf-1"
    assert found["custom_origin_server"] == "acme-home.pages.dev"
    assert found["ssl_method"] == "txt" and found["verification_token"] == "token-9"
    assert found["status_since"] == iso(rig.cf.clock.now())
    assert found["recreate_count"] == 0
    [site] = await rig.rows("SELECT * FROM sites WHERE id = ?", (PROJECT,))
    assert site["pages_project"] == PROJECT and site["tenant_id"] == "acme"
    assert len(rig.cf.calls()) == calls, "a record action must not call Cloudflare"


async def test_a_record_replaces_a_stale_id_and_counts_the_recreation_whose_record_was_lost(
    rig: Rig,
) -> None:
    await seed_domain(rig, status="active")
    await rig.db.execute(
        "UPDATE domains SET recreate_count = 1, retry_count = 2, "
        "custom_origin_server = 'elsewhere.pages.dev' WHERE domain = ?",
        (HOST,),
    )
    outcome = await rig.run(record("active", "active", id="cf-2", origin="acme-home.pages.dev"))
    assert outcome.status is Status.APPLIED
    found = await row(rig)
    assert found["custom_hostname_id"] == "cf-2"
    assert found["custom_origin_server"] == "acme-home.pages.dev"
    # the zone holds another id than the recorded one: a recreation happened (its own record
    # was lost to a crash), so it is counted; retries are not touched
    assert found["recreate_count"] == 2 and found["retry_count"] == 2
    assert found["status_since"] == "2026-01-01T00:00:00Z"  # same status: the clock stays
    await rig.db.execute(
        "UPDATE domains SET custom_origin_server = 'elsewhere.pages.dev' WHERE domain = ?", (HOST,)
    )
    await rig.run(record("active", "active", id="cf-2", origin="acme-home.pages.dev"))
    assert (await row(rig))["recreate_count"] == 2  # same id, only the origin: not a recreation


async def test_a_deleted_record_marks_the_row_deleted_once(rig: Rig) -> None:
    await seed_domain(rig, status="active")
    calls = len(rig.cf.calls())
    mark = make_action(
        ActionKind.RECORD_HOSTNAME,
        f"Hostname/{HOST}",
        {"hostname": HOST, "site": PROJECT, "status": "deleted"},
    )
    outcome = await rig.run(mark)
    assert outcome.status is Status.APPLIED, outcome.message
    found = await row(rig)
    assert found["status"] == "deleted" and found["custom_hostname_id"] is None
    assert found["status_since"] == iso(rig.cf.clock.now())
    rig.cf.clock.advance(30)
    again = await rig.run(mark, resumed=True)
    assert again.status is Status.UNCHANGED
    assert (await row(rig))["status_since"] == found["status_since"]
    assert len(rig.cf.calls()) == calls, "a record action must not call Cloudflare"


async def test_a_record_without_the_row_facts_is_refused(rig: Rig) -> None:
    outcome = await rig.run(record("active", "active", site=None))
    assert outcome.status is Status.FAILED_PERMANENT
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
