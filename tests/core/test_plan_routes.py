"""The routing table and the dispatch Worker platform in the plan (core/plan_routes.py,
core/plan_platform.py): literal observations, no I/O."""

from __future__ import annotations

from test_plan import converged_world, kinds, plan_for

from reconciler.core.observed import Source, TenantRecord
from reconciler.core.plan import ActionKind, PlanSettings
from reconciler.core.routing import DesiredPlatform, ObservedPlatform

from support.core import NOW, billing, hostname, invoice, served, suspended

PLATFORM = DesiredPlatform(
    script="sitebuilder-dispatch",
    script_hash="sha256:" + "a" * 64,
    namespace="sitebuilder-routes",
    route_pattern="*/*",
    fallback_origin="service.sitebuilder.com",
)
SET_UP = ObservedPlatform(
    namespace_id="ns1",
    script_hash=PLATFORM.script_hash,
    script_namespace="ns1",
    route_id="r1",
    route_script="sitebuilder-dispatch",
    fallback_origin="service.sitebuilder.com",
    fallback_status="active",
)
DECLARED = PlanSettings(platform=PLATFORM)


def test_a_platform_as_declared_plans_nothing() -> None:
    assert plan_for(converged_world(platform=SET_UP), settings=DECLARED).is_empty


def test_an_empty_account_gets_the_platform_in_order_before_any_routing_write() -> None:
    empty = ObservedPlatform(
        namespace_id=None,
        script_hash=None,
        script_namespace=None,
        route_id=None,
        route_script=None,
        fallback_origin=None,
    )
    plan = plan_for(converged_world(platform=empty, routes={}), settings=DECLARED)
    order = [a.kind for a in plan.actions]
    assert order == [
        ActionKind.CREATE_ROUTES_NAMESPACE,
        ActionKind.DEPLOY_WORKER,
        ActionKind.SET_WORKER_ROUTE,
        ActionKind.SET_FALLBACK_ORIGIN,
        ActionKind.WRITE_ROUTES,
    ]
    by_kind = {a.kind: a for a in plan.actions}
    assert (
        by_kind[ActionKind.CREATE_ROUTES_NAMESPACE].id
        in by_kind[ActionKind.DEPLOY_WORKER].depends_on
    )
    assert by_kind[ActionKind.DEPLOY_WORKER].id in by_kind[ActionKind.SET_WORKER_ROUTE].depends_on
    write = by_kind[ActionKind.WRITE_ROUTES]
    assert {a.id for a in plan.actions if a is not write} <= set(write.depends_on)


def test_worker_route_and_fallback_drift_each_plan_their_fix() -> None:
    drifted = ObservedPlatform(
        namespace_id="ns1",
        script_hash="sha256:" + "b" * 64,
        script_namespace="ns1",
        route_id="r1",
        route_script="someone-else",
        fallback_origin="old.sitebuilder.com",
    )
    plan = plan_for(converged_world(platform=drifted), settings=DECLARED)
    assert kinds(plan) == [
        ("deploy_worker", "Platform/worker:sitebuilder-dispatch"),
        ("set_worker_route", "Platform/route:*/*"),
        ("set_fallback_origin", "Platform/fallback-origin"),
    ]
    deploy, route, fallback = plan.actions
    assert "runs version bbbbbbbbbbbb, the repository ships aaaaaaaaaaaa" in deploy.reason
    assert route.after["id"] == "r1" and "runs someone-else" in route.reason
    assert fallback.after == {"origin": "service.sitebuilder.com"}


def test_a_worker_bound_to_another_namespace_is_redeployed() -> None:
    other = ObservedPlatform(
        namespace_id="ns1",
        script_hash=PLATFORM.script_hash,
        script_namespace="ns-old",
        route_id="r1",
        route_script="sitebuilder-dispatch",
        fallback_origin="service.sitebuilder.com",
    )
    plan = plan_for(converged_world(platform=other), settings=DECLARED)
    assert kinds(plan) == [("deploy_worker", "Platform/worker:sitebuilder-dispatch")]
    assert "binds another KV namespace" in plan.actions[0].reason


