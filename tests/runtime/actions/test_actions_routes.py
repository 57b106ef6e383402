"""Routing handlers against the Cloudflare simulator's KV and Workers, and a migrated D1.

``write_routes`` (bulk writes of 10,000 per request, removals, the ``domains`` statuses it
records, a missing namespace), the routing entry a ``delete_hostname`` removes, and the
platform kinds: namespace, Worker deploy (with the bindings the observer reads back), route and
fallback origin.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from reconciler.core.outcome import Status
from reconciler.core.plan import ActionKind, JsonValue
from reconciler.providers.cloudflare_workers import WorkersClient
from reconciler.runtime.actions import RoutingConfig

from support.actions import PROJECT, Checkpoints, Rig, make_action

HOST = "www.acmebakery.com"
NAMESPACE = "sitebuilder-routes"
SERVE: dict[str, JsonValue] = {
    "action": "serve",
    "project": PROJECT,
    "site": PROJECT,
    "tenant": "acme",
}
SUSPEND: dict[str, JsonValue] = {"action": "suspend", "tenant": "acme"}
WORKER = b"export default { async fetch(request, env) { return new Response('ok'); } };\n"


def namespace(rig: Rig) -> Any:
    return rig.cf.sim.kv.create(NAMESPACE)


def table(ns: Any) -> dict[str, Any]:
    return {key: json.loads(entry.value) for key, entry in ns.entries.items()}


def kv_calls(rig: Rig, method: str, suffix: str) -> int:
    return sum(
        1
        for c in rig.cf.calls()
        if c["method"] == method
        and c["route"].endswith("/storage/kv/namespaces/{namespace_id}" + suffix)
    )


def write(put: dict[str, JsonValue], delete: list[JsonValue], **records: str) -> Any:
    return make_action(
        ActionKind.WRITE_ROUTES,
        "Routes/acme",
        {"tenant": "acme", "put": put, "delete": delete, "records": dict(records)},
    )


async def test_a_thousand_entries_are_one_bulk_request_with_value_and_metadata(rig: Rig) -> None:
    ns = namespace(rig)
    names = [f"h{i:04d}.acmebakery.com" for i in range(1000)]
    checkpoints = Checkpoints()
    outcome = await rig.run(write(dict.fromkeys(names, SUSPEND), []), checkpoints=checkpoints)
    assert outcome.status is Status.APPLIED, outcome.message
    assert outcome.data["requests"] == 1
    assert kv_calls(rig, "PUT", "/bulk") == 1
    assert table(ns) == dict.fromkeys(names, SUSPEND)
    assert ns.entries[names[0]].metadata == SUSPEND
    assert checkpoints.passed == ["routes.after-write"]
    assert "within about 60 s" in outcome.message


async def test_ten_thousand_and_one_entries_take_two_requests(rig: Rig) -> None:
    namespace(rig)
    names = [f"h{i:05d}.acmebakery.com" for i in range(10_001)]
    outcome = await rig.run(write(dict.fromkeys(names, SERVE), []))
    assert outcome.status is Status.APPLIED, outcome.message
    assert kv_calls(rig, "PUT", "/bulk") == 2


async def test_removals_go_in_one_bulk_delete_and_repeat_harmlessly(rig: Rig) -> None:
    ns = namespace(rig)
    await rig.run(write({HOST: SERVE, "old.acmebakery.com": SERVE}, []))
    remove = write({}, ["old.acmebakery.com"])
    assert (await rig.run(remove)).status is Status.APPLIED
    assert (await rig.run(remove, resumed=True)).status is Status.APPLIED
    assert table(ns) == {HOST: SERVE}
    assert kv_calls(rig, "POST", "/bulk/delete") == 2


async def test_the_statuses_a_lock_implies_are_recorded_in_one_batch(rig: Rig) -> None:
    namespace(rig)
    created = await rig.run(
        make_action(
            ActionKind.CREATE_HOSTNAME,
            f"Hostname/{HOST}",
            {"hostname": HOST, "site": PROJECT, "tenant": "acme", "ssl_method": "http"},
        )
    )
    assert created.status is Status.APPLIED, created.message
    outcome = await rig.run(write({HOST: SUSPEND}, [], **{HOST: "suspended"}))
    assert outcome.status is Status.APPLIED, outcome.message
    [row] = await rig.rows("SELECT status FROM domains WHERE domain = ?", (HOST,))
    assert row["status"] == "suspended"


async def test_a_missing_namespace_fails_permanently_and_writes_nothing(rig: Rig) -> None:
    outcome = await rig.run(write({HOST: SERVE}, []))
    assert outcome.status is Status.FAILED_PERMANENT
    assert f"KV namespace {NAMESPACE} does not exist" in outcome.message
    assert kv_calls(rig, "PUT", "/bulk") == 0


async def test_concurrent_writes_look_the_namespace_up_once(rig: Rig) -> None:
    # a tenant batch runs its routing writes side by side; one lookup serves them all, so a
    # failed listing is retried by one caller, not by each (the chaos test's hot-retry rule)
    namespace(rig)
    hosts = [f"h{i}.acmebakery.com" for i in range(5)]
    outcomes = await asyncio.gather(*(rig.run(write({host: SERVE}, [])) for host in hosts))
    assert [o.status for o in outcomes] == [Status.APPLIED] * 5
    listings = [
        c
        for c in rig.cf.calls()
        if c["method"] == "GET" and c["route"].endswith("/storage/kv/namespaces")
    ]
    assert len(listings) == 1


async def test_a_delete_removes_its_routing_entry(rig: Rig) -> None:
    ns = namespace(rig)
    made = await rig.run(
        make_action(
            ActionKind.CREATE_HOSTNAME,
            f"Hostname/{HOST}",
            {"hostname": HOST, "site": PROJECT, "tenant": "acme", "ssl_method": "http"},
        )
    )
    await rig.run(write({HOST: SERVE}, []))
    remove = make_action(
        ActionKind.DELETE_HOSTNAME,
        f"Hostname/{HOST}",
        {"id": made.data["id"], "hostname": HOST, "site": PROJECT, "route": True},
    )
    outcome = await rig.run(remove)
    assert outcome.status is Status.APPLIED, outcome.message
    assert table(ns) == {}
    [row] = await rig.rows("SELECT status FROM domains WHERE domain = ?", (HOST,))
    assert row["status"] == "deleted"


async def test_the_platform_is_set_up_in_order_and_reads_back(rig: Rig) -> None:
    rigged = rig.with_routing(RoutingConfig(worker_source=WORKER))
    fallback = f"service.{rig.cf.sim.config.zone_name}"  # a name of the zone (1552 otherwise)
    steps = [
        (ActionKind.CREATE_ROUTES_NAMESPACE, {"namespace": NAMESPACE}),
        (
            ActionKind.DEPLOY_WORKER,
            {"script": "sitebuilder-dispatch", "hash": "sha256:abc", "namespace": NAMESPACE},
        ),
        (ActionKind.SET_WORKER_ROUTE, {"pattern": "*/*", "script": "sitebuilder-dispatch"}),
        (ActionKind.SET_FALLBACK_ORIGIN, {"origin": fallback}),
    ]
    for kind, after in steps:
        outcome = await rigged.run(make_action(kind, f"Platform/{kind}", after))
        assert outcome.status is Status.APPLIED, (kind, outcome.message)
    workers = WorkersClient(rig.world.cloudflare)
    settings = await workers.script_settings("sitebuilder-dispatch")
    [ns] = rig.cf.sim.kv.namespaces.values()
    assert settings is not None
    assert settings.version == "sha256:abc" and settings.namespace_id == ns.id
    [route] = await workers.list_routes()
    assert (route.pattern, route.script) == ("*/*", "sitebuilder-dispatch")
    found = await workers.fallback_origin()
    assert found is not None and found.origin == fallback
    again = await rigged.run(
        make_action(ActionKind.CREATE_ROUTES_NAMESPACE, "Platform/kv", {"namespace": NAMESPACE})
    )
    assert again.status is Status.APPLIED and len(rig.cf.sim.kv.namespaces) == 1


async def test_a_worker_without_a_source_or_refused_is_a_clear_failure(rig: Rig) -> None:
    namespace(rig)
    deploy = make_action(
        ActionKind.DEPLOY_WORKER,
        "Platform/worker:sitebuilder-dispatch",
        {"script": "sitebuilder-dispatch", "hash": "sha256:abc", "namespace": NAMESPACE},
    )
    missing = await rig.run(deploy)
    assert missing.status is Status.FAILED_PERMANENT
    assert "ROUTING_WORKER_SOURCE" in missing.message
    refused = await rig.with_routing(RoutingConfig(worker_source=b"const x = 1;\n")).run(deploy)
    assert refused.status is Status.FAILED_PERMANENT
    assert "10068" in refused.message or "10021" in refused.message
