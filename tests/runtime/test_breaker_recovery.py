"""After an outage, the failed work runs as soon as the breaker closes (loop rule 6).

The issue's defect: after a total Cloudflare outage the breaker opened (right), but the failed
pass was never retried: no Cloudflare call for 570 s after recovery, convergence only at the
next sweep, and the breaker gauge read "open" all along. A long outage makes a resource fail
``max_failures`` times and go stuck, and a stuck resource waits for a change or a full sweep.
Here the periods are compressed (breaker open 0.5 s to 1 s, backoff 0.5 s, stuck after 3
failures, sweeps hours away), so only a retry at the breaker's close can converge in time.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.runtime.breaker import BreakerState
from reconciler.runtime.loop import LoopSettings
from reconciler.sandbox.faults import FaultRule

from support.daemon import DaemonFactory, Fleet, wait_for

SITE_FILE = "specs/sites/acme-home.yaml"
OUTAGE = FaultRule(error_rate=1.0, error_status=503)


async def test_work_failed_in_an_outage_runs_when_the_breaker_closes(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    settings = LoopSettings(
        interval=3600.0,
        workers=2,
        grace=10.0,
        lease_poll=0.2,
        backoff_base=0.5,
        backoff_cap=0.5,
        max_failures=3,
    )
    async with start_daemon(settings=settings) as running:
        await wait_for(fleet.converged, within=90.0, what="the first pass")
        breaker = running.world.breakers["cloudflare"]
        breaker.settings = replace(breaker.settings, open_for=0.5, max_open_for=1.0)
        queue = running.daemon.queue
        fleet.sandbox.cloudflare.faults.set([OUTAGE])
        fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 13}")
        fleet.commit("acme-home: publish version 13")
        assert (await running.push_webhook(fleet)).status_code == 202

        def long_outage() -> bool:
            return breaker.trips >= 4 and queue.failures("Site/acme-home") >= 1

        # Four failed probes in a row: the site has failed max_failures times by then (it was
        # stuck at least once; the old loop left it stuck until a sweep).
        await wait_for(long_outage, within=90.0, what="a long outage")

        fleet.sandbox.cloudflare.faults.clear()  # Cloudflare is back
        await wait_for(
            lambda: fleet.live_version("acme-home") == 13,
            within=30.0,
            what="the failed publish to be retried once the breaker closed",
        )
        await wait_for(lambda: breaker.state is BreakerState.CLOSED, what="the breaker to close")
        metrics = (await running.http.get("/metrics")).text
        assert 'reconciler_breaker_state{provider="cloudflare"} 0.0' in metrics