def test_an_unreadable_platform_blocks_every_platform_action() -> None:
    world = converged_world(platform=None, incomplete={Source.PLATFORM: "HTTP 503"})
    plan = plan_for(world, settings=DECLARED)
    assert plan.actions == ()
    assert {b.kind for b in plan.blocked} == {
        ActionKind.CREATE_ROUTES_NAMESPACE,
        ActionKind.DEPLOY_WORKER,
        ActionKind.SET_WORKER_ROUTE,
        ActionKind.SET_FALLBACK_ORIGIN,
    }
    assert all(b.gate == "incomplete" and "HTTP 503" in b.reason for b in plan.blocked)


def test_a_hard_lock_of_25000_hostnames_is_one_action_of_three_kv_requests() -> None:
    names = [f"h{i:05d}.acme-home.com" for i in range(25_000)]
    world = converged_world(
        billing=billing(invoice("cus_acme", days=15)),
        tenants={"acme": TenantRecord(name="acme", access="soft_locked")},
        hostnames={n: hostname(n) for n in names},
        routes=served(*names),
    )
    plan = plan_for(world, domains=names)
    [write] = [a for a in plan.actions if a.kind is ActionKind.WRITE_ROUTES]
    assert len(write.after["put"]) == 25_000  # type: ignore[arg-type]
    assert "in 3 KV bulk requests" in write.reason
    assert not [a for a in plan.actions if a.kind is ActionKind.UPDATE_HOSTNAME]


def test_someone_elses_hostname_named_by_a_spec_gets_no_entry_and_loses_ours() -> None:
    theirs = hostname("shop.acme-home.com", owned=False, site=None, tenant=None)
    world = converged_world(
        hostnames={"www.acme-home.com": hostname("www.acme-home.com"), theirs.hostname: theirs},
        routes=served("www.acme-home.com", "shop.acme-home.com"),
    )
    plan = plan_for(world, domains=["www.acme-home.com", "shop.acme-home.com"])
    [write] = plan.actions
    assert write.kind is ActionKind.WRITE_ROUTES
    assert write.after["put"] == {} and write.after["delete"] == ["shop.acme-home.com"]
    [conflict] = plan.blocked
    assert conflict.gate == "conflict" and conflict.target == "Hostname/shop.acme-home.com"


def test_an_entry_whose_hostname_left_the_zone_and_the_specs_is_removed() -> None:
    world = converged_world(routes={**served("www.acme-home.com"), **served("gone.acme-home.com")})
    [write] = plan_for(world).actions
    assert write.after == {
        "tenant": "acme",
        "put": {},
        "delete": ["gone.acme-home.com"],
        "records": {},
    }


def test_no_entry_is_removed_while_the_table_could_not_be_listed() -> None:
    world = converged_world(routes={}, incomplete={Source.ROUTES: "HTTP 503"})
    plan = plan_for(world, domains=["www.acme-home.com", "new.acme-home.com"])
    assert plan.actions == ()
    gates = {(b.kind, b.gate) for b in plan.blocked}
    assert gates == {
        (ActionKind.WRITE_ROUTES, "incomplete"),
        (ActionKind.CREATE_HOSTNAME, "incomplete"),
    }


def test_an_unlocked_tenants_entries_serve_again_without_touching_hostnames() -> None:
    world = converged_world(
        tenants={"acme": TenantRecord(name="acme", access="hard_locked")},
        hostnames={"www.acme-home.com": hostname("www.acme-home.com", locked=True)},
        routes=suspended("www.acme-home.com"),
    )
    plan = plan_for(world)
    assert [a.kind for a in plan.actions] == [ActionKind.UNLOCK, ActionKind.WRITE_ROUTES]
    assert plan.planned_at == NOW
