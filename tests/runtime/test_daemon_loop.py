"""The loop's own rules against the sandbox: breakers pause work, a stop releases the lease,
``reconciler run --once`` makes one pass, and a lost lease stops every write at once."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.errors import TransientError
from reconciler.runtime.breaker import BreakerState
from reconciler.runtime.lease import LeaseLostError
from reconciler.runtime.loop import SWEEP_ALL

from support.daemon import GIT_SECRET, DaemonFactory, Fleet, wait_for

SITE_FILE = "specs/sites/acme-home.yaml"


async def test_an_open_cloudflare_breaker_puts_work_back_without_counting_a_failure(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon() as running:
        await wait_for(fleet.converged, within=90.0, what="the first pass")
        breaker = running.world.breakers["cloudflare"]
        for _ in range(breaker.settings.failure_threshold):
            breaker.record_failure(TransientError("cloudflare", "HTTP 503", status=503))
        assert breaker.state is BreakerState.OPEN
        fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 13}")
        fleet.commit("acme-home: publish version 13")
        assert (await running.push_webhook(fleet)).status_code == 202
        queue = running.daemon.queue
        retry_at = breaker.retry_at
        assert retry_at is not None

        def put_back() -> bool:
            # The commit first queues the key ready now; the pass then sees the open breaker
            # and puts it back until the breaker's retry time. Wait for the second.
            ready_at = queue.ready_at("Site/acme-home")
            return (
                queue.is_queued("Site/acme-home")
                and ready_at is not None
                and (ready_at >= retry_at - 0.5)
            )

        await wait_for(put_back, what="the key put back until the breaker half-opens")
        assert queue.failures("Site/acme-home") == 0  # paused, not failed
        assert fleet.live_version("acme-home") == 12  # nothing done while the breaker is open
        metrics = running.world.metrics.render().decode()
        assert 'reconciler_breaker_state{provider="cloudflare"} 2.0' in metrics


async def test_a_stop_lets_the_daemon_exit_zero_and_release_the_lease(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon() as running:
        await wait_for(fleet.converged, within=90.0, what="the first pass")
        assert (await running.http.get("/readyz")).status_code == 200
        running.daemon.stop()
        assert await asyncio.wait_for(running.task, timeout=30.0) == 0
        [row] = fleet.rows("SELECT holder, expires_at FROM leases")
        assert row["expires_at"] == 0
        assert not running.world.lease.is_leader


async def test_the_pass_history_keeps_no_whole_fleet_observation(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon() as running:
        await wait_for(fleet.converged, within=90.0, what="the first pass")
        daemon = running.daemon
        await wait_for(
            lambda: any(p.key == SWEEP_ALL for p in daemon.passes), what="the full pass recorded"
        )
        full = next(p for p in daemon.passes if p.key == SWEEP_ALL)
        assert full.report is None and not full.failed  # its plan would keep the observation
        fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 13}")
        fleet.commit("acme-home: publish version 13")
        assert (await running.push_webhook(fleet)).status_code == 202
        await wait_for(lambda: fleet.live_version("acme-home") == 13, what="the site pass")
        await wait_for(
            lambda: any(p.key == "Site/acme-home" for p in daemon.passes), what="its record"
        )
        site = next(p for p in daemon.passes if p.key == "Site/acme-home")
    assert site.report is not None  # a scoped pass keeps its report
    assert {a.site for a in site.report.plan.actions} == {"acme-home"}


async def test_a_lost_lease_refuses_every_write_before_it_reaches_the_world(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon() as running:
        await wait_for(fleet.converged, within=90.0, what="the first pass")
        world = running.world
        await world.lease.release()  # the lease is gone (as after a missed renewal)
        with pytest.raises(LeaseLostError):
            await world.database.execute("DELETE FROM tenants")
        assert fleet.rows("SELECT count(*) AS n FROM tenants")[0]["n"] == 3


def test_run_once_makes_one_full_pass_and_exits_zero(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fleet.sandbox.settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_WEBHOOK_SECRET", GIT_SECRET)
    monkeypatch.setenv("RECONCILER_SANDBOX_CONTROL", fleet.sandbox.control_url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        code = main(
            ["run", "--once", "--repo-url", fleet.url, "--workdir", str(tmp_path / "once"),
             "--log-level", "warning"]
        )  # fmt: skip
    finally:  # run installs its JSON handler on the root logger: put the test's back
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    assert code == 0
    assert fleet.converged()
    [row] = fleet.rows("SELECT expires_at FROM leases")
    assert row["expires_at"] == 0
