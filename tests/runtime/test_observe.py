"""observe() against the Cloudflare and Evolution simulators, a migrated SQLite D1, fake Stripe."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.desired import derive
from reconciler.core.observed import Observed, Source
from reconciler.core.plan import ActionKind, Plan, build_plan
from reconciler.core.render import Rate, render_text
from reconciler.errors import MigrationError
from reconciler.runtime.observe import observe
from reconciler.sandbox.faults import FaultRule
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.spec.load import Specs

from support.plan import EXAMPLE_SPECS, clients, close, converged, example_specs

RATES = {"cloudflare": Rate(1200, 300.0)}


@pytest.fixture
def world() -> Iterator[Sandbox]:
    """The sandbox (no localstripe) with the example fleet's projects, D1 not yet migrated."""
    with Sandbox(with_stripe=False, projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        yield sandbox


@pytest.fixture
def specs() -> Specs:
    return example_specs()


@pytest.fixture
def converged_world(world: Sandbox, specs: Specs) -> Sandbox:
    converged.converge(world.cloudflare, world.cloudflare.d1_path, specs)
    world.cloudflare.clear_calls()
    return world


def customers(specs: Specs) -> list[str]:
    return [t.spec.stripe.customer for t in specs.tenants.values()]


async def observe_and_plan(world: Sandbox, specs: Specs, **kwargs: object) -> tuple[Observed, Plan]:
    observers = clients(world, stripe=converged.FakeStripe(customers(specs)))
    try:
        now = world.clock.now()
        observed = await observe(specs, clients=observers, now=now, **kwargs)  # type: ignore[arg-type]
    finally:
        await close(observers)
    return observed, build_plan(derive(specs, observed.billing, now=now), observed)


def cf_routes(world: Sandbox) -> list[str]:
    return [f"{c['method']} {c['route']}" for c in world.cloudflare.calls_since(0)]


async def test_a_converged_world_is_observed_complete_and_plans_nothing(
    converged_world: Sandbox, specs: Specs
) -> None:
    observed, plan = await observe_and_plan(converged_world, specs)
    assert observed.incomplete == {}
    assert set(observed.hostnames) == {
        d.canonical for s in specs.sites.values() for d in s.spec.domains
    }
    assert all(h.owned and h.status == "active" for h in observed.hostnames.values())
    assert plan.is_empty, render_text(plan, rates=RATES)
    # Only the hostname and routing-table listings: the ledger agrees, so no Pages project is
    # read (the namespace id is configured, so it is not looked up by title).
    assert sorted(cf_routes(converged_world)) == [
        "GET /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/keys",
        "GET /zones/{zone_id}/custom_hostnames",
    ]


async def test_a_version_bump_reads_pages_for_that_site_only_and_builds_it_in_memory(
    converged_world: Sandbox, specs: Specs
) -> None:
    sqlite = sqlite3.connect(converged_world.cloudflare.d1_path)
    with sqlite:
        sqlite.execute(
            "UPDATE publish_versions SET version_number = 11 WHERE site_id = 'acme-home' "
            "AND environment = 'production'"
        )
    sqlite.close()
    observed, plan = await observe_and_plan(converged_world, specs)
    assert set(observed.projects) == {"acme-home"}
    assert observed.projects["acme-home"].deployments == ()
    assert ("acme-home", 12) in observed.builds
    assert observed.builds[("acme-home", 12)].error is None
    assert [(a.kind, a.target) for a in plan.actions] == [
        (ActionKind.PUBLISH, "Site/acme-home:production")
    ]
    routes = cf_routes(converged_world)
    assert routes.count("GET /accounts/{account_id}/pages/projects/{project_name}") == 1
    assert routes.count("GET /accounts/{account_id}/pages/projects/{project_name}/deployments") == 1


async def test_no_create_and_no_delete_when_the_hostname_listing_fails(
    converged_world: Sandbox, specs: Specs
) -> None:
    sim = converged_world.cloudflare
    gone = sim.hostnames.by_name["www.acmebakery.com"]
    sim.hostnames.delete(gone)
    sim.add_hostname("old.acmebakery.com")
    sim.faults.set([FaultRule(path_prefix="/zones", error_rate=1.0, error_status=503)])
    observed, plan = await observe_and_plan(converged_world, specs)
    assert Source.HOSTNAMES in observed.incomplete
    assert not [
        a
        for a in plan.actions
        if a.kind in (ActionKind.CREATE_HOSTNAME, ActionKind.DELETE_HOSTNAME)
    ]
    assert {b.gate for b in plan.blocked} == {"incomplete"}
    text = render_text(plan, rates=RATES)
    assert observed.incomplete[Source.HOSTNAMES] in text


async def test_an_unowned_hostname_is_an_unmanaged_note_and_never_deleted(
    converged_world: Sandbox, specs: Specs
) -> None:
    converged_world.cloudflare.add_hostname("handmade.bakery-friends.com")
    observed, plan = await observe_and_plan(converged_world, specs)
    assert observed.hostnames["handmade.bakery-friends.com"].owned is False
    assert plan.actions == ()
    assert [(n.category, n.target) for n in plan.notes] == [
        ("unmanaged", "Hostname/handmade.bakery-friends.com")
    ]


async def test_a_closed_whatsapp_instance_is_incomplete_with_its_reason(
    converged_world: Sandbox, specs: Specs
) -> None:
    converged_world.evolution.disconnect(converged_world.evolution_instance)
    observed, _ = await observe_and_plan(converged_world, specs)
    assert observed.incomplete == {Source.WHATSAPP: "instance sitebuilder is close"}


async def test_a_scoped_observation_of_one_site_costs_at_most_five_cloudflare_requests(
    converged_world: Sandbox, specs: Specs
) -> None:
    sqlite = sqlite3.connect(converged_world.cloudflare.d1_path)
    with sqlite:
        sqlite.execute("DELETE FROM publish_versions WHERE site_id = 'acme-home'")
    sqlite.close()
    observed, plan = await observe_and_plan(converged_world, specs, scope={"acme-home"})
    assert observed.scope == frozenset({"acme-home"})
    assert set(observed.hostnames) == {"www.acmebakery.com", "acmebakery.com"}
    assert {a.site for a in plan.actions} == {"acme-home"}
    assert len(cf_routes(converged_world)) <= 5


async def test_an_unmigrated_database_is_an_error_that_says_to_migrate(
    world: Sandbox, specs: Specs
) -> None:
    with pytest.raises(MigrationError, match="reconciler migrate"):
        await observe_and_plan(world, specs)


async def test_a_customer_stripe_does_not_know_gets_no_billing_facts(
    converged_world: Sandbox, specs: Specs, tmp_path: Path
) -> None:
    observers = clients(converged_world, stripe=converged.FakeStripe([]))
    try:
        observed = await observe(specs, clients=observers, now=converged_world.clock.now())
    finally:
        await close(observers)
    assert observed.billing == {}
    assert Source.STRIPE not in observed.incomplete
