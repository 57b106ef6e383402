"""The hostname sweeps: the moving sweep lists by status and passes over what moves, within budget.

Unit tests of the budget check (:func:`sweep_periods`) and of the listing reader
(:class:`HostnameSweep`, :class:`Prelisted`) on a fake, then a daemon against the sandbox and
the example fleet (``conftest.py``): a converged fleet's moving sweep sends filtered listings
only, and a hostname stuck pending brings its site, and only its site, into the pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from reconciler.core.lane import Lane
from reconciler.providers.cloudflare_models import CustomHostname, Deployment, PagesProject
from reconciler.runtime.convergence import Convergence
from reconciler.runtime.daemon_sweep import (
    MOVING_HOSTNAME_STATUSES,
    MOVING_SSL_STATUSES,
    HostnameSweep,
    Prelisted,
    sweep_periods,
)
from reconciler.runtime.loop import SWEEP_ALL, SWEEP_HOSTNAMES, SWEEP_MOVING, Daemon, LoopSettings
from reconciler.runtime.metrics import Metrics
from reconciler.runtime.scope import KeyScope
from reconciler.sandbox.cloudflare_hostnames import HostnameBehaviour
from reconciler.spec.load import Specs, load_directory

from support.daemon import DaemonFactory, Fleet, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "specs"
FILTERS = len(MOVING_HOSTNAME_STATUSES) + len(MOVING_SSL_STATUSES)


def _hostname(name: str, status: str = "pending", ssl_status: str = "pending_validation") -> Any:
    return CustomHostname.from_json(
        {"id": f"id-{name}", "hostname": name, "status": status, "ssl": {"status": ssl_status}}
    )


class FakeReader:
    """Answers filtered listings from a table of hostnames; counts what it was asked."""

    def __init__(self, table: list[CustomHostname]) -> None:
        self.table = table
        self.asked: Counter[str] = Counter()

    async def get_project(self, project: str) -> PagesProject:
        raise AssertionError("not read by these tests")

    async def list_projects(self) -> list[PagesProject]:
        raise AssertionError("not read by these tests")

    async def list_deployments(
        self, project: str, *, env: Literal["production", "preview"] | None = None
    ) -> list[Deployment]:
        raise AssertionError("not read by these tests")

    async def list_custom_hostnames(
        self,
        *,
        hostname: str | None = None,
        per_page: int = 50,
        hostname_status: str | None = None,
        ssl_status: str | None = None,
    ) -> list[CustomHostname]:
        filtered = hostname_status is not None or ssl_status is not None
        self.asked["name" if hostname else "status" if filtered else "all"] += 1
        return [
            h
            for h in self.table
            if (hostname is None or h.hostname == hostname)
            and (hostname_status is None or h.status == hostname_status)
            and (ssl_status is None or h.ssl_status == ssl_status)
        ]


def _specs() -> Specs:
    return load_directory(EXAMPLE)


def _owner_and_domain(specs: Specs) -> tuple[str, str]:
    name = sorted(specs.sites)[0]
    return name, specs.sites[name].spec.domains[0].canonical


# ---- the budget check ------------------------------------------------------------------------


def test_the_default_periods_fit_a_100000_site_fleet_unstretched() -> None:
    fit = sweep_periods(LoopSettings(), declared=150_000, moving_pages=FILTERS)
    assert fit.stretch == 1.0
    assert (fit.moving, fit.full) == (600.0, 21_600.0)
    # A full listing every 6 h (3,001 pages) and 6 moving sweeps of 18 requests an hour.
    assert round(fit.projected) == round(3001 / 6 + 6 * FILTERS)
    assert fit.projected <= fit.allowed == 0.2 * 14_400


def test_periods_over_the_share_are_stretched_until_the_projection_fits() -> None:
    settings = LoopSettings(hostname_full_sweep=600.0)  # the whole zone every 10 minutes
    fit = sweep_periods(settings, declared=150_000, moving_pages=FILTERS)
    assert fit.stretch > 1.0
    assert fit.projected <= fit.allowed * 1.0001
    assert fit.moving == 600.0 * fit.stretch and fit.full == 600.0 * fit.stretch


def test_a_small_share_still_leaves_the_sweeps_a_period() -> None:
    settings = replace(LoopSettings(), sweep_budget_share=0.01)  # less than Sweep/all alone
    fit = sweep_periods(settings, declared=150_000, moving_pages=FILTERS)
    assert fit.stretch > 1.0 and fit.moving > 600.0


# ---- the listing -----------------------------------------------------------------------------


async def test_the_sweep_lists_each_moving_status_and_finds_the_owning_sites() -> None:
    specs = _specs()
    site, domain = _owner_and_domain(specs)
    reader = FakeReader([_hostname(domain), _hostname("foreign.example.net")])
    sweep = HostnameSweep(KeyScope())
    found = await sweep.read(reader, specs)
    assert reader.asked == Counter({"status": FILTERS})
    assert found.sites == frozenset({site})  # the foreign name owns no site: not passed over
    assert set(found.listed) == {domain, "foreign.example.net"}
    # Each filtered listing is one short page; the pending one was listed twice (two filters).
    assert found.requests == FILTERS


async def test_a_hostname_that_stopped_moving_is_passed_over_once_more() -> None:
    specs = _specs()
    site, domain = _owner_and_domain(specs)
    reader = FakeReader([_hostname(domain)])
    sweep = HostnameSweep(KeyScope())
    await sweep.read(reader, specs)
    reader.table = [_hostname(domain, "active", "active")]  # settled: in no moving listing
    settled = await sweep.read(reader, specs)
    assert settled.sites == frozenset({site}) and settled.listed == {}
    assert (await sweep.read(reader, specs)).sites == frozenset()


async def test_prelisted_answers_a_listed_name_and_asks_for_any_other() -> None:
    listed = _hostname("www.acme.test")
    reader = FakeReader([listed, _hostname("other.acme.test")])
    prelisted = Prelisted(reader, {"www.acme.test": listed})
    assert await prelisted.list_custom_hostnames(hostname="WWW.acme.test.") == [listed]
    assert reader.asked == Counter()
    other = await prelisted.list_custom_hostnames(hostname="other.acme.test")
    assert [h.hostname for h in other] == ["other.acme.test"]
    assert reader.asked == Counter({"name": 1})


# ---- against the sandbox ---------------------------------------------------------------------

SETTINGS = LoopSettings(interval=3600.0, workers=2, grace=10.0, lease_poll=0.2)


async def test_a_moving_sweep_reads_by_status_and_passes_over_the_stuck_site_only(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    specs = load_directory(Path(fleet.repo.working_dir) / "specs")
    site, domain = _owner_and_domain(specs)
    async with start_daemon(settings=SETTINGS) as running:
        await wait_for(fleet.converged, within=90.0, what="the first full pass to converge")
        await wait_for(lambda: not running.daemon.queue.processing, what="the passes to finish")
        cloudflare = fleet.sandbox.cloudflare
        cloudflare.set_hostname_behaviour(domain, HostnameBehaviour(mode="stick"))
        since = max((int(c["seq"]) for c in cloudflare.calls_since(0)), default=0)
        before = len(running.daemon.passes)
        running.daemon.queue.add(SWEEP_MOVING, Lane.SWEEP)
        await wait_for(
            lambda: any(p.key == SWEEP_MOVING for p in running.daemon.passes[before:]),
            what="the moving sweep",
        )
        [result] = [p for p in running.daemon.passes[before:] if p.key == SWEEP_MOVING]
    calls = [
        c
        for c in cloudflare.calls_since(since)
        if c["method"] == "GET" and c["route"] == "/zones/{zone_id}/custom_hostnames"
    ]
    assert result.ok, result.failed
    listings = [c["query"] for c in calls]
    assert all(q.keys() & {"hostname_status", "ssl_status", "hostname"} for q in listings)
    by_status = [c for c in calls if c["query"].keys() & {"hostname_status", "ssl_status"}]
    assert len(by_status) == FILTERS
    listed = {h["hostname"] for c in by_status for h in c["response_json"]["result"]}
    looked_up = {q["hostname"] for q in listings if "hostname" in q}
    # The stuck hostname came listed; the site's others were listed or looked up by name, once.
    assert domain in listed and not listed & looked_up
    assert {d.canonical for d in specs.sites[site].spec.domains} <= listed | looked_up
    # Only the sites owning a moving hostname were passed over.
    moving = {
        n for n, s in specs.sites.items() if any(d.canonical in listed for d in s.spec.domains)
    }
    assert site in moving and moving < set(specs.sites)
    assert result.report is not None
    assert {a.site for a in result.report.plan.actions} <= moving


def test_a_moving_sweep_resolves_the_drift_of_its_own_sites_only() -> None:
    metrics = Metrics()
    convergence = Convergence(clock=lambda: 0.0, metrics=metrics)
    convergence.track_drift("Site/a", {"Site/a"}, 10.0)
    convergence.track_drift("Site/b", {"Site/b"}, 20.0)
    convergence.track_drift(SWEEP_MOVING, set(), 30.0, frozenset({"b"}))
    assert metrics.drift_age._value.get() == 20.0  # Site/a still drifts since 10 s
    convergence.track_drift("Sweep/all", set(), 40.0)
    assert metrics.drift_age._value.get() == 0.0


# ---- the schedule ----------------------------------------------------------------------------


class _Clock:
    def __init__(self, until: float) -> None:
        self.now = 0.0
        self.until = until

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now > self.until:
            raise asyncio.CancelledError


async def _queued_sweeps(settings: LoopSettings, until: float) -> list[tuple[float, str]]:
    """The sweeps :meth:`Daemon._sweeps` queues over ``until`` seconds of a virtual clock."""
    clock = _Clock(until)
    queued: list[tuple[float, str]] = []
    daemon = SimpleNamespace(
        parts=SimpleNamespace(clock=clock, sleep=clock.sleep),
        settings=settings,
        specs=None,
        sweep=HostnameSweep(KeyScope()),
        queue=SimpleNamespace(add=lambda key, lane: queued.append((clock.now, key))),
        _queue_billing_sweep=lambda period: None,
        _publish_depth=lambda: None,
    )
    daemon._periods = lambda: Daemon._periods(daemon)  # type: ignore[arg-type]
    with contextlib.suppress(asyncio.CancelledError):
        await Daemon._sweeps(daemon)  # type: ignore[arg-type]
    return queued


async def test_the_moving_sweep_runs_often_and_a_full_sweep_postpones_the_full_listing() -> None:
    settings = LoopSettings(
        hostname_sweep=10.0, hostname_full_sweep=30.0, full_sweep=100.0, cloudflare_budget=1e9
    )
    queued = await _queued_sweeps(settings, until=205.0)
    moving = [at for at, key in queued if key == SWEEP_MOVING]
    assert moving == [10.0 * n for n in range(1, 21)]
    assert [at for at, key in queued if key == SWEEP_ALL] == [100.0, 200.0]
    # Every 30 s, except that the full sweep at 100 s listed the zone: the next is 30 s after it.
    assert [at for at, key in queued if key == SWEEP_HOSTNAMES] == [
        30.0,
        60.0,
        90.0,
        130.0,
        160.0,
        190.0,
    ]


async def test_with_the_default_periods_only_the_full_sweep_lists_the_whole_zone() -> None:
    queued = await _queued_sweeps(LoopSettings(), until=2 * 21_600.0 + 1)
    assert [key for _, key in queued if key != SWEEP_MOVING] == [SWEEP_ALL, SWEEP_ALL]
    assert sum(1 for _, key in queued if key == SWEEP_MOVING) == 2 * 36
