"""A daemon pass costs what its scope costs: one scoped derive, the gateway read only when due.

Against the sandbox and the example fleet (``conftest.py``): a billing-sweep pass for one tenant
derives once, only that tenant and its sites; it reads the WhatsApp gateway's connection state
only when a dunning step is due and not logged; an ``open`` answer is reused for
``LoopSettings.gateway_ttl`` seconds, a ``close`` answer never is, and nothing is sent while the
gateway is closed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pytest

from reconciler.core.desired import Desired, derive
from reconciler.core.facts import CustomerBilling
from reconciler.providers.ratelimit import Lane
from reconciler.runtime import loop
from reconciler.runtime.loop import LoopSettings, PassResult
from reconciler.spec.load import Specs

from support.daemon import DaemonFactory, Fleet, Running, wait_for

DAY = 86400.0
SETTINGS = LoopSettings(interval=3600.0, workers=2, grace=10.0, lease_poll=0.2)


def gateway_reads(fleet: Fleet, since: int = 0) -> int:
    calls = fleet.sandbox.evolution.calls_since(since)
    return sum(1 for c in calls if c["route"].startswith("/instance/connectionState"))


def last_seq(fleet: Fleet) -> int:
    calls = fleet.sandbox.evolution.calls_since()
    return max((int(c["seq"]) for c in calls), default=0)


async def converged_start(running: Running, fleet: Fleet) -> None:
    await wait_for(fleet.converged, within=90.0, what="the first full pass to converge")
    await wait_for(lambda: not running.daemon.queue.processing, what="the passes to finish")


async def billing_pass(running: Running, tenant: str) -> PassResult:
    """Queue ``Tenant/<tenant>`` as the billing sweep does and wait for its pass."""
    key = f"Tenant/{tenant}"
    before = sum(1 for p in running.daemon.passes if p.key == key)
    running.daemon.queue.add(key, Lane.SWEEP)
    await wait_for(
        lambda: sum(1 for p in running.daemon.passes if p.key == key) > before,
        what=f"the pass of {key}",
    )
    return [p for p in running.daemon.passes if p.key == key][-1]


async def test_a_billing_pass_derives_once_and_only_its_tenants_sites(
    fleet: Fleet, start_daemon: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    derived: list[Desired] = []

    def spy(
        specs: Specs,
        billing: Mapping[str, CustomerBilling],
        *,
        now: float,
        scope: Collection[str] | None = None,
        tenants: Collection[str] = (),
    ) -> Desired:
        result = derive(specs, billing, now=now, scope=scope, tenants=tenants)
        derived.append(result)
        return result

    async with start_daemon(settings=SETTINGS) as running:
        await converged_start(running, fleet)
        specs = running.daemon.specs
        assert specs is not None
        monkeypatch.setattr(loop, "derive", spy)
        result = await billing_pass(running, "acme")
        assert result.ok, result.failed
        [desired] = derived
        acme_sites = {n for n, s in specs.sites.items() if s.spec.tenant == "acme"}
        assert acme_sites and len(acme_sites) < len(specs.sites)
        assert set(desired.sites) == acme_sites
        assert set(desired.tenants) == {"acme"}
        assert desired.scope == frozenset(acme_sites)


async def test_a_billing_pass_with_nothing_due_does_not_read_the_gateway(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon(settings=SETTINGS) as running:
        await converged_start(running, fleet)
        since = last_seq(fleet)
        result = await billing_pass(running, "acme")
        assert result.ok, result.failed
        assert result.report is not None
        assert gateway_reads(fleet, since) == 0
        reason = result.report.plan.incomplete.get("whatsapp", "")
        assert "read only when a message is due" in reason


def make_past_due(fleet: Fleet, tenant: str, days: float) -> Any:
    local = fleet.sandbox.stripe
    past_due = local.make_past_due(fleet.seeded.stripe[tenant].subscription)
    assert past_due.invoice is not None
    local.backdate_invoice(past_due.invoice, fleet.sandbox.clock.now() - days * DAY)
    return past_due


async def test_a_due_step_reads_the_gateway_sends_nothing_while_closed_and_sends_once_open(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    evolution = fleet.sandbox.evolution
    make_past_due(fleet, "acme", days=1)  # the day-0 step is due, no lock yet
    evolution.disconnect()
    async with start_daemon(settings=SETTINGS) as running:
        await converged_start(running, fleet)
        assert gateway_reads(fleet) >= 1  # the full pass had a step due: it looked
        assert evolution.messages_since() == []
        since = last_seq(fleet)
        await billing_pass(running, "acme")
        assert gateway_reads(fleet, since) == 1  # a "close" answer is never reused
        assert evolution.messages_since() == []

        evolution.connect()
        since = last_seq(fleet)
        result = await billing_pass(running, "acme")
        assert gateway_reads(fleet, since) == 1
        assert result.ok, result.failed
        assert len(evolution.messages_since()) == 1

        since = last_seq(fleet)
        await billing_pass(running, "acme")  # the step is logged: nothing is due
        assert gateway_reads(fleet, since) == 0
        assert len(evolution.messages_since()) == 1


async def test_an_open_gateway_answer_is_reused_within_the_ttl_and_a_closed_one_is_not(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    evolution = fleet.sandbox.evolution
    async with start_daemon(settings=SETTINGS) as running:
        await converged_start(running, fleet)
        evolution.disconnect()
        since = last_seq(fleet)
        first = await running.daemon._gateway_gap()
        second = await running.daemon._gateway_gap()
        assert first is not None and "close" in first
        assert second == first
        assert gateway_reads(fleet, since) == 2

        evolution.connect()
        since = last_seq(fleet)
        assert await running.daemon._gateway_gap() is None
        assert await running.daemon._gateway_gap() is None
        assert gateway_reads(fleet, since) == 1  # reused: within gateway_ttl (60 s)
