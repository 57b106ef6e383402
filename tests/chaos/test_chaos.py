"""The chaos test: two daemons on one D1, a flaky world, a killed leader; the world converges.

A leader and a standby daemon run in this test's event loop against the sandbox (compressed
loop intervals, see ``chaos_support.LOOP``). Over about half a minute the test injects, in
order: Cloudflare 5xx answers (20 %) and dropped connections (5 %, the request still takes
effect: outcome unknown to the client), a WhatsApp gateway that is disconnected and comes back,
a burst of 429s on the zone endpoints, a pushed spec change (a version bump and a new domain),
and then kills the leader while it publishes that change (its task is cancelled without
releasing the lease). The standby takes over under the same faults. Then the faults are removed
and the world settles. docs/chaos.md describes the run and its figures (``pytest -s`` prints
them).

What must hold afterwards:

1. Converged: D1's live ``publish_versions`` are exactly the desired versions, every declared
   hostname exists once, owned by its site, active with an active certificate, and a fresh
   read-only plan (no faults) has nothing to do and nothing incomplete.
2. No 429 from our own rate: every 429 in the Cloudflare call log is one the fault injector
   produced (``fault == "rate_limited"``); the simulator's rate limiter never blocked the token.
3. No hot retry loop: after a failed exchange the same request comes again no sooner than the
   retry policy's backoff floor, or its ``retry-after`` after a 429; no request (method, path,
   query and body) is made more than a handful of times in any one second.
4. No WhatsApp message sent twice: the gateway's message log holds each text once, one per
   (invoice, step) sent in D1's ``dunning_step_logs``.
5. The standby took over: the lease row names it with a larger fencing token, it led only
   after the killed daemon's lease had run out, the killed daemon made no D1 write and sent
   no Cloudflare or WhatsApp write after its lease's local deadline, and its fenced clients
   refuse to write. (Its action tasks outlive the cancelled worker, so a few reads may still
   go out after the kill: docs/chaos.md, "Findings".)
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from reconciler.core.desired import derive
from reconciler.core.plan import build_plan
from reconciler.providers.retry import RetryPolicy
from reconciler.runtime.lease import LeaseLostError
from reconciler.runtime.observe import observe
from reconciler.sandbox.faults import FaultRule
from reconciler.settings import Settings
from reconciler.wiring import ReadOnlyWorld

from support.chaos import (
    ChaosWorld,
    busiest_second,
    hot_retries,
    kill,
    own_rate_limit_429s,
    start_daemon,
    wait_for,
)

FLAKY = FaultRule(error_rate=0.2, error_status=503, timeout_rate=0.05, timeout_mode="drop")
BURST = FaultRule(
    path_prefix="/zones",
    burst_429=3,
    retry_after=2,
    error_rate=0.2,
    error_status=503,
    timeout_rate=0.05,
    timeout_mode="drop",
)
# The smallest first wait of the client's retry policy (jitter in [base / 2, base]).
RETRY_FLOOR = RetryPolicy().base / 2
MAX_PER_SECOND = 6
BLOG_FILE = "specs/sites/lumen.yaml"
NEW_DOMAIN = "blog.lumenstudio.photo"
PUBLISH_ROUTE = "/pages/projects/{project_name}/deployments"


async def test_daemons_converge_the_world_through_faults_and_a_leader_kill(
    chaos: ChaosWorld, tmp_path: Path
) -> None:
    sandbox = chaos.sandbox
    cf = sandbox.cloudflare
    evo = sandbox.evolution
    started = time.monotonic()
    timeline: list[str] = []

    def note(event: str) -> None:
        timeline.append(f"{time.monotonic() - started:6.1f} s  {event}")
        print(timeline[-1], flush=True)

    cf.faults.set([FLAKY], seed=11)
    evo.disconnect()
    note("faults on: Cloudflare 20% 503 + 5% dropped; WhatsApp disconnected")

    async with start_daemon(chaos, holder="chaos-a", workdir=tmp_path / "a") as first:
        await wait_for(lambda: first.daemon.role == "leader", what="the first daemon to lead")
        async with start_daemon(chaos, holder="chaos-b", workdir=tmp_path / "b") as second:
            await wait_for(lambda: second.daemon.role == "standby", what="the standby")
            note("chaos-a leads, chaos-b stands by")
            [lease] = chaos.rows("SELECT holder, fencing_token FROM leases")
            assert lease["holder"] == "chaos-a"
            first_token = int(lease["fencing_token"])

            # The gateway is down: the leader looks at it and sends nothing.
            await wait_for(
                lambda: any(
                    c["route"].startswith("/instance/connectionState") for c in evo.calls_since()
                ),
                what="the leader to read the gateway",
            )
            await wait_for(lambda: cf.summary()["hostnames"] >= 3, what="hostnames to appear")
            assert evo.messages_since() == []
            cf.faults.set([BURST, FLAKY], seed=12)
            note("429 burst on /zones (3 x retry-after 2 s)")
            await wait_for(
                lambda: any(c["fault"] == "rate_limited" for c in cf.calls_since()),
                what="the 429 burst to be met",
            )
            evo.connect()
            note("WhatsApp reconnected")
            await wait_for(lambda: len(evo.messages_since()) >= 2, what="the dunning messages")
            note(f"{len(evo.messages_since())} dunning messages sent")

            # A spec change while the leader works: a version bump and a new domain.
            cf.point_dns(NEW_DOMAIN)
            chaos.edit(BLOG_FILE, "production: {version: 8}", "production: {version: 9}")
            chaos.edit(
                BLOG_FILE,
                "  production: {version: 3}\n",
                f"  production: {{version: 3}}\n  domains:\n    - hostname: {NEW_DOMAIN}\n",
            )
            chaos.commit("lumen-portfolio v9, lumen-blog gets a domain")
            mark = cf.seq
            answer = await first.push_webhook(chaos)
            assert answer.status_code == 202, answer.text
            note("spec change pushed (webhook to chaos-a)")
            await wait_for(
                lambda: any(
                    c["method"] == "POST"
                    and c["route"].endswith(PUBLISH_ROUTE)
                    and c["path"].endswith("/lumen-portfolio/deployments")
                    for c in cf.calls_since(mark)
                ),
                what="the leader to start publishing lumen-portfolio v9",
            )

            # Kill the leader mid-publish: no graceful release of the lease.
            deadline = first.world.lease.deadline
            await kill(first)
            killed_at = sandbox.clock.now()
            sent_when_killed = first.requests()
            note(f"chaos-a killed (its lease's local deadline in {deadline - killed_at:.1f} s)")
            await wait_for(lambda: second.daemon.role == "leader", within=30.0, what="the takeover")
            took_over = sandbox.clock.now()
            note(f"chaos-b leads ({took_over - killed_at:.1f} s after the kill)")

            # The standby leads under the same faults for a while, then the weather clears.
            await wait_for(
                lambda: len(second.daemon.passes) >= 3, within=60.0, what="chaos-b's passes"
            )
            cf.faults.clear()
            note("faults cleared")
            await wait_for(chaos.converged, within=60.0, what="the world to converge")
            await wait_for(lambda: not second.daemon.queue.processing, what="the passes in flight")
            note("converged")

            # 5. The standby took over, and the dead leader stayed dead and fenced.
            [lease] = chaos.rows("SELECT holder, fencing_token FROM leases")
            assert lease["holder"] == "chaos-b"
            assert int(lease["fencing_token"]) > first_token
            late_writes = [w for w in first.d1_writes if w[0] > deadline]
            assert late_writes == [], late_writes
            late_requests = [r for r in first.sent if r[0] > deadline and r[1] != "GET"]
            assert late_requests == [], late_requests
            after_death = sum(first.requests().values()) - sum(sent_when_killed.values())
            with pytest.raises(LeaseLostError):
                await first.world.database.execute("DELETE FROM tenants")
            assert took_over >= deadline - 0.01  # nobody led while chaos-a could still write

            # 1. A fresh plan, with no faults, has nothing to do.
            env = {**sandbox.settings_env(), "CLOUDFLARE_RATE_LIMIT": "1200/300"}
            specs = second.daemon.specs
            assert specs is not None and specs.revision == chaos.repo.head.commit.hexsha
            async with ReadOnlyWorld(Settings.from_env(env)) as readers:
                observed = await observe(specs, clients=readers.clients, now=sandbox.clock.now())
            plan = build_plan(derive(specs, observed.billing, now=observed.at), observed)
            assert dict(observed.incomplete) == {}
            assert [a.kind.value + " " + a.target for a in plan.actions] == []
            assert list(plan.blocked) == []
            assert chaos.live_versions() == chaos.desired_versions()
            assert chaos.hostname_problems() == []
            [acme] = chaos.rows("SELECT status FROM tenants WHERE id = 'acme'")
            assert acme["status"] == "soft_locked"
            assert second.daemon.crashed is None
            waited = sum(d.world.writers.cloudflare.bucket.waited for d in (first, second))

    calls = cf.calls_since()
    # 2. No 429 from our own rate; the simulator's limiter never blocked the token.
    injected = [c for c in calls if c["fault"] == "rate_limited"]
    assert len(injected) == 3
    assert own_rate_limit_429s(calls) == []
    assert all(window.blocked_until == 0.0 for window in cf.rate.values())

    # 3. No hot retry loop.
    hot = hot_retries(calls, floor=RETRY_FLOOR)
    assert hot == [], "\n".join(hot)
    busiest, resource = busiest_second(calls)
    assert busiest <= MAX_PER_SECOND, resource
    assert hot_retries(evo.calls_since(), floor=RETRY_FLOOR) == []

    # 4. No message sent twice: one per (invoice, step), each text once.
    messages = evo.messages_since()
    texts = Counter((m["number"], m["text"]) for m in messages)
    assert [t for t, n in texts.items() if n > 1] == []
    logged = chaos.rows(
        "SELECT invoice_id, step_code, status, provider_message_id FROM dunning_step_logs "
        "WHERE status = 'sent'"
    )
    steps = Counter((r["invoice_id"], r["step_code"]) for r in logged)
    assert [s for s, n in steps.items() if n > 1] == []
    assert sorted(r["provider_message_id"] for r in logged) == sorted(m["id"] for m in messages)
    assert len(messages) == 2  # acme's D7 and lumen's D0

    statuses = Counter(str(c["status"]) for c in calls)
    faults = Counter(str(c["fault"]) for c in calls if c["fault"])
    print(
        f"cloudflare calls: {len(calls)} by status {dict(sorted(statuses.items()))}, "
        f"faults {dict(sorted(faults.items()))}; busiest (method, path) second: {busiest} "
        f"({resource}); whatsapp calls: {len(evo.calls_since())}, messages: {len(messages)}; "
        f"passes by chaos-b: {len(second.daemon.passes)}; requests by chaos-a after its task "
        f"ended: {after_death} (orphaned action tasks, see docs/chaos.md); client budget waits: "
        f"{waited:.1f} s; wall {time.monotonic() - started:.1f} s"
    )
