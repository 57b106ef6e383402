"""Custom hostname handlers against the Cloudflare simulator and a migrated D1 (runbook 2).

Create, update (ssl method), retry validation, recreate and delete, each reading back the zone
(the simulator's state and call log), the routing table and the ``domains`` row; the resumed
cases crash at a checkpoint and run the same action again. Hostnames carry no origin, and
custom metadata only on an entitled account (docs/routing.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.outcome import Status
from reconciler.core.plan import ActionKind, JsonValue
from reconciler.providers.cloudflare_models import MANAGED_BY, MANAGED_BY_KEY
from reconciler.runtime.actions import DELETION_POLICY_KEY, RoutingConfig

from support.actions import PROJECT, Checkpoints, Crash, Rig, make_action

HOST = "www.acmebakery.com"


def after(**more: JsonValue) -> dict[str, JsonValue]:
    base: dict[str, JsonValue] = {
        "hostname": HOST,
        "site": PROJECT,
        "tenant": "acme",
        "ssl_method": "http",
        "suspended": False,
        "deletion_policy": "delete",
        "project": PROJECT,
    }
    base.update(more)
    return base


def action(kind: ActionKind, **more: JsonValue) -> Any:
    return make_action(kind, f"Hostname/{HOST}", after(**more))


async def domain(rig: Rig) -> dict[str, Any]:
    rows = await rig.rows("SELECT * FROM domains WHERE domain = ?", (HOST,))
    assert len(rows) == 1
    return rows[0]


def in_zone(rig: Rig) -> list[dict[str, Any]]:
    store = rig.cf.sim.hostnames
    now = rig.cf.clock.now()
    return [store.to_json(h, now) for h in store.by_id.values() if h.hostname == HOST]


def posts(rig: Rig) -> int:
    return sum(
        1
        for c in rig.cf.calls()
        if c["method"] == "POST" and c["route"] == "/zones/{zone_id}/custom_hostnames"
    )


async def create(rig: Rig) -> str:
    outcome = await rig.run(action(ActionKind.CREATE_HOSTNAME))
    assert outcome.status is Status.APPLIED, outcome.message
    return str(outcome.data["id"])


async def test_a_created_hostname_carries_no_origin_and_no_metadata_and_gets_a_domains_row(
    rig: Rig,
) -> None:
    checkpoints = Checkpoints()
    outcome = await rig.run(action(ActionKind.CREATE_HOSTNAME), checkpoints=checkpoints)

    assert outcome.status is Status.APPLIED, outcome.message
    [made] = in_zone(rig)
    assert not made.get("custom_origin_server")
    assert not made.get("custom_metadata")
    [post] = [c for c in rig.cf.calls() if c["method"] == "POST"]
    assert post["request_json"] == {"hostname": HOST, "ssl": {"method": "http", "type": "dv"}}
    row = await domain(rig)
    assert row["custom_hostname_id"] == made["id"] == outcome.data["id"]
    assert row["status"] == "pending_validation"
    assert row["site_id"] == PROJECT and row["status_since"] is not None
    assert checkpoints.passed == ["hostname.after-create"]


async def test_on_an_entitled_account_a_created_hostname_carries_our_marker(rig: Rig) -> None:
    rig.cf.sim.configure(entitled_custom_metadata=True)  # reset by the next test's fixture
    entitled = rig.with_routing(RoutingConfig(custom_metadata=True))
    outcome = await entitled.run(action(ActionKind.CREATE_HOSTNAME))
    assert outcome.status is Status.APPLIED, outcome.message
    [made] = in_zone(rig)
    assert made["custom_metadata"][MANAGED_BY_KEY] == MANAGED_BY
    assert made["custom_metadata"]["site"] == PROJECT
    assert made["custom_metadata"][DELETION_POLICY_KEY] == "delete"
    assert not made.get("custom_origin_server")


async def test_a_create_resumed_after_the_create_adopts_the_hostname_instead_of_duplicating(
    rig: Rig,
) -> None:
    make = action(ActionKind.CREATE_HOSTNAME)
    with pytest.raises(Crash):
        await rig.run(make, checkpoints=Checkpoints(crash_at="hostname.after-create"))
    assert await rig.rows("SELECT * FROM domains") == []

    outcome = await rig.run(make, resumed=True)

    assert outcome.status is Status.APPLIED
    assert len(in_zone(rig)) == 1
    assert (await domain(rig))["custom_hostname_id"] == in_zone(rig)[0]["id"]


async def test_a_create_meeting_someone_elses_hostname_fails_and_records_nothing(
    rig: Rig,
) -> None:
    rig.cf.sim.add_hostname(HOST)  # made by hand in the zone, between the plan and the apply
    outcome = await rig.run(action(ActionKind.CREATE_HOSTNAME))
    assert outcome.status is Status.FAILED_PERMANENT
    assert "our records do not say we created it" in outcome.message
    assert await rig.rows("SELECT * FROM domains") == []
    assert len(in_zone(rig)) == 1


async def test_an_update_changes_the_ssl_method_without_origin_or_metadata(rig: Rig) -> None:
    hostname_id = await create(rig)
    outcome = await rig.run(
        make_action(
            ActionKind.UPDATE_HOSTNAME,
            f"Hostname/{HOST}",
            after(id=hostname_id, ssl_method="txt"),
            before={"ssl_method": "http"},
        )
    )
    assert outcome.status is Status.APPLIED, outcome.message
    [patch] = [c for c in rig.cf.calls() if c["method"] == "PATCH"]
    assert patch["request_json"] == {"ssl": {"method": "txt", "type": "dv"}}
    [made] = in_zone(rig)
    assert not made.get("custom_origin_server")
    assert not rig.cf.sim.purges


async def test_retrying_validation_patches_the_same_ssl_and_restarts_the_clock(rig: Rig) -> None:
    hostname_id = await create(rig)
    first = await domain(rig)
    rig.cf.clock.advance(2 * 86400)

    outcome = await rig.run(action(ActionKind.RETRY_VALIDATION, id=hostname_id))

    assert outcome.status is Status.APPLIED
    patches = [c for c in rig.cf.calls() if c["method"] == "PATCH"]
    assert [p["request_json"] for p in patches] == [{"ssl": {"method": "http", "type": "dv"}}]
    row = await domain(rig)
    assert row["retry_count"] == 1
    assert row["status_since"] > first["status_since"]


async def test_a_recreate_replaces_the_hostname_and_counts_the_recreation(rig: Rig) -> None:
    old = await create(rig)
    outcome = await rig.run(action(ActionKind.RECREATE_HOSTNAME, id=old, recreate_count=1))
    assert outcome.status is Status.APPLIED
    [made] = in_zone(rig)
    assert made["id"] != old
    row = await domain(rig)
    assert row["custom_hostname_id"] == made["id"] and row["recreate_count"] == 1


async def test_a_recreate_resumed_after_the_delete_creates_exactly_one_hostname(
    rig: Rig,
) -> None:
    old = await create(rig)
    recreate = action(ActionKind.RECREATE_HOSTNAME, id=old, recreate_count=1)
    with pytest.raises(Crash):
        await rig.run(recreate, checkpoints=Checkpoints(crash_at="hostname.after-delete"))
    assert in_zone(rig) == []

    outcome = await rig.run(recreate, resumed=True)
    assert outcome.status is Status.APPLIED
    assert len(in_zone(rig)) == 1

    again = await rig.run(recreate, resumed=True)  # a crash after the create: adopted again
    assert again.status is Status.APPLIED
    assert len(in_zone(rig)) == 1
    assert posts(rig) == 3  # the first create, the recreate's, and one answered "duplicate"
    assert (await domain(rig))["recreate_count"] == 1


async def test_a_recreate_killed_after_its_delete_is_counted_by_the_create_that_follows(
    rig: Rig,
) -> None:
    old = await create(rig)
    recreate = action(ActionKind.RECREATE_HOSTNAME, id=old, recreate_count=1)
    with pytest.raises(Crash):
        await rig.run(recreate, checkpoints=Checkpoints(crash_at="hostname.after-delete"))
    # the next plan sees the hostname missing and its row holding the old id: a create that
    # carries the recreation (core/plan.py rule 7)
    outcome = await rig.run(action(ActionKind.CREATE_HOSTNAME, recreate_count=1))
    assert outcome.status is Status.APPLIED, outcome.message
    [made] = in_zone(rig)
    row = await domain(rig)
    assert row["custom_hostname_id"] == made["id"] != old
    assert row["recreate_count"] == 1


async def test_a_delete_removes_the_hostname_and_marks_the_row_deleted_even_when_repeated(
    rig: Rig,
) -> None:
    hostname_id = await create(rig)
    remove = make_action(
        ActionKind.DELETE_HOSTNAME,
        f"Hostname/{HOST}",
        {"id": hostname_id, "hostname": HOST, "site": PROJECT},
    )
    outcome = await rig.run(remove)
    assert outcome.status is Status.APPLIED
    assert in_zone(rig) == []
    row = await domain(rig)
    assert row["status"] == "deleted" and row["custom_hostname_id"] is None

    again = await rig.run(remove, resumed=True)
    assert again.status is Status.APPLIED


async def test_a_hostname_the_zone_refuses_fails_permanently_with_cloudflares_reason(
    rig: Rig,
) -> None:
    rig.cf.sim.configure(refuse_reserved_tlds=True)  # as Cloudflare does (ROUTING.md §1)
    refused = make_action(
        ActionKind.CREATE_HOSTNAME,
        "Hostname/www.acmebakery.test",
        after(hostname="www.acmebakery.test"),
    )
    outcome = await rig.run(refused)
    assert outcome.status is Status.FAILED_PERMANENT
    assert "1409" in outcome.message
    assert await rig.rows("SELECT * FROM domains") == []
