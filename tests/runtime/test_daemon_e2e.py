"""The daemon end to end, in process, against the sandbox and a local Git remote.

Each test seeds the example fleet (nothing published yet), starts a daemon as a task of the
test's event loop and waits for its first full pass to converge the world, then acts like an
operator or a payment provider would: push a commit (with or without the push webhook), revert
it, pay an invoice and send the signed Stripe event. Figures are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.runtime.loop import LoopSettings

from support.daemon import DaemonFactory, Fleet, Running, wait_for

SITE_FILE = "specs/sites/acme-home.yaml"
DAY = 86400.0


async def converged_start(running: Running, fleet: Fleet) -> None:
    await wait_for(fleet.converged, within=90.0, what="the first full pass to converge")
    # Timers (validation timeouts, dunning days) may stay queued for later: not work now.
    await wait_for(lambda: not running.daemon.queue.processing, what="the passes to finish")


async def test_a_pushed_commit_converges_on_its_push_webhook_not_the_poll(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon(interval=3600.0) as running:
        await converged_start(running, fleet)
        fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 13}")
        fleet.commit("acme-home: publish version 13")
        started = asyncio.get_running_loop().time()
        answer = await running.push_webhook(fleet)
        assert answer.status_code == 202, answer.text
        # The poll interval is an hour: converging at all within the wait is the webhook's doing.
        # How fast is a figure (printed, and measured in bench/), never asserted here.
        await wait_for(lambda: fleet.live_version("acme-home") == 13, within=30.0, what="v13")
        elapsed = asyncio.get_running_loop().time() - started
        print(f"\nwebhook -> converged (publish_versions live at v13): {elapsed:.3f} s")


async def test_without_the_webhook_a_pushed_commit_converges_within_one_poll_interval(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    interval = 3.0
    async with start_daemon(interval=interval) as running:
        await converged_start(running, fleet)
        fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 14}")
        fleet.commit("acme-home: publish version 14")
        elapsed = await wait_for(
            lambda: fleet.live_version("acme-home") == 14, within=60.0, what="v14 by polling"
        )
        print(f"\npush (no webhook) -> converged: {elapsed:.3f} s (poll interval {interval} s)")
        commit = fleet.repo.head.commit.hexsha
        await wait_for(lambda: commit in running.daemon.converged, what="the pass to finish")
        # Converged from polling alone (no webhook was sent); the delay is a printed figure.
        assert running.daemon.converged[commit] > 0.0


async def test_a_reverted_commit_rolls_back_to_the_existing_deployment_without_a_new_one(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon(interval=3600.0) as running:
        await converged_start(running, fleet)
        before = fleet.live_deployment("acme-home")
        fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 13}")
        fleet.commit("acme-home: publish version 13")
        assert (await running.push_webhook(fleet)).status_code == 202
        await wait_for(lambda: fleet.live_version("acme-home") == 13, what="v13")
        count = len(fleet.deployments("acme-home"))

        fleet.revert_head()
        assert (await running.push_webhook(fleet)).status_code == 202
        elapsed = await wait_for(
            lambda: fleet.live_version("acme-home") == 12, within=30.0, what="the rollback"
        )
        print(f"\nrevert webhook -> rolled back to v12: {elapsed:.3f} s")
        assert len(fleet.deployments("acme-home")) == count  # no new deployment
        assert fleet.live_deployment("acme-home").id == before.id


async def test_a_signed_stripe_webhook_for_a_payment_unlocks_that_tenant(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    local = fleet.sandbox.stripe
    ids = fleet.seeded.stripe["acme"]
    past_due = local.make_past_due(ids.subscription)
    assert past_due.invoice is not None
    # Eight days overdue: past the standard policy's seven days of grace.
    local.backdate_invoice(past_due.invoice, fleet.sandbox.clock.now() - 8 * DAY)
    async with start_daemon(interval=3600.0) as running:
        await converged_start(running, fleet)
        await wait_for(lambda: fleet.tenant_status("acme") == "soft_locked", what="soft lock")
        assert local.pay_invoice(past_due.invoice) == "paid"
        event: dict[str, Any] = {
            "id": "evt_paid_acme",
            "object": "event",
            "type": "invoice.paid",
            "created": 1_767_225_600,
            "data": {
                "object": {"id": past_due.invoice, "object": "invoice", "customer": ids.customer}
            },
        }
        answer = await running.stripe_webhook(event, fleet.sandbox.webhook_secret)
        assert answer.status_code == 200, answer.text
        elapsed = await wait_for(
            lambda: fleet.tenant_status("acme") == "active", within=30.0, what="the unlock"
        )
        print(f"\nstripe webhook -> tenant unlocked: {elapsed:.3f} s")

        def payment_current() -> str | None:
            rows = fleet.rows(
                "SELECT status FROM resource_status WHERE resource = 'Tenant/acme' "
                "AND condition_type = 'PaymentCurrent'"
            )
            return str(rows[0]["status"]) if rows else None

        # The unlock is written during the pass, its conditions at the pass's end.
        await wait_for(lambda: payment_current() == "True", what="PaymentCurrent=True")


async def test_bad_webhooks_are_refused_and_queue_nothing(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon(interval=3600.0) as running:
        await converged_start(running, fleet)
        fetches = running.world.parts.follower.fetches
        queued = len(running.daemon.queue)
        fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 13}")
        fleet.commit("acme-home: publish version 13")
        forged = await running.http.post(
            "/webhooks/git",
            content=b'{"ref": "refs/heads/main"}',
            headers={
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": "forged-1",
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
            },
        )
        assert forged.status_code == 401
        stripe = await running.stripe_webhook({"id": "evt_x"}, "whsec_wrong")
        assert stripe.status_code == 400
        await asyncio.sleep(0.5)  # give a wrongly accepted trigger the time to show
        assert running.world.parts.follower.fetches == fetches
        assert len(running.daemon.queue) == queued and not running.daemon.queue.processing
        assert fleet.live_version("acme-home") == 12


async def test_a_standby_takes_over_within_a_lease_period_when_the_leader_dies(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    ttl = 2.0
    settings = LoopSettings(interval=3600.0, workers=2, grace=5.0, lease_poll=0.2)
    async with start_daemon(lease_ttl=ttl, settings=settings) as first:
        await converged_start(first, fleet)
        async with start_daemon(lease_ttl=ttl, settings=settings) as second:
            await wait_for(lambda: second.daemon.role == "standby", what="the standby")
            ready = await second.http.get("/readyz")
            assert ready.status_code == 200
            assert second.daemon.health().details["role"] == "standby"
            token = first.world.lease.fencing_token
            assert token is not None

            async def no_release() -> None:
                return None

            first.world.lease.release = no_release  # type: ignore[method-assign]
            first.task.cancel()  # dies: no graceful release of the lease
            elapsed = await wait_for(
                lambda: second.daemon.role == "leader", within=30.0, what="the takeover"
            )
            print(f"\nleader killed -> standby leads after {elapsed:.3f} s (lease ttl {ttl} s)")
            assert elapsed < ttl + 2.0
            assert (second.world.lease.fencing_token or 0) > token
            # The new leader works: a pushed commit converges through it.
            fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 13}")
            fleet.commit("acme-home: publish version 13")
            assert (await second.push_webhook(fleet)).status_code == 202
            await wait_for(lambda: fleet.live_version("acme-home") == 13, what="v13")
