"""observe() looks DNS up for hostnames that are stuck or past their validation timeout.

Against the sandbox (no localstripe) converged to the example fleet: one hostname is made
late (pending in the zone, its ``domains`` row two days old) and its DNS record removed or
pointed elsewhere; the observer asks the sandbox DNS (through the control endpoint) about
that hostname only, and the plan's retry reason says what the customer's DNS is missing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace

import pytest

from reconciler.core.desired import derive
from reconciler.core.observed import Observed
from reconciler.core.plan import ActionKind, Plan, build_plan
from reconciler.providers.dns import Resolver, SandboxResolver
from reconciler.runtime.observe import ObserveLimits, observe
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.spec.load import Specs

from support.plan import EXAMPLE_SPECS, clients, close, converged, example_specs

HOST = "www.acmebakery.com"


@pytest.fixture
def specs() -> Specs:
    return example_specs()


@pytest.fixture
def world(specs: Specs) -> Iterator[Sandbox]:
    """The converged example fleet with HOST pending for two days and no DNS record."""
    with Sandbox(with_stripe=False, projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        sim = sandbox.cloudflare
        converged.converge(sim, sim.d1_path, specs)
        sim.hostnames.delete(sim.hostnames.by_name[HOST])
        sim.dns.delete(HOST)
        made = sim.add_hostname(HOST)  # ours: its domains row records the id below
        connection = sqlite3.connect(sim.d1_path)
        with connection:
            connection.execute(
                "UPDATE domains SET status = 'pending_validation', custom_hostname_id = ?, "
                "status_since = '2020-01-01T00:00:00Z' WHERE domain = ?",
                (made["id"], HOST),
            )
        connection.close()
        yield sandbox


async def observe_and_plan(
    world: Sandbox, specs: Specs, resolver: Resolver | None, **limits: int
) -> tuple[Observed, Plan]:
    observers = clients(world, stripe=converged.FakeStripe([]))
    observers = replace(observers, dns=resolver, cname_target=world.cloudflare_config.cname_target)
    try:
        now = world.clock.now()
        observed = await observe(specs, clients=observers, now=now, limits=ObserveLimits(**limits))
    finally:
        await close(observers)
    return observed, build_plan(derive(specs, observed.billing, now=now), observed)


def retry_reason(plan: Plan) -> str:
    [retry] = [a for a in plan.actions if a.kind is ActionKind.RETRY_VALIDATION]
    assert retry.target == f"Hostname/{HOST}"
    return retry.reason


async def test_only_the_late_hostname_is_looked_up_and_its_missing_cname_is_named(
    world: Sandbox, specs: Specs
) -> None:
    observed, plan = await observe_and_plan(world, specs, SandboxResolver(world.control_url))
    late = observed.hostnames[HOST]
    assert late.dns_checked and late.dns_cname is None
    assert [h for h, seen in observed.hostnames.items() if seen.dns_checked] == [HOST]
    assert observed.cname_target == "customers.sitebuilder-sandbox.test"
    assert (
        f"{HOST} has no CNAME (expected a CNAME to customers.sitebuilder-sandbox.test)"
        in retry_reason(plan)
    )


async def test_a_cname_to_another_host_is_reported(world: Sandbox, specs: Specs) -> None:
    world.dns.put(HOST, cname="parked.registrar.test")
    observed, plan = await observe_and_plan(world, specs, SandboxResolver(world.control_url))
    assert observed.hostnames[HOST].dns_cname == "parked.registrar.test"
    assert (
        "CNAME points to parked.registrar.test, expected customers.sitebuilder-sandbox.test"
        in retry_reason(plan)
    )


async def test_no_lookup_beyond_the_per_pass_bound(world: Sandbox, specs: Specs) -> None:
    observed, plan = await observe_and_plan(
        world, specs, SandboxResolver(world.control_url), dns_checks=0
    )
    assert not observed.hostnames[HOST].dns_checked
    assert "has no CNAME" not in retry_reason(plan)


async def test_a_failing_resolver_leaves_the_hostname_unchecked_and_the_plan_complete(
    world: Sandbox, specs: Specs
) -> None:
    dead = SandboxResolver("http://127.0.0.1:9/__sandbox", timeout=2.0)
    observed, plan = await observe_and_plan(world, specs, dead)
    assert not observed.hostnames[HOST].dns_checked
    assert observed.incomplete == {}
    assert "has no CNAME" not in retry_reason(plan)
