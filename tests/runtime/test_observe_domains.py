"""observe() joins D1 ``domains`` rows onto the zone, and lists rows the zone no longer shows.

Against the Cloudflare simulator and a SQLite D1 converged with ``bench/converged.py``: each
observed hostname carries its row's id, origin and site; a row (not ``deleted``) whose hostname
a complete listing did not show is in ``Observed.unlisted_domains``, which the planner turns into
a ``record_hostname`` marking it deleted, or a create counted as a recreation when the hostname
is declared. A failed listing, or a scoped observation that did not look the name up, lists
no such row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from reconciler.core.desired import derive
from reconciler.core.observed import Observed, Source
from reconciler.core.plan import ActionKind, Plan, build_plan
from reconciler.runtime.observe import observe
from reconciler.sandbox.faults import FaultRule
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.spec.load import Specs

from support.plan import EXAMPLE_SPECS, clients, close, converged, example_specs

GONE = "old.acmebakery.com"  # a row of acme-home whose hostname is in no spec and no zone


async def observe_and_plan(world: Sandbox, specs: Specs, **kwargs: object) -> tuple[Observed, Plan]:
    customers = [t.spec.stripe.customer for t in specs.tenants.values()]
    observers = clients(world, stripe=converged.FakeStripe(customers))
    try:
        now = world.clock.now()
        observed = await observe(specs, clients=observers, now=now, **kwargs)  # type: ignore[arg-type]
    finally:
        await close(observers)
    return observed, build_plan(derive(specs, observed.billing, now=now), observed)


@pytest.fixture
def specs() -> Specs:
    return example_specs()


@pytest.fixture
def world(specs: Specs) -> Iterator[Sandbox]:
    """The example fleet converged: zone, D1 (domains rows with the zone's ids) and Pages."""
    with Sandbox(with_stripe=False, projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        converged.converge(sandbox.cloudflare, sandbox.cloudflare.d1_path, specs)
        yield sandbox


def execute(world: Sandbox, sql: str, params: tuple[object, ...] = ()) -> None:
    connection = sqlite3.connect(world.cloudflare.d1_path)
    try:
        with connection:
            connection.execute(sql, params)
    finally:
        connection.close()


def add_gone_row(world: Sandbox) -> None:
    execute(
        world,
        "INSERT INTO domains (id, site_id, tenant_id, domain, status, custom_hostname_id, "
        "custom_origin_server) VALUES (?, 'acme-home', 'acme', ?, 'active', 'cf-gone', "
        "'acme-home.pages.dev')",
        (f"dom_{GONE}", GONE),
    )


def records(plan: Plan) -> list[tuple[str, object]]:
    return [
        (a.target, a.after.get("status"))
        for a in plan.actions
        if a.kind is ActionKind.RECORD_HOSTNAME
    ]


async def test_each_observed_hostname_carries_its_rows_id_origin_and_site(
    world: Sandbox, specs: Specs
) -> None:
    observed, plan = await observe_and_plan(world, specs)
    assert observed.hostnames and observed.unlisted_domains == {}
    for have in observed.hostnames.values():
        assert have.recorded_id == have.id
        assert have.recorded_origin == have.origin
        assert have.recorded_site == have.site
    assert plan.is_empty


async def test_rows_of_hostnames_gone_from_the_zone_are_listed_and_planned(
    world: Sandbox, specs: Specs
) -> None:
    add_gone_row(world)
    sim = world.cloudflare
    vanished = sim.hostnames.by_name["www.acmebakery.com"]
    sim.hostnames.delete(vanished)  # a recreation killed between its delete and create
    execute(world, "UPDATE domains SET recreate_count = 1 WHERE domain = 'www.acmebakery.com'")
    observed, plan = await observe_and_plan(world, specs)
    assert set(observed.unlisted_domains) == {GONE, "www.acmebakery.com"}
    assert observed.unlisted_domains[GONE].custom_hostname_id == "cf-gone"
    assert records(plan) == [(f"Hostname/{GONE}", "deleted")]
    [create] = [a for a in plan.actions if a.kind is ActionKind.CREATE_HOSTNAME]
    assert create.target == "Hostname/www.acmebakery.com"
    assert create.after["recreate_count"] == 2


async def test_a_failed_listing_lists_no_row_as_gone(world: Sandbox, specs: Specs) -> None:
    add_gone_row(world)
    world.cloudflare.faults.set([FaultRule(path_prefix="/zones", error_rate=1.0, error_status=503)])
    observed, plan = await observe_and_plan(world, specs)
    assert Source.HOSTNAMES in observed.incomplete
    assert observed.unlisted_domains == {}
    assert records(plan) == []


async def test_a_scoped_observation_lists_only_the_rows_it_looked_up(
    world: Sandbox, specs: Specs
) -> None:
    add_gone_row(world)
    narrow, narrow_plan = await observe_and_plan(world, specs, scope={"acme-home"})
    asked, asked_plan = await observe_and_plan(world, specs, scope={"acme-home"}, hostnames=(GONE,))
    assert narrow.unlisted_domains == {} and records(narrow_plan) == []
    assert set(asked.unlisted_domains) == {GONE}
    assert records(asked_plan) == [(f"Hostname/{GONE}", "deleted")]
